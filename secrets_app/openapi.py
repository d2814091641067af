"""The OpenAPI 3 document of the JSON API, served at `/api/v1/openapi.json`.

Paths come from `urls.api_patterns`; each route's operations are listed once in OPERATIONS,
under its URL name. To document a new route, add an entry there (and a request or response
schema below if it needs one). What every operation shares is added by `document()`: path
parameters, security, and the errors the decorators and middleware give (401, 403 for CSRF and
runner sessions, 400/413/415 for a JSON body). `tests/test_openapi.py` keeps it true.
"""

from __future__ import annotations

import re
from collections import defaultdict
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.urls import URLPattern

from . import errors
from .models import EXPIRED_SECRET_GRACE_MAX_DAYS, Execution, ExpiryState, Role, Workspace
from .permissions import RUNNER_SESSION_ROUTES, TAG_PERMISSION_NAMES
from .validators import (
    SECRET_KEY_MAX_LENGTH,
    SECRET_KEY_PATTERN,
    TAG_MAX_LENGTH,
    TAG_PATTERN,
    UNREAD_DAYS_MAX,
    WORKFLOW_NAME_MAX_LENGTH,
    WORKFLOW_NAME_PATTERN,
)

OPENAPI_VERSION = "3.0.3"
SAFE_METHODS = frozenset({"get", "head", "options"})


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _full_match(pattern: re.Pattern[str]) -> str:
    return f"^(?:{pattern.pattern})$"


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with exactly these properties, all required but `optional`."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True} if "$ref" not in schema else {"allOf": [schema], "nullable": True}


