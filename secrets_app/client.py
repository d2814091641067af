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

This module also holds the placeholder grammar, `${workflow.secrets.NAME}`, and `redaction_forms`,
which the console uses too, so client and server read templates and compute forms the same way.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import getpass
import http.cookiejar
import json
import logging
import os
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

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

# ${workflow.secrets.NAME}, NAME being a secret key. Lookalikes ($workflow.secrets.X,
# ${workflow.secret.X}, ${ workflow.secrets.X }) are not placeholders and are left alone.
PLACEHOLDER = re.compile(r"\$\{workflow\.secrets\.([A-Za-z_][A-Za-z0-9_.-]{0,127})\}")
LOCAL_SECRETS_FLAG = "CONSOLE_USE_LOCAL_SECRETS"
LOCAL_SECRET_PREFIX = "CONSOLE__SECRETS__"
SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
TIMEOUT_SECONDS = 30


# The placeholder grammar


def _strings_in(document: Any) -> list[str]:
    """Every string value in a JSON document (dictionary keys are not templates)."""
    found, pending = [], [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return found


def placeholders_in(document: Any) -> list[str]:
    """The secret keys a document's `${workflow.secrets.NAME}` placeholders name, sorted."""
    return sorted({name for text in _strings_in(document) for name in PLACEHOLDER.findall(text)})


def substitute(document: Any, values: Mapping[str, str]) -> Any:
    """A copy of `document` with each placeholder replaced by `values[NAME]` (all must be given)."""

    def replace(text: str) -> str:
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return replace(item)
        if isinstance(item, Mapping):
            return {key: walk(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(value) for value in item]
        return item

    return walk(document)


# Redaction: the forms in which a value may show up in a log

MASK = "***"
# A form derived from a value (a line, a JSON leaf, an encoding) is masked only if it holds at
# least this many characters besides surrounding whitespace: fragments such as "}", "],", "en"
# occur all over any log and give away next to nothing. The value itself is masked whatever its
# length (unless it is only whitespace): someone declared it secret, and a log spoiled by a
# too-short secret is a visible nuisance where a leaked one is not.
MIN_MASKED_FORM_LENGTH = 4
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def redaction_forms(*values: str) -> list[str]:
    """The forms in which any of `values` may appear in a log, de-duplicated, longest first."""
    forms: set[str] = set()
    for value in values:
        if value.strip():
            forms.add(value)
            forms.update(form for form in _forms_of(value) if len(form.strip()) >= MIN_MASKED_FORM_LENGTH)
    return sorted(forms, key=_longest_first)


def _longest_first(form: str) -> tuple[int, str]:
    return -len(form), form


def _forms_of(value: str) -> set[str]:
    """Every form of one value, however short: as is, line by line, encoded, and its JSON leaves."""
    forms = {value}
    for line in _LINE_BREAK.split(value):
        forms.update((line, line.strip()))
    # surrogatepass: an environment variable may hold any code point, and this must never raise.
    encoded = value.encode("utf-8", "surrogatepass")
    for base64_text in (base64.b64encode(encoded), base64.urlsafe_b64encode(encoded)):
        forms.update((base64_text.decode("ascii"), base64_text.decode("ascii").rstrip("=")))
    forms.add(urllib.parse.quote(value, safe="", errors="surrogatepass"))
    forms.add(urllib.parse.quote_plus(value, safe="", errors="surrogatepass"))
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    for leaf in _json_leaves(value):
        forms.update(_forms_of(leaf))
    return forms


def _json_leaves(value: str) -> list[str]:
    """Each string leaf of `value` if it is a JSON object or array, else none."""
    if not value.lstrip().startswith(("{", "[")):
        return []
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return []
    return _strings_in(document) if isinstance(document, (dict, list)) else []


class _MaskedForms:
    """The process's forms to mask: they only accumulate, and may be added from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        # (any form, every form at each position): replaced as one pair, read without the lock.
        self._patterns: tuple[re.Pattern[str], re.Pattern[str]] | None = None

    def add(self, forms: Iterable[str]) -> None:
        with self._lock:
            new = {form for form in forms if isinstance(form, str) and form} - self._forms
            if not new:
                return
            self._forms |= new
            # Longest first: where two forms start at the same place, the longer one is masked.
            alternation = "|".join(re.escape(form) for form in sorted(self._forms, key=_longest_first))
            self._patterns = (re.compile(alternation), re.compile(f"(?=({alternation}))"))

    def mask(self, text: str) -> str:
        patterns = self._patterns
        first = patterns[0].search(text) if patterns else None
        if first is None:
            return text
        # Overlapping forms are masked as one span, so no tail of either is left showing.
        spans: list[list[int]] = []
        for match in patterns[1].finditer(text, first.start()):
            start, end = match.span(1)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        pieces, shown_from = [], 0
        for start, end in spans:
            pieces += [text[shown_from:start], MASK]
            shown_from = end
        pieces.append(text[shown_from:])
        return "".join(pieces)


_masked_forms = _MaskedForms()


def mask(text: str) -> str:
    """`text` with every form of every value this process has obtained replaced by `***`."""
    return _masked_forms.mask(text)


class SecretMaskingFilter(logging.Filter):
    """Masks values in a record's message (its arguments applied), exception text and stack.

    Install it on handlers (`handler.addFilter(SecretMaskingFilter())`, or `install_log_masking()`):
    a filter on a logger does not see the records of its child loggers, a handler's does.
    """

    # Tracebacks are rendered here, masked, and kept as the record's exc_text, which formatters
    # print instead of rendering the exception again.
    _traceback_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # Arguments that do not fit the format: keep them, masked, rather than let logging
            # report the failure by printing them unmasked to stderr.
            arguments = record.args.values() if isinstance(record.args, Mapping) else record.args or ()
            message = " ".join(str(part) for part in (record.msg, *arguments))
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> SecretMaskingFilter:
    """Add a SecretMaskingFilter to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    if not target.handlers:
        # Records would reach logging's last-resort handler, which no filter can be added to.
        raise ValueError(f"Logger {target.name!r} has no handlers: configure logging first, then install masking.")
    masking = SecretMaskingFilter()
    for handler in target.handlers:
        if not any(isinstance(existing, SecretMaskingFilter) for existing in handler.filters):
            handler.addFilter(masking)
    return masking


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
        _masked_forms.add(answer["redact"])
        return answer["value"]

    def resolve(self, document: Any) -> Any:
        answer = self._request("POST", "/api/v1/runner/resolve/", document, unsafe=True)
        _masked_forms.add(answer["redact"])
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
        _masked_forms.add(redaction_forms(local))
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
    _masked_forms.add(redaction_forms(*values.values()))
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
