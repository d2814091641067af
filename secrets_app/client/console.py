"""The console over HTTP: one session's cookies, the CSRF token of unsafe requests, typed errors."""

from __future__ import annotations

import datetime
import http.cookiejar
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from secrets_app.client.errors import ClientError, NotConfigured, ServerError, error_from
from secrets_app.redaction import remember

logger = logging.getLogger("secrets_console.client")

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
TIMEOUT_SECONDS = 30


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is here: following it would send the session and
    CSRF token, which go in headers, to whatever address the answer names."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ConsoleClient:
    """One console session: cookies, the CSRF token for unsafe requests, typed errors. It never
    follows a redirect, so no credential is ever sent to another address than `url`."""

    def __init__(self, url: str, session: str = "") -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise NotConfigured(
                f"The console URL must start with https:// (or http:// locally), not {url!r}.", code="not_configured"
            )
        self.url = url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _RefuseRedirects)
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
            if 300 <= error.code < 400:
                raise ClientError(
                    f"The console at {self.url} answered {method} {path} with a redirect (HTTP {error.code}) to "
                    f"{error.headers.get('Location', 'elsewhere')!r}; the client does not follow redirects, so that "
                    "your session is never sent to another address. Set the console's URL to the address it "
                    "answers at.",
                    code="redirect_refused",
                    status=error.code,
                ) from None
            raise error_from(error.code, error.read()) from None
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

    def login(self, username: str, password: str, code: str | None = None) -> dict[str, Any]:
        """Sign in; remembers the new session (and the CSRF token rotated with it). An account with
        two-factor authentication needs `code` (a TOTP or recovery code): without it the server
        answers `mfa_required` (ClientError with that code)."""
        credentials = {"username": username, "password": password, **({"code": code} if code else {})}
        answer = self._request("POST", "/api/v1/session/", credentials, unsafe=True)
        self.session = next(cookie.value for cookie in self.cookies if cookie.name == SESSION_COOKIE)
        self._csrf_token = answer["csrf_token"]
        return answer["user"]

    def reauthenticate(self, *, password: str | None = None, code: str | None = None) -> str:
        """Confirm it's you before a sensitive call (one that answered `reauthentication_required`):
        your password or a TOTP code. Returns until when (ISO 8601) the confirmation lasts."""
        proof = {"password": password} if password is not None else {"code": code}
        return self._request("POST", "/api/v1/session/reauthenticate/", proof, unsafe=True)["reauthenticated_until"]

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

    def find_value(self, workspace: str, value: str) -> dict[str, Any]:
        """Workspace owners and admins: which of `workspace`'s secrets hold `value`, as
        `{"workspace", "keys": [the first 100 by key], "count": how many}` (the search is audited
        and rate-limited; only key names come back)."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/value-lookup/"
        return self._request("POST", path, {"value": value}, unsafe=True)

    def list_secrets(self, workspace: str, page: int = 1, unread_days: int | None = None) -> dict[str, Any]:
        """One page (50) of the metadata of the secrets you may see in `workspace` (with
        `unread_days`, only those no runner has read in that many days)."""
        parameters = {"page": page} if unread_days is None else {"page": page, "unread_days": unread_days}
        query = urllib.parse.urlencode(parameters)
        return self._request("GET", f"/api/v1/workspaces/{_quote(workspace)}/secrets/?{query}")

    def delete_secret(self, workspace: str, key: str) -> None:
        """Delete a secret (to change a value: delete it, then add it again)."""
        self._request("DELETE", f"/api/v1/workspaces/{_quote(workspace)}/secrets/{_quote(key)}/", unsafe=True)

    def register_workflow(
        self, workspace: str, name: str, definition: Mapping[str, Any], secrets: list[str] | None = None
    ) -> dict[str, Any]:
        """Register a workflow in `workspace` (its home); answers its description. Its runs may read
        the keys its definition's placeholders name and `secrets` (those its code reads by name)."""
        path = f"/api/v1/workspaces/{_quote(workspace)}/workflows/"
        body = {"name": name, "definition": definition, **({"secrets": secrets} if secrets is not None else {})}
        return self._request("POST", path, body, unsafe=True)

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