STRING = {"type": "string"}
# Text the API accepts: any string without NUL (PostgreSQL can neither store nor compare it).
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
DATE_TIME = {"type": "string", "format": "date-time"}
USERNAME = {"type": "string"}
SLUG = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": Workspace._meta.get_field("slug").max_length}
SECRET_KEY = {"type": "string", "pattern": _full_match(SECRET_KEY_PATTERN), "maxLength": SECRET_KEY_MAX_LENGTH}
TAG = {"type": "string", "pattern": _full_match(TAG_PATTERN), "maxLength": TAG_MAX_LENGTH}
WORKFLOW_NAME = {
    "type": "string",
    "pattern": _full_match(WORKFLOW_NAME_PATTERN),
    "maxLength": WORKFLOW_NAME_MAX_LENGTH,
}
WORKFLOW_REFERENCE = {
    "type": "string",
    "description": "`<home-workspace-slug>/<workflow-name>`.",
    "pattern": rf"^[-a-zA-Z0-9_]+/(?:{WORKFLOW_NAME_PATTERN.pattern})$",
}
TAG_PERMISSION = {"type": "string", "enum": list(TAG_PERMISSION_NAMES)}
PERMISSIONS = {"type": "array", "items": TAG_PERMISSION, "minItems": 1}
GRACE_DAYS = {
    "type": "integer",
    "minimum": 0,
    "maximum": EXPIRED_SECRET_GRACE_MAX_DAYS,
    "description": "Days after a secret's expiry during which runners may still read it.",
}
REDACT = {
    "type": "array",
    "items": STRING,
    "description": "The forms the value(s) may take in logs, longest first: mask each of them.",
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "User": _object(
        {"username": USERNAME, "email": STRING, "personal_workspace": _nullable(SLUG)},
    ),
    "Session": _object({"user": _nullable(_ref("User")), "csrf_token": STRING}),
    "Workspace": _object(
        {
            "slug": SLUG,
            "name": STRING,
            "kind": {"type": "string", "enum": list(Workspace.Kind.values)},
            "role": {
                "type": "string",
                "enum": [*Role.values, None],
                "nullable": True,
                "description": "Your role; null for a superuser administering a team workspace.",
            },
            "expired_secret_grace_days": GRACE_DAYS,
        }
    ),
    "WorkspaceList": _object({"workspaces": {"type": "array", "items": _ref("Workspace")}}),
    "Secret": _object(
        {
            "id": {"type": "string", "format": "uuid"},
            "key": SECRET_KEY,
            "workspace": SLUG,
            "tags": {"type": "array", "items": TAG},
            "created_by": _nullable(USERNAME),
            "created_at": DATE_TIME,
            "expires_at": _nullable(DATE_TIME),
            "expiry": {"type": "string", "enum": [state.value for state in ExpiryState]},
            "last_read_at": _nullable(DATE_TIME),
            "last_read_by_workflow": _nullable(STRING),
            "last_read_by_user": _nullable(USERNAME),
            "last_read_execution": _nullable({"type": "string", "format": "uuid"}),
            "reads_last_30_days": {"type": "integer", "minimum": 0},
            "same_value_as": {
                "type": "array",
                "items": SECRET_KEY,
                "description": "Keys of the other secrets here (that you may see) holding the same value.",
            },
        }
    ),
    "SecretPage": _object(
        {
            "workspace": SLUG,
            "count": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "pages": {"type": "integer", "minimum": 1},
            "secrets": {"type": "array", "items": _ref("Secret"), "maxItems": 50},
        }
    ),
    "TagList": _object(
        {
            "workspace": SLUG,
            "tags": {
                "type": "array",
                "items": _object({"name": TAG, "secrets": {"type": "integer", "minimum": 0}}),
            },
        }
    ),
    "Grant": {
        "oneOf": [
            _object(
                {
                    "id": {"type": "string", "pattern": r"^user-[0-9]+$"},
                    "tag": TAG,
                    "user": USERNAME,
                    "permission": TAG_PERMISSION,
                }
            ),
            _object(
                {
                    "id": {"type": "string", "pattern": r"^group-[0-9]+$"},
                    "tag": TAG,
                    "group": STRING,
                    "permission": TAG_PERMISSION,
                    "group_size": {"type": "integer", "minimum": 0},
                }
            ),
        ]
    },
    "TagGrants": _object({"tag": TAG, "grants": {"type": "array", "items": _ref("Grant")}}),
    "Workflow": _object(
        {
            "reference": WORKFLOW_REFERENCE,
            "name": WORKFLOW_NAME,
            "workspace": SLUG,
            "definition": {"type": "object"},
            "secrets": {"type": "array", "items": SECRET_KEY},
            "registered_by": _nullable(USERNAME),
            "registered_at": DATE_TIME,
        }
    ),
    "WorkflowList": _object({"workspace": SLUG, "workflows": {"type": "array", "items": _ref("Workflow")}}),
}
EXECUTION_PROPERTIES = {
    "id": {"type": "string", "format": "uuid"},
    "workflow": WORKFLOW_REFERENCE,
    "workspace": SLUG,
    "status": {"type": "string", "enum": [*Execution.Status.values, "expired"]},
    "launched_by": USERNAME,
    "started_at": DATE_TIME,
    "expires_at": DATE_TIME,
    "finished_at": _nullable(DATE_TIME),
}
SCHEMAS |= {
    "Execution": _object(EXECUTION_PROPERTIES),
    "LaunchedExecution": _object(
        {
            **EXECUTION_PROPERTIES,
            "runner_session": {"type": "string", "description": "The runner session: send it as the session cookie."},
        }
    ),
    "ExecutionPage": _object(
        {
            "workspace": SLUG,
            "page": {"type": "integer", "minimum": 1},
            "pages": {"type": "integer", "minimum": 1},
            "executions": {"type": "array", "items": _ref("Execution"), "maxItems": 50},
        }
    ),
    "RunnerSecret": _object({"key": SECRET_KEY, "value": STRING, "redact": REDACT}),
    "Resolved": _object(
        {
            "document": {"description": "The document sent, with each placeholder replaced by its value."},
            "secrets": {"type": "array", "items": SECRET_KEY},
            "redact": REDACT,
        }
    ),
    "Ping": _object({"ok": {"type": "boolean", "enum": [True]}}),
    "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
    "Error": _object(
        {
            "error": _object(
                {
                    "code": STRING,
                    "message": STRING,
                    "fields": {
                        "type": "object",
                        "description": "Input errors by field name.",
                        "additionalProperties": {"type": "array", "items": STRING},
                    },
                    "secrets": {
                        "type": "object",
                        "description": "A refused runner read: the reason for each key.",
                        "additionalProperties": STRING,
                    },
                    "keys": {
                        "type": "array",
                        "items": SECRET_KEY,
                        "description": "A refused .env import: the keys that already exist.",
                    },
                    "entries": {
                        "type": "array",
                        "items": _ref("ImportEntry"),
                        "description": "A refused .env import: every line that stopped it.",
                    },
                },
                optional=("fields", "secrets", "keys", "entries"),
            )
        }
    ),
}

