"""Where a value comes from: the local context, else the console (its address and session from the
environment or the login file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from secrets_app.client.console import ConsoleClient
from secrets_app.client.errors import NotConfigured
from secrets_app.placeholders import placeholders_in, substitute
from secrets_app.redaction import redaction_forms, remember

LOCAL_SECRETS_FLAG = "CONSOLE_USE_LOCAL_SECRETS"
LOCAL_SECRET_PREFIX = "CONSOLE__SECRETS__"


def login_file() -> Path:
    configured = os.environ.get("CONSOLE_LOGIN_FILE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "secrets-console" / "login.json"


def configuration() -> tuple[str, str]:
    """(console URL, session): CONSOLE_URL and CONSOLE_SESSION, else the login file; NotConfigured if neither."""
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


def client_from_configuration() -> ConsoleClient:
    """A ConsoleClient for the configured console and session."""
    url, session = configuration()
    return ConsoleClient(url, session)


def get_secret(key: str) -> str:
    """The value of secret `key`: local context first (if enabled), else the console."""
    local = _local_secret(key)
    if local is not None:
        remember(redaction_forms(local))
        return local
    return client_from_configuration().get_secret(key)


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
        values.update(client_from_configuration().resolve({name: f"${{workflow.secrets.{name}}}" for name in remote}))
    return substitute(document, values)
