"""Re-authentication ("sudo mode"), as GitHub has it: a sensitive action (launching an execution from
a person's session, tag grants, members and roles, value lookup, the workspace's two-factor policy,
removing a factor) goes through only within REAUTHENTICATION_MINUTES of the session's last password,
TOTP, passkey or single sign-on check, be it the sign-in itself or a confirmation since.

The checks are django-allauth's authentication records, kept in the session: allauth's pages write
them at sign-in and at "confirm it's you", and so do the API's sign-in and
`POST /api/v1/session/reauthenticate/`. allauth's own sensitive pages (two-factor, password) ask by
the same rule (`identity.AccountAdapter.is_reauthentication_required`), and so does every change
made in the admin site (console/urls.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from allauth.account.internal.flows.login import get_authentication_records, record_authentication
from django.conf import settings
from django.http import HttpRequest

from secrets_app import errors

# What counts as a check of who is there ("mfa" covers TOTP, recovery codes and passkeys).
_CHECKS = ("password", "mfa", "socialaccount")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def last_authenticated_at(request: HttpRequest) -> float | None:
    """When (Unix seconds) this session last proved who its user is, or None."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(request, "session"):
        return None
    times = [record["at"] for record in get_authentication_records(request, user) if record.get("method") in _CHECKS]
    return max(times, default=None)


def recently_authenticated(request: HttpRequest) -> bool:
    at = last_authenticated_at(request)
    return at is not None and time.time() - at < settings.ACCOUNT_REAUTHENTICATION_TIMEOUT


def require_recent_authentication(request: HttpRequest) -> None:
    """Raises errors.ReauthenticationRequired unless the session checked its user recently. The API
    answers 401 reauthentication_required; a page sends the user to "confirm it's you" and back to
    the page they were on, to send the form again: what they sent is never kept and replayed (a
    stolen session could plant a request for its owner's confirmation to carry out)."""
    if not recently_authenticated(request):
        raise errors.ReauthenticationRequired(minutes=settings.REAUTHENTICATION_MINUTES)


def reauthentication_required(view: Callable | None = None, *, methods: tuple[str, ...] = UNSAFE) -> Any:
    """Decorates a view or an API operation: a request by one of `methods` needs a recent check
    (`require_recent_authentication`)."""

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method in methods:
                require_recent_authentication(request)
            return function(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def record_check(request: HttpRequest, user: Any, *, method: str, reauthenticated: bool = False, **extra: Any) -> None:
    """Note in the session that its user just proved who they are (`method`: "password" or "mfa")."""
    record_authentication(request, user, method=method, reauthenticated=reauthenticated or None, **extra)