SCHEMAS |= {
    "ImportEntry": _object(
        {
            "line": {"type": "integer", "minimum": 1},
            "key": _nullable(SECRET_KEY),
            "status": {"type": "string", "enum": ["new", "conflict", "invalid"]},
            "code": STRING,
            "error": STRING,
        },
        optional=("code", "error"),
    ),
    "ImportPreview": _object(
        {"entries": {"type": "array", "items": _ref("ImportEntry")}, "importable": {"type": "boolean"}}
    ),
    "Imported": _object({"imported": {"type": "array", "items": SECRET_KEY}}),
    "ValueLookup": _object({"workspace": SLUG, "keys": {"type": "array", "items": SECRET_KEY}}),
    "UserSession": _object(
        {
            "id": {"type": "string", "format": "uuid"},
            "kind": {"type": "string", "enum": ["browser", "api", "runner"]},
            "current": {"type": "boolean"},
            "created_at": DATE_TIME,
            "last_seen_at": _nullable(DATE_TIME),
            "expires_at": DATE_TIME,
            "ip_address": _nullable(STRING),
            "user_agent": STRING,
            "device": STRING,
            "execution": _nullable(
                _object(
                    {
                        "id": {"type": "string", "format": "uuid"},
                        "workflow": WORKFLOW_REFERENCE,
                        "workspace": SLUG,
                        "status": {"type": "string", "enum": [*Execution.Status.values, "expired"]},
                    }
                )
            ),
        }
    ),
    "UserSessionList": _object({"sessions": {"type": "array", "items": _ref("UserSession")}}),
    "SessionsEnded": _object(
        {
            "ended": _object(
                {kind: {"type": "integer", "minimum": 0} for kind in ("browser", "api", "runner")},
            )
        }
    ),
}

# Request bodies: JSON objects with exactly these fields (the API refuses unknown ones).
SCHEMAS |= {
    "SignIn": _object({"username": TEXT, "password": TEXT}),
    "NewWorkspace": _object(
        {
            "slug": SLUG,
            "name": {**TEXT, "minLength": 1, "maxLength": Workspace._meta.get_field("name").max_length},
        }
    ),
    "NewSecret": _object(
        {
            "key": SECRET_KEY,
            "value": {
                **TEXT,
                "minLength": 1,
                "description": "Unicode text without NUL, at most 64 KiB of UTF-8 (else 413 value_too_large).",
            },
            "tags": {"type": "array", "items": TAG},
            "expires_at": _nullable(
                {
                    "type": "string",
                    "description": "ISO 8601 date or date-time in the future; set only at creation.",
                }
            ),
        },
        optional=("tags", "expires_at"),
    ),
    "WorkspaceSettings": _object({"expired_secret_grace_days": GRACE_DAYS}),
    "SecretTags": _object({"tags": {"type": "array", "items": TAG, "minItems": 1}}),
    "NewGrant": {
        "oneOf": [
            _object({"user": {**TEXT, "minLength": 1}, "permissions": PERMISSIONS}),
            _object({"group": {**TEXT, "minLength": 1}, "permissions": PERMISSIONS}),
        ]
    },
    "NewWorkflow": _object(
        {
            "name": WORKFLOW_NAME,
            "definition": {
                "type": "object",
                "description": (
                    "Any JSON object up to 256 KiB, with no NUL in any string; `${workflow.secrets.KEY}` "
                    "strings name secrets."
                ),
            },
        }
    ),
    "DotenvImport": _object(
        {
            "dotenv": {**TEXT, "description": "The .env file's text: at most 256 KiB and 2,000 lines."},
            "tags": {"type": "array", "items": TAG},
            "dry_run": {"type": "boolean", "description": "Preview only: each line's status, nothing written."},
        },
        optional=("tags", "dry_run"),
    ),
    "ValueToLookUp": _object({"value": {**TEXT, "minLength": 1}}),
    "Launch": _object(
        {
            "workflow": WORKFLOW_REFERENCE,
            "lifetime": {
                "type": "integer",
                "minimum": 60,
                "description": "Seconds the runner session lives, at most RUNNER_SESSION_MAX_AGE (default 43200).",
            },
        },
        optional=("lifetime",),
    ),
}

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "slug": SLUG,
    "key": SECRET_KEY,
    "tag": TAG,
    "grant_id": {"type": "string", "pattern": r"^(?:user|group)-[0-9]+$"},
    "name": WORKFLOW_NAME,
    "execution_id": {"type": "string", "format": "uuid"},
    "session_id": {"type": "string", "format": "uuid"},
}

PAGE = {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "From 1."}


