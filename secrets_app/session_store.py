"""The session engine: Django's `cached_db`, with the registry of signed-in sessions kept in step.

`UserSession` rows point at sessions by key. Every way a session ends or changes key goes through
this store (sign-out, a finished execution, a revoked session, Django flushing a session whose
password hash no longer matches, the new key given at sign-in and at password change), so the
registry follows the store here, in one place, on every app server.
"""

from __future__ import annotations

from django.contrib.sessions.backends import cached_db

from secrets_app.models import UserSession
from secrets_app.selectors.sessions import session_gone


class SessionStore(cached_db.SessionStore):
    def cycle_key(self) -> None:
        """Give the session a new key, keeping its data and its registry row.

        Django's own `cycle_key` (the same four steps) deletes the old key before anyone could
        move the row; here the row is moved first.
        """
        data = self._session
        previous = self.session_key
        self.create()
        self._session_cache = data
        if previous:
            UserSession.objects.filter(session_key=previous).update(session_key=self.session_key)
            self.delete(previous)

    def delete(self, session_key: str | None = None) -> None:
        ending = self.session_key if session_key is None else session_key
        super().delete(session_key)
        if ending:
            UserSession.objects.filter(session_key=ending).delete()

    @classmethod
    def clear_expired(cls) -> None:
        """`manage.py clearsessions`: expired sessions, and the registry rows left without one."""
        super().clear_expired()
        UserSession.objects.filter(session_gone()).delete()
