"""The session-authenticated JSON API (`/api/v1/`): parse, call one service or selector, answer.

Errors are always `{"error": {"code": ..., "message": ...}}` with the status from ERROR_STATUS.
CSRF is enforced by Django's middleware on every unsafe method; nothing here is exempt.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.utils.cache import patch_cache_control
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import errors, openapi, permissions, selectors, services
from .client import placeholders_in, redaction_forms, substitute
from .crypto import DecryptionFailed
from .http import client_ip
from .models import Secret, Workspace
from .permissions import Action
from .validators import JSON_MAX_DEPTH, json_depth_exceeds, parse_secret_expiry, parse_unread_days

ERROR_STATUS: dict[type[errors.ConsoleError], int] = {
    errors.NotFound: 404,
    errors.AccessDenied: 403,
    errors.RunnerSessionEnded: 401,
    errors.Conflict: 409,
    errors.InvalidOperation: 400,
    errors.DatabaseUnavailable: 503,
}


def _status_of(error: errors.ConsoleError) -> int:
    if isinstance(error, BadRequest):
        return error.status
    if isinstance(error, errors.SecretsRefused):
        return 404 if error.all_unknown else 403
    for error_type in type(error).__mro__:
        if error_type in ERROR_STATUS:
            return ERROR_STATUS[error_type]
    return 400


class BadRequest(errors.ConsoleError):
    """Raised while parsing a request; carries its own status."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.fields = status, code, fields

    def details(self) -> dict[str, Any]:
        return {"fields": self.fields} if self.fields else {}


def error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def console_error_response(error: errors.ConsoleError) -> JsonResponse:
    """The answer to a domain error: its status from ERROR_STATUS, its code and message."""
    return error_response(_status_of(error), error.code, error.message, **error.details())


def _validation_error_response(error: ValidationError) -> JsonResponse:
    fields = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    too_large = [
        name
        for name, field_errors in getattr(error, "error_dict", {}).items()
        if any(e.code == "value_too_large" for e in field_errors)
    ]
    if too_large:
        return error_response(413, "value_too_large", " ".join(fields[too_large[0]]), fields=fields)
    message = " ".join(
        f"{name}: {' '.join(msgs)}" if name != "__all__" else " ".join(msgs) for name, msgs in fields.items()
    )
    return error_response(400, "invalid_input", message, fields=fields)


def _not_signed_in(request: HttpRequest) -> JsonResponse:
    from django.conf import settings

    if request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        return error_response(401, "session_expired", "Your session has expired or was ended; sign in again.")
    return error_response(401, "not_authenticated", "Sign in first: POST /api/v1/session/ with username and password.")


def endpoint(methods: Iterable[str], *, login_required: bool = True) -> Callable:
    """Method check, authentication and error mapping for one JSON endpoint."""
    allowed = tuple(methods)

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = error_response(
                    405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(allowed)}."
                )
                response["Allow"] = ", ".join(allowed)
                return response
            if login_required and not request.user.is_authenticated:
                return _not_signed_in(request)
            try:
                return view(request, *args, **kwargs)
            except errors.ConsoleError as error:
                return console_error_response(error)
            except ValidationError as error:
                return _validation_error_response(error)

        wrapper.allowed_methods = allowed  # what the OpenAPI document and its test read
        return wrapper

    return decorator