def _json_body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _op(
    summary: str,
    ok: int | None = None,
    schema: str | None = None,
    *,
    errors: tuple[int, ...] = (),
    body: dict[str, Any] | None = None,
    query: tuple[dict[str, Any], ...] = (),
    public: bool = False,
) -> dict[str, Any]:
    """One operation: its success answer, and the errors its own code gives (`document()` adds
    the ones every operation of its kind shares)."""
    content = {"content": {"application/json": {"schema": _ref(schema)}}} if schema else {}
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": ({str(ok): {"description": HTTPStatus(ok).phrase, **content}} if ok else {})
        | {str(status): {} for status in errors},
    }
    if body is not None:
        operation["requestBody"] = body
    if query:
        operation["parameters"] = list(query)
    if public:
        operation["security"] = []
    return operation


# Every route of `urls.api_patterns`, by URL name, with each method its view accepts.
OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "api-openapi": {"get": _op("This document", 200, "OpenApiDocument", public=True)},
    "api-session": {
        "get": _op("Who is signed in, and a CSRF token (sets the csrftoken cookie)", 200, "Session", public=True),
        "post": _op(
            "Sign in; answers the new CSRF token (it rotates at sign-in)",
            200,
            "Session",
            errors=(401, 429),
            body=_json_body("SignIn"),
            public=True,
        ),
        "delete": _op("Sign out", 204, public=True),
    },
    "api-user-sessions": {
        "get": _op("Your live sessions (browser, API, runner), newest first", 200, "UserSessionList"),
    },
    "api-user-sessions-revoke-others": {
        "post": _op("Sign out everywhere else: every session of yours but this one ends", 200, "SessionsEnded"),
    },
    "api-user-session": {
        "get": _op("One of your sessions (never its key)", 200, "UserSession", errors=(404,)),
        "delete": _op(
            "End one of your sessions (a runner session's execution finishes; the current one signs you out)",
            204,
            errors=(404,),
        ),
    },
    "api-workspaces": {
        "get": _op("Your workspaces, with your role in each", 200, "WorkspaceList"),
        "post": _op(
            "Create a team workspace you own", 201, "Workspace", errors=(409,), body=_json_body("NewWorkspace")
        ),
    },
    "api-workspace": {
        "get": _op("One workspace", 200, "Workspace", errors=(404,)),
        "patch": _op(
            "Change a workspace's settings (owners and admins)",
            200,
            "Workspace",
            errors=(403, 404),
            body=_json_body("WorkspaceSettings"),
        ),
    },
    "api-secrets": {
        "get": _op(
            "Metadata of the secrets you may see, sorted by key, 50 a page; never values",
            200,
            "SecretPage",
            errors=(400, 404),
            query=(
                PAGE,
                {"name": "tag", "in": "query", "schema": STRING, "description": "Only secrets carrying this tag."},
                {"name": "q", "in": "query", "schema": STRING, "description": "Only keys containing this text."},
                {
                    "name": "unread_days",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": UNREAD_DAYS_MAX},
                    "description": "Only secrets no runner has read in this many days (never read included).",
                },
            ),
        ),
        "post": _op("Add a secret", 201, "Secret", errors=(403, 404, 409), body=_json_body("NewSecret")),
    },
    "api-secrets-import": {
        "post": _op(
            "Import a .env file, all or nothing (dry_run: each line's status); existing keys are never overwritten",
            201,
            "Imported",
            errors=(403, 404, 409),
            body=_json_body("DotenvImport"),
        ),
    },
    "api-value-lookup": {
        "post": _op(
            "Owners and admins: which keys of this workspace hold this value (audited; key names only)",
            200,
            "ValueLookup",
            errors=(403, 404),
            body=_json_body("ValueToLookUp"),
        ),
    },
    "api-secret": {
        "get": _op("One secret's metadata", 200, "Secret", errors=(404,)),
        "delete": _op("Delete a secret; its key can then be added again", 204, errors=(403, 404)),
        "put": _op("Refused: secrets are immutable (405 secret_immutable)", errors=(405,)),
        "patch": _op("Refused: secrets are immutable (405 secret_immutable)", errors=(405,)),
    },
    "api-secret-tags": {
        "post": _op("Add tags to a secret", 200, "Secret", errors=(403, 404), body=_json_body("SecretTags")),
    },
    "api-secret-tag": {"delete": _op("Remove a tag from a secret", 204, errors=(400, 403, 404))},
    "api-tags": {"get": _op("The tags you may see, with how many secrets carry each", 200, "TagList", errors=(404,))},
    "api-tag": {"delete": _op("Delete a tag: it leaves every secret, and its grants end", 204, errors=(403, 404))},
    "api-tag-grants": {
        "get": _op("The grants on a tag", 200, "TagGrants", errors=(403, 404)),
        "post": _op(
            "Grant a user or a group permissions on a tag (created if new)",
            201,
            "TagGrants",
            errors=(403, 404, 409),
            body=_json_body("NewGrant"),
        ),
    },
    "api-tag-grant": {"delete": _op("Revoke one grant", 204, errors=(403, 404))},
    "api-workflows": {
        "get": _op("The workflows registered in this workspace", 200, "WorkflowList", errors=(404,)),
        "post": _op(
            "Register a workflow here, its home",
            201,
            "Workflow",
            errors=(403, 404, 409),
            body=_json_body("NewWorkflow"),
        ),
    },
    "api-workflow": {
        "get": _op("One workflow", 200, "Workflow", errors=(404,)),
        "delete": _op("Delete a workflow; its running executions end", 204, errors=(403, 404)),
    },
    "api-executions": {
        "get": _op(
            "Executions launched in this workspace, newest first", 200, "ExecutionPage", errors=(404,), query=(PAGE,)
        ),
        "post": _op(
            "Launch a workflow in this workspace; answers its runner session",
            201,
            "LaunchedExecution",
            errors=(403, 404),
            body=_json_body("Launch"),
        ),
    },
    "api-execution": {"get": _op("One execution", 200, "Execution", errors=(404,))},
    "api-execution-finish": {
        "post": _op("End an execution and its runner session", 200, "Execution", errors=(403, 404, 409)),
    },
    "api-runner-ping": {"get": _op("Does this session still work? Reads nothing", 200, "Ping")},
    "api-runner-secret": {
        "get": _op(
            "A runner reads one value (a runner session: from its workflow's home; a user's session: "
            "from their personal workspace)",
            200,
            "RunnerSecret",
            errors=(403, 404, 500),
        ),
    },
    "api-runner-resolve": {
        "post": _op(
            "A runner sends any JSON document and gets it back with each ${workflow.secrets.KEY} "
            "replaced, all or nothing",
            200,
            "Resolved",
            errors=(403, 404, 500),
            body={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {},
                        "example": {"headers": {"Authorization": "Bearer ${workflow.secrets.API_KEY}"}},
                    }
                },
            },
        ),
    },
}


