"""What an operation may answer, as the OpenAPI document shows it: its successes, and for each error
status an `Error<status>` schema listing the codes the API gives with that status.

Every operation names all of its statuses through `answers(...)`; `tests/test_openapi.py` checks
that each lists what its kind of operation can give (401 when it needs a session, 400/413/415
when it takes a body, 403 for CSRF or runner-session scope, 404 for path parameters, 503).
"""

from collections import defaultdict
from typing import Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field, create_model

from secrets_app import errors
from secrets_app.error_responses import ERROR_STATUS, BadRequest

# Codes given by the request's handling rather than by a domain error: authentication, CSRF and
# runner-session scope (middleware), reading the body, the sign-in lockout, the runner read's
# decryption, and Django's own error handlers.
REQUEST_ERROR_CODES: dict[int, set[str]] = {
    400: {"invalid_input", "malformed_json", "bad_request"},
    401: {
        "not_authenticated",
        "session_expired",
        "invalid_credentials",
        "invalid_code",
        *errors.RunnerSessionEnded.messages_by_reason,
    },
    403: {
        "csrf_failed",
        "runner_session_scope",
        "secrets_refused",
        "sso_only",
        "email_unverified",
        errors.MfaRequiredByWorkspace.code,
    },
    404: {"not_found", "unknown_secrets"},
    405: {"method_not_allowed", errors.SecretImmutable.code},
    413: {"request_too_large", "value_too_large"},
    415: {"unsupported_media_type"},
    429: {"too_many_sign_in_attempts"},
    500: {"undecryptable", "server_error"},
}

ERROR_DESCRIPTIONS = {
    400: "The input is not valid (`fields` names each problem), or the body is not JSON.",
    401: (
        "Not signed in, a session that ended, or a runner session whose execution ended; a sign-in that needs "
        "its two-factor code (`mfa_required`), or an action that needs a recent re-authentication "
        "(`reauthentication_required`)."
    ),
    403: (
        "Not allowed; a missing or stale CSRF token; a runner session outside the runner endpoints; or a "
        "workspace that requires two-factor authentication of you (`mfa_required_by_workspace`)."
    ),
    404: "Not there, or not visible to you: the answer is the same either way.",
    405: "Not allowed on this resource.",
    409: "Conflicts with what is there.",
    413: "The body is over 1 MiB, or a value over 64 KiB.",
    415: "The body is not application/json.",
    429: "Sign-in is locked for this username or address after repeated failures (see Retry-After).",
    500: "A stored value could not be decrypted; nothing was returned.",
    503: "The database is unreachable; nothing was changed. Try again (see Retry-After).",
}

# Every operation that needs a session: not signed in; CSRF or runner-session scope; no database.
SIGNED_IN = (401, 403, 503)
# Every operation that takes a JSON body: invalid input or not JSON; too large; not JSON at all.
JSON_BODY = (400, 413, 415)


def error_codes_by_status() -> dict[int, list[str]]:
    """Every error code the API can answer, by status: the domain errors of `errors.py` mapped
    through ERROR_STATUS, and those of REQUEST_ERROR_CODES."""
    codes: dict[int, set[str]] = defaultdict(set, {status: set(names) for status, names in REQUEST_ERROR_CODES.items()})
    pending = list(errors.ConsoleError.__subclasses__())
    while pending:
        error_type = pending.pop()
        pending.extend(error_type.__subclasses__())
        if error_type in (BadRequest, errors.SecretsRefused, errors.SecretImmutable):
            # Codes and statuses chosen per instance, or (an update of a secret) answered 405 by the
            # route itself: listed in REQUEST_ERROR_CODES.
            continue
        status = next((ERROR_STATUS[t] for t in error_type.__mro__ if t in ERROR_STATUS), 400)
        codes[status].add(error_type.code)
    return {status: sorted(names) for status, names in sorted(codes.items())}


class ImportEntry(Schema):
    """One line of a .env import: its number, its key (null if not a valid key), its status."""

    model_config = ConfigDict(extra="forbid")

    line: int = Field(ge=1)
    key: str | None
    status: Literal["new", "conflict", "invalid"]
    code: str = Field(default=None, description="Why the line is refused.")
    error: str = Field(default=None, description="Why the line is refused, for people.")


def _error_model(status: int, codes: list[str]) -> type[Schema]:
    detail = create_model(
        f"Error{status}Detail",
        __base__=Schema,
        code=(Literal[tuple(codes)], ...),
        message=(str, ...),
        fields=(dict[str, list[str]], Field(default=None, description="Input errors by field name.")),
        field=(str, Field(default=None, description="The credential to send, or the one that was wrong.")),
        secrets=(dict[str, str], Field(default=None, description="A refused runner read: the reason for each key.")),
        keys=(list[str], Field(default=None, description="A refused .env import: the keys that already exist.")),
        entries=(
            list[ImportEntry],
            Field(default=None, description="A refused .env import: every line that stopped it."),
        ),
    )
    return create_model(f"Error{status}", __base__=Schema, __doc__=ERROR_DESCRIPTIONS[status], error=(detail, ...))


ERROR_MODELS: dict[int, type[Schema]] = {
    status: _error_model(status, codes) for status, codes in error_codes_by_status().items()
}


def answers(successes: dict[int, Any], *error_statuses: int) -> dict[int, Any]:
    """An operation's `response=`: its successes (status: schema, None for no body) and an
    Error schema for each error status."""
    return {**successes, **{status: ERROR_MODELS[status] for status in sorted(set(error_statuses))}}