def read_json_document(request: HttpRequest) -> Any:
    """The request's body as any JSON value, or BadRequest."""
    if request.content_type != "application/json":
        raise BadRequest(415, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise BadRequest(413, "request_too_large", "The request body is too large.") from None
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest(400, "malformed_json", "The request body is not valid JSON.") from None
    if json_depth_exceeds(document):
        raise BadRequest(400, "malformed_json", f"The JSON document is nested more than {JSON_MAX_DEPTH} levels deep.")
    return document


def read_json(request: HttpRequest, *, required: Iterable[str] = (), optional: Iterable[str] = ()) -> dict[str, Any]:
    """The request's JSON object, with exactly the allowed fields, or BadRequest."""
    data = read_json_document(request)
    if not isinstance(data, dict):
        raise BadRequest(400, "invalid_input", "The request body must be a JSON object.")
    required, allowed = set(required), set(required) | set(optional)
    field_errors = {name: ["This field is required."] for name in sorted(required - data.keys())}
    field_errors.update({name: ["Unknown field."] for name in sorted(data.keys() - allowed)})
    if field_errors:
        message = "; ".join(f"{name}: {msgs[0]}" for name, msgs in field_errors.items())
        raise BadRequest(400, "invalid_input", message, fields=field_errors)
    return data


# No text the console keeps or looks up may hold NUL (PostgreSQL cannot store or compare it).
NUL_REFUSED = "Must not contain NUL characters; encode binary data (e.g. base64)."


def _string_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise BadRequest(400, "invalid_input", f"{name}: must be a string.", fields={name: ["Must be a string."]})
    if "\x00" in value:
        raise BadRequest(400, "invalid_input", f"{name}: {NUL_REFUSED}", fields={name: [NUL_REFUSED]})
    return value


def _string_list_field(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(
            400, "invalid_input", f"{name}: must be a list of strings.", fields={name: ["Must be a list of strings."]}
        )
    if any("\x00" in item for item in value):
        raise BadRequest(400, "invalid_input", f"{name}: {NUL_REFUSED}", fields={name: [NUL_REFUSED]})
    return value


def _expiry_field(data: dict[str, Any]) -> Any:
    """The optional `expires_at` of a new secret: null or absent for none, else an ISO 8601 date or
    date and time."""
    text = data.get("expires_at")
    if text is None:
        return None
    try:
        return parse_secret_expiry(text)
    except ValidationError as error:
        raise ValidationError({"expires_at": error.error_list}) from None


def _unread_days_param(request: HttpRequest) -> int | None:
    text = request.GET.get("unread_days", "")
    if not text:
        return None
    try:
        return parse_unread_days(text)
    except ValidationError as error:
        raise ValidationError({"unread_days": error.error_list}) from None


def user_json(user: Any) -> dict[str, Any] | None:
    if not user.is_authenticated:
        return None
    personal = Workspace.objects.filter(personal_owner=user).values_list("slug", flat=True).first()
    return {"username": user.get_username(), "email": user.email, "personal_workspace": personal}


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "slug": workspace.slug,
        "name": workspace.name,
        "kind": workspace.kind,
        "role": workspace.caller_role,
        "expired_secret_grace_days": workspace.expired_secret_grace_days,
    }


def grant_json(grant: selectors.Grant) -> dict[str, Any]:
    extra = {"group_size": grant.group_size} if grant.grantee_kind == "group" else {}
    return {
        "id": grant.id,
        "tag": grant.tag,
        grant.grantee_kind: grant.grantee,
        "permission": grant.permission,
        **extra,
    }


def secret_json(secret: Secret) -> dict[str, Any]:
    """A secret's metadata. There is deliberately no way to put its value here."""
    return {
        "id": str(secret.pk),
        "key": secret.key,
        "workspace": secret.workspace.slug,
        "tags": sorted(tag.name for tag in secret.tags.all()),
        "created_by": secret.created_by.get_username() if secret.created_by else None,
        "created_at": secret.created_at.isoformat(),
        "expires_at": secret.expires_at.isoformat() if secret.expires_at else None,
        "expiry": secret.expiry.state.value,
        "last_read_at": secret.last_read_at.isoformat() if secret.last_read_at else None,
        "last_read_by_workflow": secret.last_read_workflow or None,
        "last_read_by_user": secret.last_read_reader or None,
        "last_read_execution": str(secret.last_read_execution) if secret.last_read_execution else None,
        "reads_last_30_days": secret.recent_reads,
        "same_value_as": secret.same_value_as,
    }


# Session


@sensitive_post_parameters()
@sensitive_variables()
@endpoint(["GET", "POST", "DELETE"], login_required=False)
def session(request: HttpRequest) -> HttpResponse:
    """GET: who am I, and a CSRF token. POST: sign in. DELETE: sign out."""
    if request.method == "GET":
        return JsonResponse({"user": user_json(request.user), "csrf_token": get_token(request)})
    if request.method == "DELETE":
        logout(request)
        return HttpResponse(status=204)
    data = read_json(request, required=["username", "password"])
    username, password = _string_field(data, "username"), _string_field(data, "password")
    user = authenticate(request, username=username, password=password)
    if user is None:
        return error_response(401, "invalid_credentials", "Wrong username or password.")
    login(request, user)
    # login() rotated the CSRF token; the new one is what the caller must send from now on.
    return JsonResponse({"user": user_json(user), "csrf_token": get_token(request)})


# Your sessions


def session_json(user_session: Any) -> dict[str, Any]:
    """One of your sessions. Never its session key: sessions are named by `id`."""
    execution = user_session.execution
    return {
        "id": str(user_session.pk),
        "kind": user_session.kind,
        "current": user_session.is_current,
        "created_at": user_session.created_at.isoformat(),
        "last_seen_at": user_session.last_seen_at.isoformat() if user_session.last_seen_at else None,
        "expires_at": user_session.expires_at.isoformat(),
        "ip_address": user_session.ip_address,
        "user_agent": user_session.user_agent,
        "device": user_session.device,
        "execution": {
            "id": str(execution.id),
            "workflow": execution.workflow_reference,
            "workspace": execution.workspace.slug,
            "status": execution.display_status,
        }
        if execution
        else None,
    }


@endpoint(["GET"])
def user_sessions(request: HttpRequest) -> HttpResponse:
    """Your live sessions (browser, API, runner), newest first; `current` marks this one."""
    found = selectors.sessions_of(request.user, current_session_key=request.session.session_key)
    return JsonResponse({"sessions": [session_json(s) for s in found]})


@endpoint(["GET", "DELETE"])
def user_session(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: one of your sessions. DELETE: end it at once (a runner session's execution finishes;
    ending the current session signs you out)."""
    found = selectors.session_for(request.user, session_id, current_session_key=request.session.session_key)
    if request.method == "GET":
        return JsonResponse(session_json(found))
    services.revoke_session(actor=request.user, user_session=found, ip_address=client_ip(request))
    if found.is_current:
        logout(request)
    return HttpResponse(status=204)


@endpoint(["POST"])
def user_sessions_revoke_others(request: HttpRequest) -> HttpResponse:
    """Sign out everywhere else: every session of yours but this one ends."""
    ended = services.revoke_other_sessions(
        actor=request.user, current_session_key=request.session.session_key, ip_address=client_ip(request)
    )
    return JsonResponse({"ended": ended})


# Workspaces


@endpoint(["GET", "POST"])
def workspaces(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse({"workspaces": [workspace_json(w) for w in selectors.workspaces_for(request.user)]})
    data = read_json(request, required=["slug", "name"])
    workspace = services.create_team_workspace(
        actor=request.user,
        slug=_string_field(data, "slug"),
        name=_string_field(data, "name"),
        ip_address=client_ip(request),
    )
    workspace = selectors.workspace_for(request.user, workspace.slug)
    return JsonResponse(workspace_json(workspace), status=201)


@endpoint(["GET", "PATCH"])
def workspace(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: one workspace. PATCH {"expired_secret_grace_days": N}: change its settings."""
    found = selectors.workspace_for(request.user, slug)
    if request.method == "PATCH":
        data = read_json(request, required=["expired_secret_grace_days"])
        services.set_expired_secret_grace(
            actor=request.user,
            workspace=found,
            days=data["expired_secret_grace_days"],
            ip_address=client_ip(request),
        )
    return JsonResponse(workspace_json(found))


# Secrets


@sensitive_post_parameters()
@sensitive_variables()
@endpoint(["GET", "POST"])
def secrets(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the secrets you may see, sorted by key, 50 a page (?tag=, ?q=, ?unread_days=). POST: add one."""
    workspace = selectors.workspace_for(request.user, slug)
    if request.method == "GET":
        visible = selectors.secrets_visible_to(
            request.user,
            workspace,
            tag=request.GET.get("tag", ""),
            search=request.GET.get("q", ""),
            unread_days=_unread_days_param(request),
        )
        page = selectors.paginate(visible, request.GET.get("page"))
        return JsonResponse(
            {
                "workspace": workspace.slug,
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "secrets": [
                    secret_json(s) for s in selectors.with_same_value_keys(request.user, workspace, page.object_list)
                ],
            }
        )
    data = read_json(request, required=["key", "value"], optional=["tags", "expires_at"])
    value = _string_field(data, "value")
    secret = services.create_secret(
        actor=request.user,
        workspace=workspace,
        key=_string_field(data, "key"),
        value=value,
        tags=_string_list_field(data, "tags"),
        expires_at=_expiry_field(data),
        ip_address=client_ip(request),
    )
    return JsonResponse(secret_json(_secret_for(request.user, workspace, secret.key)), status=201)


def _secret_for(user: Any, workspace: Any, key: str) -> Secret:
    """A secret as the API shows it, with the keys that hold the same value."""
    return selectors.with_same_value_keys(user, workspace, [selectors.secret_for(user, workspace, key)])[0]


@sensitive_post_parameters()
@sensitive_variables()
@endpoint(["POST"])
def value_lookup(request: HttpRequest, slug: str) -> HttpResponse:
    """POST {"value": ...}: the keys of this workspace's secrets holding that value (owners and
    admins; audited). Answers key names only."""
    workspace = selectors.workspace_for(request.user, slug)
    data = read_json(request, required=["value"])
    keys = services.find_secrets_by_value(
        actor=request.user, workspace=workspace, value=_string_field(data, "value"), ip_address=client_ip(request)
    )
    return JsonResponse({"workspace": workspace.slug, "keys": keys})


@endpoint(["GET", "DELETE", "PUT", "PATCH"])
def secret(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """GET: one secret's metadata. DELETE: remove it. There is no update."""
    if request.method in ("PUT", "PATCH"):
        response = error_response(405, errors.SecretImmutable.code, errors.SecretImmutable.default_message)
        response["Allow"] = "GET, DELETE"
        return response
    workspace = selectors.workspace_for(request.user, slug)
    if request.method == "GET":
        return JsonResponse(secret_json(_secret_for(request.user, workspace, key)))
    found = selectors.secret_for(request.user, workspace, key)
    services.delete_secret(actor=request.user, secret=found, ip_address=client_ip(request))
    return HttpResponse(status=204)


@sensitive_post_parameters()
@sensitive_variables()
@endpoint(["POST"])
def secrets_import(request: HttpRequest, slug: str) -> HttpResponse:
    """POST {"dotenv": "<text>", "tags": [...], "dry_run": bool}: import a .env file, all or nothing.
    Dry run: 200, each line's status. Otherwise 201 with the keys imported, or 400 / 409 listing
    every line that stopped it, nothing written."""
    workspace = selectors.workspace_for(request.user, slug)
    data = read_json(request, required=["dotenv"], optional=["tags", "dry_run"])
    text, tags = _string_field(data, "dotenv"), _string_list_field(data, "tags")
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest(
            400, "invalid_input", "dry_run: must be true or false.", fields={"dry_run": ["Must be true or false."]}
        )
    if dry_run:
        plan = services.plan_dotenv_import(actor=request.user, workspace=workspace, text=text, tags=tags)
        return JsonResponse({"entries": [line.as_json() for line in plan.lines], "importable": plan.importable})
    imported = services.import_dotenv(
        actor=request.user, workspace=workspace, text=text, tags=tags, ip_address=client_ip(request)
    )
    return JsonResponse({"imported": [secret.key for secret in imported]}, status=201)


def secrets_import_or_secret(request: HttpRequest, slug: str) -> HttpResponse:
    """`secrets/import/` is also the address of a secret whose key is "import": POST imports, and
    every other method is that secret's."""
    if request.method == "POST":
        return secrets_import(request, slug)
    return secret(request, slug, "import")


# As documented: this address's own operation is the import; its other methods are those of the
# `secrets/{key}/` route for the key "import".
secrets_import_or_secret.allowed_methods = secrets_import.allowed_methods


@endpoint(["POST"])
def secret_tags(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """POST {"tags": [...]}: attach tags to a secret."""
    workspace = selectors.workspace_for(request.user, slug)
    found = selectors.secret_for(request.user, workspace, key)
    data = read_json(request, required=["tags"])
    services.tag_secret(
        actor=request.user, secret=found, tag_names=_string_list_field(data, "tags"), ip_address=client_ip(request)
    )
    return JsonResponse(secret_json(_secret_for(request.user, workspace, key)))


@endpoint(["DELETE"])
def secret_tag(request: HttpRequest, slug: str, key: str, tag: str) -> HttpResponse:
    """DELETE: remove one tag from a secret."""
    workspace = selectors.workspace_for(request.user, slug)
    found = selectors.secret_for(request.user, workspace, key)
    services.untag_secret(actor=request.user, secret=found, tag_name=tag, ip_address=client_ip(request))
    return HttpResponse(status=204)


# Tags and grants


@endpoint(["GET"])
def tags(request: HttpRequest, slug: str) -> HttpResponse:
    """The tags you may see, with their number of secrets."""
    workspace = selectors.workspace_for(request.user, slug)
    found = selectors.tags_visible_to(request.user, workspace)
    return JsonResponse(
        {"workspace": workspace.slug, "tags": [{"name": t["name"], "secrets": t["secret_count"]} for t in found]}
    )


@endpoint(["DELETE"])
def tag(request: HttpRequest, slug: str, tag: str) -> HttpResponse:
    """DELETE: the tag leaves every secret, and its grants end."""
    workspace = selectors.workspace_for(request.user, slug)
    services.delete_tag(
        actor=request.user, tag=selectors.tag_for(request.user, workspace, tag), ip_address=client_ip(request)
    )
    return HttpResponse(status=204)


@endpoint(["GET", "POST"])
def tag_grants(request: HttpRequest, slug: str, tag: str) -> HttpResponse:
    """GET: the grants on a tag. POST {"user" or "group", "permissions": [...]}: grant more."""
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_GRANTS, workspace)
    status = 200
    if request.method == "POST":
        data = read_json(request, required=["permissions"], optional=["user", "group"])
        services.grant_tag_permissions(
            actor=request.user,
            workspace=workspace,
            tag_name=tag,
            permission_names=_string_list_field(data, "permissions"),
            username=_string_field(data, "user") if "user" in data else "",
            group_name=_string_field(data, "group") if "group" in data else "",
            ip_address=client_ip(request),
        )
        status = 201
    found = selectors.tag_for(request.user, workspace, tag)
    grants = selectors.grants_in(workspace, tags=workspace.tags.filter(pk=found.pk))
    return JsonResponse({"tag": found.name, "grants": [grant_json(g) for g in grants]}, status=status)


@endpoint(["DELETE"])
def tag_grant(request: HttpRequest, slug: str, tag: str, grant_id: str) -> HttpResponse:
    """DELETE: revoke one grant."""
    workspace = selectors.workspace_for(request.user, slug)
    services.revoke_tag_grant(
        actor=request.user, workspace=workspace, grant_id=grant_id, tag_name=tag, ip_address=client_ip(request)
    )
    return HttpResponse(status=204)


# Workflows and executions


def workflow_json(workflow: Any) -> dict[str, Any]:
    return {
        "reference": workflow.reference,
        "name": workflow.name,
        "workspace": workflow.workspace.slug,
        "definition": workflow.definition,
        "secrets": sorted(ref.key for ref in workflow.secret_references.all()),
        "registered_by": workflow.registered_by.get_username() if workflow.registered_by else None,
        "registered_at": workflow.registered_at.isoformat(),
    }


def execution_json(execution: Any) -> dict[str, Any]:
    return {
        "id": str(execution.id),
        "workflow": execution.workflow_reference,
        "workspace": execution.workspace.slug,
        "status": execution.display_status,
        "launched_by": execution.launched_by.get_username(),
        "started_at": execution.started_at.isoformat(),
        "expires_at": execution.expires_at.isoformat(),
        "finished_at": execution.finished_at.isoformat() if execution.finished_at else None,
    }


@endpoint(["GET", "POST"])
def workflows(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the workflows registered here. POST {"name", "definition"}: register one."""
    workspace = selectors.workspace_for(request.user, slug)
    if request.method == "GET":
        return JsonResponse(
            {"workspace": workspace.slug, "workflows": [workflow_json(w) for w in selectors.workflows_in(workspace)]}
        )
    data = read_json(request, required=["name", "definition"])
    workflow = services.register_workflow(
        actor=request.user,
        workspace=workspace,
        name=_string_field(data, "name"),
        definition=data["definition"],
        ip_address=client_ip(request),
    )
    return JsonResponse(workflow_json(selectors.workflows_in(workspace).get(pk=workflow.pk)), status=201)


@endpoint(["GET", "DELETE"])
def workflow(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    found = selectors.workflow_for(request.user, f"{slug}/{name}")
    if request.method == "GET":
        return JsonResponse(workflow_json(found))
    services.delete_workflow(actor=request.user, workflow=found, ip_address=client_ip(request))
    return HttpResponse(status=204)


@endpoint(["GET", "POST"])
def executions(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: executions in this workspace. POST {"workflow": "<home-slug>/<name>"}: launch one here."""
    workspace = selectors.workspace_for(request.user, slug)
    if request.method == "GET":
        page = selectors.paginate(selectors.executions_in(workspace), request.GET.get("page"))
        return JsonResponse(
            {
                "workspace": workspace.slug,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "executions": [execution_json(e) for e in page],
            }
        )
    data = read_json(request, required=["workflow"], optional=["lifetime"])
    execution, session_key = services.launch_execution(
        actor=request.user,
        workspace=workspace,
        workflow=selectors.workflow_for(request.user, _string_field(data, "workflow")),
        lifetime_seconds=data.get("lifetime"),
        ip_address=client_ip(request),
    )
    return JsonResponse({**execution_json(execution), "runner_session": session_key}, status=201)


@endpoint(["GET"])
def execution(request: HttpRequest, execution_id: str) -> HttpResponse:
    return JsonResponse(execution_json(selectors.execution_for(request.user, execution_id)))


@endpoint(["POST"])
def execution_finish(request: HttpRequest, execution_id: str) -> HttpResponse:
    """End an execution and its runner session at once (the runner may call this itself)."""
    found = selectors.execution_for(request.user, execution_id)
    return JsonResponse(
        execution_json(services.finish_execution(actor=request.user, execution=found, ip_address=client_ip(request)))
    )


# The runner read path


def _runner_context(request: HttpRequest, keys: list[str]) -> selectors.RunnerContext:
    """The reader: a signed-in session (runner or local), or an error for a session that ended."""
    from django.conf import settings

    if request.user.is_authenticated:
        return selectors.runner_context(request.session, request.user)
    ended = selectors.execution_by_runner_session(request.COOKIES.get(settings.SESSION_COOKIE_NAME, ""))
    if ended is not None:
        raise services.refuse_ended_runner_session(execution=ended, keys=keys, ip_address=client_ip(request))
    raise NotSignedIn()


class NotSignedIn(Exception):
    """No session at all (or one that expired) on a runner endpoint."""


def runner_endpoint(methods: Iterable[str]) -> Callable:
    """`endpoint` for runner routes: the session is checked by `_runner_context`, which can tell an
    ended runner session (and audit it) from no session at all."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except NotSignedIn:
                return _not_signed_in(request)
            except DecryptionFailed:
                return error_response(
                    500, "undecryptable", "The stored value could not be decrypted; nothing was returned."
                )

        return endpoint(methods, login_required=False)(wrapper)

    return decorator


@endpoint(["GET"])
def runner_ping(request: HttpRequest) -> HttpResponse:
    """Does this session (runner or user) still work? A constant answer, and nothing read."""
    return JsonResponse({"ok": True})


@sensitive_variables()
@runner_endpoint(["GET"])
def runner_secret(request: HttpRequest, key: str) -> HttpResponse:
    """A runner reads one value: from its workflow's home workspace (runner session) or from the
    user's personal workspace (ordinary session), with the forms of it a runner masks in its logs."""
    context = _runner_context(request, [key])
    values = services.read_secrets_for_runner(context=context, keys=[key], ip_address=client_ip(request))
    return JsonResponse({"key": key, "value": values[key], "redact": redaction_forms(values[key])})


@sensitive_variables()
@runner_endpoint(["POST"])
def runner_resolve(request: HttpRequest) -> HttpResponse:
    """A runner sends any JSON document and gets it back with each ${workflow.secrets.NAME}
    replaced, all or nothing, with the forms of every value filled in that it masks in its logs."""
    document = read_json_document(request)
    names = placeholders_in(document)
    context = _runner_context(request, names)
    values = (
        services.read_secrets_for_runner(context=context, keys=names, ip_address=client_ip(request), template=True)
        if names
        else {}
    )
    return JsonResponse(
        {"document": substitute(document, values), "secrets": names, "redact": redaction_forms(*values.values())}
    )


OPENAPI_MAX_AGE = 60 * 60


@endpoint(["GET"], login_required=False)
def openapi_document(request: HttpRequest) -> HttpResponse:
    """This API's OpenAPI document: public, like the README that describes the same routes."""
    response = JsonResponse(openapi.document())
    patch_cache_control(response, public=True, max_age=OPENAPI_MAX_AGE)
    return response


def not_found(request: HttpRequest) -> JsonResponse:
    return error_response(404, "not_found", f"No API endpoint at {request.path}.")