# A dry run answers 200 with the preview; the import itself 201.
OPERATIONS["api-secrets-import"]["post"]["responses"]["200"] = {
    "description": "Dry run: each line's status; nothing was written.",
    "content": {"application/json": {"schema": _ref("ImportPreview")}},
}


def error_codes_by_status() -> dict[int, list[str]]:
    """Every error code the API can answer, by status: the domain errors of errors.py mapped
    through api.ERROR_STATUS, and those the API, its decorators and the middleware give."""
    from .api import ERROR_STATUS, BadRequest

    codes: dict[int, set[str]] = defaultdict(
        set,
        {
            400: {"invalid_input", "malformed_json", "bad_request"},
            401: {
                "not_authenticated",
                "session_expired",
                "invalid_credentials",
                *errors.RunnerSessionEnded.messages_by_reason,
            },
            403: {"csrf_failed", "runner_session_scope", "secrets_refused"},
            404: {"not_found", "unknown_secrets"},
            405: {"method_not_allowed", errors.SecretImmutable.code},
            413: {"request_too_large", "value_too_large"},
            415: {"unsupported_media_type"},
            429: {"too_many_sign_in_attempts"},
            500: {"undecryptable", "server_error"},
        },
    )
    pending = list(errors.ConsoleError.__subclasses__())
    while pending:
        error_type = pending.pop()
        pending.extend(error_type.__subclasses__())
        if error_type in (BadRequest, errors.SecretsRefused):
            continue  # codes and status chosen per instance, listed above
        status = next((ERROR_STATUS[t] for t in error_type.__mro__ if t in ERROR_STATUS), 400)
        codes[status].add(error_type.code)
    return {status: sorted(names) for status, names in sorted(codes.items())}


