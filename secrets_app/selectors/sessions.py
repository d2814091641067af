"""A user's live sessions (browser, API, runner), from the registry and the session store."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.core.paginator import Page
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from secrets_app import permissions
from secrets_app.errors import SessionNotFound
from secrets_app.models import UserSession
from secrets_app.selectors.pagination import paginate


def session_store() -> type[SessionBase]:
    """The configured session engine's store (`settings.SESSION_ENGINE`)."""
    return import_module(settings.SESSION_ENGINE).SessionStore


def _store_sessions_alive() -> QuerySet[Session]:
    """The store's unexpired session under a UserSession row's key (for Exists or Subquery)."""
    return Session.objects.filter(session_key=OuterRef("session_key"), expire_date__gt=timezone.now())


def session_gone() -> Q:
    """Filter on UserSession: rows whose session is no longer in the store, or has expired."""
    return ~Q(Exists(_store_sessions_alive()))


def _session_rows(user: Any, current_session_key: str | None) -> QuerySet[UserSession]:
    """The user's registered sessions whose session is still in the store and unexpired, newest
    first, each with its expiry, its stored data (to check it still signs in) and `is_current`."""
    live = _store_sessions_alive()
    return (
        UserSession.objects.filter(permissions.own_sessions_filter(user))
        .annotate(
            expires_at=Subquery(live.values("expire_date")[:1]),
            session_data=Subquery(live.values("session_data")[:1]),
            is_current=ExpressionWrapper(Q(session_key=current_session_key or ""), BooleanField()),
        )
        .filter(expires_at__isnull=False)
        .select_related("execution__workspace")
        .order_by("-created_at")
    )


def _signs_in(row: UserSession, user: Any) -> bool:
    """Would this session still sign `user` in? Not once their password has changed by a path that
    did not end it (the admin site, `manage.py changepassword`): Django refuses it on its next use,
    so it is not listed as alive until then."""
    data = session_store()().decode(row.session_data)
    stored_hash = data.get(HASH_SESSION_KEY) or ""
    if data.get(SESSION_KEY) != str(user.pk) or not stored_hash:
        return False
    valid = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored_hash, auth_hash) for auth_hash in valid)


def _alive(rows: Iterable[UserSession], user: Any) -> list[UserSession]:
    alive = []
    for row in rows:
        if _signs_in(row, user):
            row.session_data = None
            alive.append(row)
    return alive


def sessions_of(user: Any, *, current_session_key: str | None, page: str | None = None) -> Page:
    """A page of the user's live sessions (browser, API, runner), newest first, the current one
    marked (`pagination.paginate`: PageNotFound for a page outside the list). A session whose
    password has since changed is left out of its page (it is refused on its next use)."""
    found = paginate(_session_rows(user, current_session_key), page)
    found.object_list = _alive(found.object_list, user)
    return found


def session_for(user: Any, session_id: str, *, current_session_key: str | None) -> UserSession:
    """One live session of the user's, or SessionNotFound (also for another user's session)."""
    try:
        rows = _session_rows(user, current_session_key).filter(pk=uuid.UUID(str(session_id)))
    except ValueError:
        raise SessionNotFound() from None
    found = _alive(rows, user)
    if not found:
        raise SessionNotFound()
    return found[0]
