"""The client's errors: typed by the console's error code, each carrying its message."""

from __future__ import annotations

import json
from typing import Any


class ClientError(Exception):
    """The console refused or could not answer; `code` is its error code."""

    def __init__(
        self, message: str, code: str = "error", status: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.status = code, status
        # The error's other fields, such as `fields` or an import's refused `entries`.
        self.details = details or {}


class NotConfigured(ClientError):
    """No console address or session: set CONSOLE_URL and CONSOLE_SESSION, or log in."""


class NotFound(ClientError):
    """What was asked for does not exist, or this session may not see it (the console does not say which)."""


class SecretNotFound(NotFound):
    """No such secret where this session looks (or one it may not see)."""


class WorkspaceNotFound(NotFound):
    """No such workspace (or one this session's user is not in)."""


class AccessDenied(ClientError):
    """The secret exists but this session's user may not use it."""


class WorkspaceMismatch(AccessDenied):
    """The execution runs in another workspace than the one its workflow was registered in."""


class SecretExpired(AccessDenied):
    """The secret has expired (and its workspace's grace, if any, has run out)."""


class SessionExpired(ClientError):
    """The session expired or was ended (for a runner: the execution finished or expired)."""


class ServerError(ClientError):
    """The console failed (5xx) or could not be reached."""


_ERRORS_BY_CODE: dict[str, type[ClientError]] = {
    "secret_not_found": SecretNotFound,
    "workspace_not_found": WorkspaceNotFound,
    "unknown_secrets": SecretNotFound,
    "permission_denied": AccessDenied,
    "secrets_refused": AccessDenied,
    "workspace_mismatch": WorkspaceMismatch,
    "secret_expired": SecretExpired,
    "session_expired": SessionExpired,
    "not_authenticated": SessionExpired,
    "execution_finished": SessionExpired,
    "execution_expired": SessionExpired,
}


def error_from(status: int, body: bytes) -> ClientError:
    """The typed error for an error answer of the console (its JSON envelope, or a bare status)."""
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = {name: value for name, value in error.items() if name not in ("code", "message")}
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details = "error", f"The console answered HTTP {status}.", {}
    error_type = _ERRORS_BY_CODE.get(code) or (
        ServerError if status >= 500 else NotFound if status == 404 else ClientError
    )
    return error_type(message, code=code, status=status, details=details)