ERROR_DESCRIPTIONS = {
    400: "The input is not valid (`fields` names each problem), or the body is not JSON.",
    401: "Not signed in, a session that ended, or a runner session whose execution ended.",
    403: "Not allowed; a missing or stale CSRF token; or a runner session outside the runner endpoints.",
    404: "Not there, or not visible to you: the answer is the same either way.",
    405: "Not allowed on this resource.",
    409: "Conflicts with what is there.",
    413: "The body is over 1 MiB, or a value over 64 KiB.",
    415: "The body is not application/json.",
    429: "Sign-in is locked for this username or address after repeated failures (see Retry-After).",
    500: "A stored value could not be decrypted; nothing was returned.",
    503: "The database is unreachable; nothing was changed. Try again (see Retry-After).",
}


def _error_response(status: int, codes: list[str]) -> dict[str, Any]:
    schema = {"allOf": [_ref("Error")], "properties": {"error": {"properties": {"code": {"enum": codes}}}}}
    return {
        "description": f"{ERROR_DESCRIPTIONS[status]} Codes: {', '.join(codes)}.",
        "content": {"application/json": {"schema": schema}},
    }


def _security(route_name: str, method: str) -> list[dict[str, list[str]]]:
    """Who may call: a signed-in user, or also a runner session where the runner routes allow it;
    CSRF cookie and header on unsafe methods."""
    csrf = {} if method in SAFE_METHODS else {"csrfCookie": [], "csrfHeader": []}
    sessions = ["session"]
    if method.upper() in RUNNER_SESSION_ROUTES.get(route_name, ()):
        sessions.append("runnerSession")
    return [{name: [], **csrf} for name in sessions]


def openapi_path(pattern: URLPattern) -> str:
    """`api/v1/executions/<str:execution_id>/` -> `/api/v1/executions/{execution_id}/`."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def _complete(route_name: str, path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """Add what every operation of its kind shares: path parameters, security and common errors."""
    operation = {"operationId": f"{method}-{route_name.removeprefix('api-')}", **operation}
    names = re.findall(r"{(\w+)}", path)
    parameters = [{"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]} for name in names]
    if parameters or "parameters" in operation:
        operation["parameters"] = parameters + operation.get("parameters", [])
    public = operation.get("security") == []
    if public:
        operation["security"] = [] if method in SAFE_METHODS else [{"csrfCookie": [], "csrfHeader": []}]
    else:
        operation["security"] = _security(route_name, method)
    shared = {404} if names else set()  # a path parameter the route's converter refuses
    if not public:
        shared.add(401)
    if method not in SAFE_METHODS:
        shared.add(403)  # csrf_failed
    runner_may_call = method.upper() in RUNNER_SESSION_ROUTES.get(route_name, ())
    if not runner_may_call or "execution_id" in names:
        shared.add(403)  # runner_session_scope
    if "requestBody" in operation:
        shared |= {400, 413, 415}
    if route_name != "api-openapi":
        shared.add(503)  # database_unavailable
    responses = operation["responses"]
    for status in shared:
        responses.setdefault(str(status), {})
    operation["responses"] = {
        status: response or {"$ref": f"#/components/responses/Error{status}"}
        for status, response in sorted(responses.items())
    }
    return operation


def document() -> dict[str, Any]:
    """The OpenAPI document of every route in `urls.api_patterns` that OPERATIONS describes."""
    from .urls import api_patterns

    paths: dict[str, Any] = {}
    for pattern in api_patterns:
        operations = OPERATIONS.get(pattern.name, {})
        path = openapi_path(pattern)
        for method, operation in operations.items():
            paths.setdefault(path, {})[method] = _complete(pattern.name, path, method, dict(operation))
    session_cookie, csrf_cookie = settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Secrets Console API",
            "version": "1",
            "description": (
                "Session-authenticated JSON API. Sign in with POST /api/v1/session/ (first GET it for a CSRF "
                "token); send the X-CSRFToken header on every unsafe method. Errors are always "
                '`{"error": {"code": ..., "message": ...}}`. Values are only ever returned by the runner endpoints.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                f"Error{status}": _error_response(status, codes) for status, codes in error_codes_by_status().items()
            },
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": session_cookie,
                    "description": "A signed-in user's session, from POST /api/v1/session/.",
                },
                "runnerSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": session_cookie,
                    "description": (
                        "An execution's runner session (`runner_session` from launching it): runner endpoints "
                        "and its own execution only."
                    ),
                },
                "csrfCookie": {"type": "apiKey", "in": "cookie", "name": csrf_cookie},
                "csrfHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRFToken",
                    "description": "The csrf_token from GET /api/v1/session/ (it rotates at sign-in).",
                },
            },
        },
    }
