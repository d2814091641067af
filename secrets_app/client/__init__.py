"""Secrets Console runner client: standard library only, importable without Django.

    from secrets_app.client import get_secret, resolve
    token = get_secret("API_KEY")
    inputs = resolve({"headers": {"Authorization": "Bearer ${workflow.secrets.API_KEY}"}})

Where it reads from, first match wins:

1. With CONSOLE_USE_LOCAL_SECRETS=true, the environment variable CONSOLE__SECRETS__<KEY>
   answers before the console is asked (for tests and local development).
2. The console at CONSOLE_URL, with the session in CONSOLE_SESSION: a runner session from
   launching an execution (secrets come from the workflow's home workspace), or an ordinary
   session (a local run: your personal workspace only).
3. Without those variables, the login file written by `python -m secrets_app.client login`
   (CONSOLE_LOGIN_FILE, default ~/.config/secrets-console/login.json, mode 0600).

Errors are typed (SecretNotFound, AccessDenied, WorkspaceMismatch, SessionExpired, ...) and carry
the console's message. The client never logs or prints a value.

Every value the process obtains is remembered with the forms in which it may show up in a log
(`redaction_forms`); `mask(text)` replaces them with `***`, and `SecretMaskingFilter` does it to
log records:

    logging.basicConfig(level=logging.INFO)
    install_log_masking()  # or handler.addFilter(SecretMaskingFilter()) on each handler

The placeholder grammar (`secrets_app.placeholders`) and the forms to mask (`secrets_app.redaction`)
are modules of their own, standard library only, which the console uses too: client and server
read templates and compute forms the same way.
"""

from secrets_app.client.console import ConsoleClient
from secrets_app.client.context import get_secret, login_file, resolve
from secrets_app.client.errors import (
    AccessDenied,
    ClientError,
    NotConfigured,
    NotFound,
    SecretExpired,
    SecretNotFound,
    ServerError,
    SessionExpired,
    WorkspaceMismatch,
    WorkspaceNotFound,
)
from secrets_app.placeholders import placeholders_in, substitute
from secrets_app.redaction import SecretMaskingFilter, install_log_masking, mask, redaction_forms, remember

__all__ = [
    "AccessDenied",
    "ClientError",
    "ConsoleClient",
    "NotConfigured",
    "NotFound",
    "SecretExpired",
    "SecretMaskingFilter",
    "SecretNotFound",
    "ServerError",
    "SessionExpired",
    "WorkspaceMismatch",
    "WorkspaceNotFound",
    "get_secret",
    "install_log_masking",
    "login_file",
    "mask",
    "placeholders_in",
    "redaction_forms",
    "remember",
    "resolve",
    "substitute",
]
