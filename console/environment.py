"""Settings from the environment, read literally and cast by django-environ.

django-environ's `Env` reads a value that starts with `$` as the name of another variable (its
"proxy" values), so `SECRET_KEY='$q*eo…'` would stop start-up with "Set the q*eo… environment
variable": a key in an error message. Here every variable is taken exactly as it is set, and cast
by django-environ's own parsers; what cannot be read stops start-up with a message that names
the variable and what it should be, never its value (a URL's password, a key).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

REQUIRED: Any = object()


def _read(name: str, default: Any, cast: Callable[[str], Any], expected: str) -> Any:
    raw = os.environ.get(name)
    if raw is None:
        if default is REQUIRED:
            raise ImproperlyConfigured(f"Set the {name} environment variable")
        return default
    try:
        return cast(raw)
    except Exception:
        raise ImproperlyConfigured(f"{name} must be {expected}; see the README's configuration table") from None


def text(name: str, default: Any = REQUIRED) -> str:
    return _read(name, default, str, "text")


def choice(name: str, default: str, choices: list[str]) -> str:
    def checked(raw: str) -> str:
        if raw not in choices:
            raise ValueError
        return raw

    return _read(name, default, checked, "one of " + ", ".join(choices))


def flag(name: str, default: bool) -> bool:
    return _read(name, default, lambda raw: environ.Env.parse_value(raw, bool), "true or false")


def number(name: str, default: int) -> int:
    return _read(name, default, lambda raw: environ.Env.parse_value(raw, int), "a whole number")


def names(name: str, default: list[str]) -> list[str]:
    return _read(name, default, lambda raw: environ.Env.parse_value(raw, list), "a comma-separated list")


def rate(name: str, default: str) -> str:
    """A rate as django-ratelimit reads it: a count per second, minute, hour or day (`10/h`)."""

    def checked(raw: str) -> str:
        if not re.fullmatch(r"[0-9]+/[0-9]*[smhd]", raw):
            raise ValueError
        return raw

    return _read(name, default, checked, "a rate such as 10/h (a count per s, m, h or d)")


def _url(name: str, default: str | None, parse: Callable[[str], dict[str, Any]], expected: str) -> dict[str, Any]:
    def strictly(raw: str) -> dict[str, Any]:
        # django-environ warns of a URL it cannot place, quoting what it parsed (a password too):
        # that is an error here, and its text is never shown.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return parse(raw)

    value = _read(name, REQUIRED if default is None else None, strictly, expected)
    return strictly(default) if value is None else value


def database(name: str, default: str | None = None) -> dict[str, Any]:
    return _url(name, default, environ.Env.db_url_config, "a database URL, such as postgres://user:pass@host/name")


def cache(name: str, default: str | None = None) -> dict[str, Any]:
    return _url(name, default, environ.Env.cache_url_config, "a cache URL, such as redis://host:6379/1")


def email(name: str, default: str) -> dict[str, Any]:
    return _url(name, default, environ.Env.email_url_config, "a mail URL, such as smtp+tls://user:pass@host:587")


def web_origin(url: str) -> str:
    """The origin (scheme://host[:port]) of a URL, as a Content-Security-Policy source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
