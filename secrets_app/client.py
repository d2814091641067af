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

from __future__ import annotations

import argparse
import datetime
import getpass
import http.cookiejar
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from secrets_app.placeholders import placeholders_in, substitute
from secrets_app.redaction import SecretMaskingFilter, install_log_masking, mask, redaction_forms, remember

__all__ = [
    "AccessDenied",
    "ClientError",
    "ConsoleClient",
    "NotConfigured",
    "SecretExpired",
    "SecretMaskingFilter",
    "SecretNotFound",
    "ServerError",
    "SessionExpired",
    "WorkspaceMismatch",
    "get_secret",
    "install_log_masking",
    "mask",
    "placeholders_in",
    "redaction_forms",
    "resolve",
    "substitute",
]

logger = logging.getLogger("secrets_console.client")

LOCAL_SECRETS_FLAG = "CONSOLE_USE_LOCAL_SECRETS"
LOCAL_SECRET_PREFIX = "CONSOLE__SECRETS__"
SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
TIMEOUT_SECONDS = 30


# Errors


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


class SecretNotFound(ClientError):
    """No such secret where this session looks (or one it may not see)."""


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
    "workspace_not_found": SecretNotFound,
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


def _error_from(status: int, body: bytes) -> ClientError:
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = {name: value for name, value in error.items() if name not in ("code", "message")}
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details = "error", f"The console answered HTTP {status}.", {}
    error_type = _ERRORS_BY_CODE.get(code) or (ServerError if status >= 500 else ClientError)
    return error_type(message, code=code, status=status, details=details)


# Configuration


