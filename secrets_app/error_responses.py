"""Error answers in the JSON envelope `{"error": {"code", "message", ...}}`, for the JSON API and for
the pages' error handlers alike, and the one table that gives a domain error its status."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse

from secrets_app import errors

ERROR_STATUS: dict[type[errors.ConsoleError], int] = {
    errors.NotFound: 404,
    errors.AccessDenied: 403,
    errors.RunnerSessionEnded: 401,
    errors.AuthenticationRequired: 401,
    errors.Conflict: 409,
    errors.InvalidOperation: 400,
    errors.TooLarge: 413,
    errors.RateLimited: 429,
    errors.DatabaseUnavailable: 503,
}


class BadRequest(errors.ConsoleError):
    """A request refused while it is read (its body, its media type), with its own status."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.fields = status, code, fields

    def details(self) -> dict[str, Any]:
        return {"fields": self.fields} if self.fields else {}


def request_too_large_message() -> str:
    """What a body over DATA_UPLOAD_MAX_MEMORY_SIZE is told, by the server's buffer and by Django."""
    return f"The request body is over the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KiB limit, so it was refused."


def status_of(error: errors.ConsoleError) -> int:
    """The HTTP status of a domain error: its nearest class in ERROR_STATUS, else 400."""
    if isinstance(error, BadRequest):
        return error.status
    if isinstance(error, errors.SecretsRefused):
        return 404 if error.all_unknown else 403
    for error_type in type(error).__mro__:
        if error_type in ERROR_STATUS:
            return ERROR_STATUS[error_type]
    return 400


def error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def console_error_response(error: errors.ConsoleError) -> JsonResponse:
    """The answer to a domain error: its status, its code and message, and its details; with
    `Retry-After` when the error says when to try again."""
    response = error_response(status_of(error), error.code, error.message, **error.details())
    if getattr(error, "retry_after_seconds", None):
        response["Retry-After"] = str(error.retry_after_seconds)
    return response


def invalid_input_response(fields: dict[str, list[str]]) -> JsonResponse:
    """400 `invalid_input`, with each field's problems in `fields` and all of them in the message."""
    message = " ".join(
        f"{name}: {' '.join(messages)}" if name != "__all__" else " ".join(messages)
        for name, messages in fields.items()
    )
    return error_response(400, "invalid_input", message, fields=fields)


def validation_error_response(error: ValidationError) -> JsonResponse:
    """A service's ValidationError: 413 `value_too_large` naming the first field over its size
    limit, else 400 `invalid_input` with every field's messages."""
    fields = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    too_large = [
        name
        for name, field_errors in getattr(error, "error_dict", {}).items()
        if any(e.code == "value_too_large" for e in field_errors)
    ]
    if too_large:
        return error_response(413, "value_too_large", " ".join(fields[too_large[0]]), fields=fields)
    return invalid_input_response(fields)


def not_signed_in_response(request: HttpRequest) -> JsonResponse:
    """401: `session_expired` when a session cookie came (expired or ended), else `not_authenticated`."""
    if request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        return error_response(401, "session_expired", "Your session has expired or was ended; sign in again.")
    return error_response(401, "not_authenticated", "Sign in first: POST /api/v1/session/ with username and password.")


def not_found_response(request: HttpRequest) -> JsonResponse:
    return error_response(404, "not_found", f"No API endpoint at {request.path}.")