def login_file() -> Path:
    configured = os.environ.get("CONSOLE_LOGIN_FILE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "secrets-console" / "login.json"


def _configuration() -> tuple[str, str]:
    url, session = os.environ.get("CONSOLE_URL", ""), os.environ.get("CONSOLE_SESSION", "")
    if url and session:
        return url, session
    path = login_file()
    if path.is_file():
        saved = json.loads(path.read_text())
        return url or saved["url"], session or saved["session"]
    raise NotConfigured(
        "No console session: set CONSOLE_URL and CONSOLE_SESSION, or run `python -m secrets_app.client login`.",
        code="not_configured",
    )


def _use_local_secrets() -> bool:
    return os.environ.get(LOCAL_SECRETS_FLAG, "").strip().lower() in {"1", "true", "yes", "on"}


def _local_secret(key: str) -> str | None:
    return os.environ.get(LOCAL_SECRET_PREFIX + key) if _use_local_secrets() else None


# HTTP


class ConsoleClient:
    """One console session: cookies, the CSRF token for unsafe requests, typed errors."""

    def __init__(self, url: str, session: str = "") -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise NotConfigured(
                f"The console URL must start with https:// (or http:// locally), not {url!r}.", code="not_configured"
            )
        self.url = url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.session = session

    def _request(self, method: str, path: str, body: Any = None, *, unsafe: bool = False) -> Any:
        headers = {"Accept": "application/json"}
        if self.session:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.session}" + (f"; {CSRF_COOKIE}={self._csrf}" if unsafe else "")
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if unsafe:
            # Django checks the token, and on HTTPS the origin, of every unsafe request.
            headers.update({"X-CSRFToken": self._csrf, "Origin": self._origin()})
        # The scheme was checked in __init__: only http and https are ever opened.
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        logger.debug("%s %s", method, path)
        try:
            with self.opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise _error_from(error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as error:
            raise ServerError(f"Could not reach the console at {self.url}: {error}", code="unreachable") from None
        return json.loads(payload) if payload else None

    def _origin(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def _csrf(self) -> str:
        if not getattr(self, "_csrf_token", ""):
            self._csrf_token = self._request("GET", "/api/v1/session/")["csrf_token"]
        return self._csrf_token

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Sign in; remembers the new session (and the CSRF token rotated with it)."""
        answer = self._request("POST", "/api/v1/session/", {"username": username, "password": password}, unsafe=True)
        self.session = next(cookie.value for cookie in self.cookies if cookie.name == SESSION_COOKIE)
        self._csrf_token = answer["csrf_token"]
        return answer["user"]

    def logout(self) -> None:
        self._request("DELETE", "/api/v1/session/", unsafe=True)

    def whoami(self) -> dict[str, Any] | None:
        return self._request("GET", "/api/v1/session/")["user"]

    def get_secret(self, key: str) -> str:
        answer = self._request("GET", f"/api/v1/runner/secrets/{_quote(key)}/")
        remember(answer["redact"])
        return answer["value"]

    def resolve(self, document: Any) -> Any:
        answer = self._request("POST", "/api/v1/runner/resolve/", document, unsafe=True)
        remember(answer["redact"])
        return answer["document"]

    # For scripts driving the console as a signed-in user (not with a runner session).

    def add_secret(
        self,
        workspace: str,
        key: str,
        value: str,
        tags: list[str] | None = None,
        expires_at: datetime.date | str | None = None,
    ) -> dict[str, Any]:
        """Add a secret to `workspace`, optionally expiring at `expires_at` (a date, meaning the
        midnight starting it, or a datetime; without a time zone, the console's); answers its
        metadata (never the value)."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/secrets/"
        body: dict[str, Any] = {"key": key, "value": value, "tags": tags or []}
        if expires_at is not None:
            body["expires_at"] = expires_at if isinstance(expires_at, str) else expires_at.isoformat()
        return self._request("POST", path, body, unsafe=True)

    def import_dotenv(
        self, workspace: str, text: str, tags: list[str] | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Import a .env file's secrets into `workspace`, all or nothing: `{"imported": [keys]}`. With
        `dry_run`, nothing is written: `{"entries": [{"line", "key", "status", ...}], "importable"}`.
        A refusal raises ClientError (`invalid_input` or `secret_exists`) whose `details["entries"]`
        lists each line that stopped the import."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/secrets/import/"
        return self._request("POST", path, {"dotenv": text, "tags": tags or [], "dry_run": dry_run}, unsafe=True)

    def find_value(self, workspace: str, value: str) -> list[str]:
        """Workspace owners and admins: the keys of `workspace`'s secrets that hold `value` (the
        search is audited; only key names come back)."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/value-lookup/"
        return self._request("POST", path, {"value": value}, unsafe=True)["keys"]

    def list_secrets(self, workspace: str, page: int = 1, unread_days: int | None = None) -> dict[str, Any]:
        """One page (50) of the metadata of the secrets you may see in `workspace` (with
        `unread_days`, only those no runner has read in that many days)."""
        parameters = {"page": page} if unread_days is None else {"page": page, "unread_days": unread_days}
        query = urllib.parse.urlencode(parameters)
        return self._request("GET", f"/api/v1/workspaces/{_quote(workspace)}/secrets/?{query}")

    def delete_secret(self, workspace: str, key: str) -> None:
        """Delete a secret (to change a value: delete it, then add it again)."""
        self._request("DELETE", f"/api/v1/workspaces/{_quote(workspace)}/secrets/{_quote(key)}/", unsafe=True)

    def register_workflow(self, workspace: str, name: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Register a workflow in `workspace` (its home); answers its description."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/workflows/"
        return self._request("POST", path, {"name": name, "definition": definition}, unsafe=True)

    def launch(self, workspace: str, workflow: str) -> dict[str, Any]:
        """Launch `workflow` ("<home-slug>/<name>") in `workspace`; the answer's `runner_session`
        is what the runner sets as CONSOLE_SESSION."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/executions/"
        return self._request("POST", path, {"workflow": workflow}, unsafe=True)

    def finish(self, execution_id: str) -> dict[str, Any]:
        """End an execution; its runner session stops working at once."""
        return self._request("POST", f"/api/v1/executions/{_quote(execution_id)}/finish/", unsafe=True)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _client() -> ConsoleClient:
    url, session = _configuration()
    return ConsoleClient(url, session)


def get_secret(key: str) -> str:
    """The value of secret `key`: local context first (if enabled), else the console."""
    local = _local_secret(key)
    if local is not None:
        remember(redaction_forms(local))
        return local
    return _client().get_secret(key)


def resolve(document: Any) -> Any:
    """`document` with every `${workflow.secrets.NAME}` replaced by its value.

    Names found in the local context (if enabled) are filled in here and never sent anywhere;
    the console is asked for the others, all at once: one unknown or refused name fails the
    whole call and nothing is returned.
    """
    names = placeholders_in(document)
    values = {name: value for name in names if (value := _local_secret(name)) is not None}
    remember(redaction_forms(*values.values()))
    remote = [name for name in names if name not in values]
    if remote:
        values.update(_client().resolve({name: f"${{workflow.secrets.{name}}}" for name in remote}))
    return substitute(document, values)


# Command line: login, logout, whoami


def _write_login_file(url: str, session: str) -> Path:
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"url": url, "session": session}, file)
    path.chmod(0o600)
    return path


def main(argv: list[str] | None = None, *, read_password: Callable[[str], str] = getpass.getpass) -> int:
    parser = argparse.ArgumentParser(prog="python -m secrets_app.client", description="Secrets Console client")
    commands = parser.add_subparsers(dest="command", required=True)
    login_command = commands.add_parser("login", help="sign in and save the session to the login file")
    login_command.add_argument("--url", default=os.environ.get("CONSOLE_URL", "http://127.0.0.1:8000"))
    login_command.add_argument("--username", default=os.environ.get("USER", ""))
    commands.add_parser("logout", help="end the saved session and delete the login file")
    commands.add_parser("whoami", help="show who the configured session belongs to")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "login":
            client = ConsoleClient(arguments.url)
            user = client.login(arguments.username, read_password(f"Password for {arguments.username}: "))
            path = _write_login_file(client.url, client.session)
            print(f"Signed in as {user['username']}; session saved to {path} (mode 0600).")
        elif arguments.command == "logout":
            _client().logout()
            login_file().unlink(missing_ok=True)
            print("Signed out.")
        else:
            user = _client().whoami()
            print(f"Signed in as {user['username']}." if user else "The session has ended; log in again.")
    except ClientError as error:
        print(f"error: {error} ({error.code})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
