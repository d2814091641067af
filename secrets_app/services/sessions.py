"""Sessions: the registry behind Account Settings → Sessions (`secrets_app.session_store` keeps it
in step with the session store), and ending sessions for every app server at once."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from secrets_app import permissions
from secrets_app.errors import AccessDenied, ExecutionNotRunning
from secrets_app.models import AuditEvent, UserSession
from secrets_app.selectors.sessions import session_gone, session_store
from secrets_app.services import audit
from secrets_app.services.runs import finish_execution


def register_session(
    *, user: Any, session_key: str, kind: str, ip_address: str | None = None, user_agent: str = ""
) -> UserSession:
    """Record a session that has just signed in, and forget the user's rows whose session is gone."""
    with transaction.atomic():
        UserSession.objects.filter(session_gone(), user=user).delete()
        user_session, _ = UserSession.objects.update_or_create(
            session_key=session_key,
            defaults={
                "user": user,
                "kind": kind,
                "execution": None,
                "ip_address": ip_address,
                "user_agent": user_agent[: UserSession.USER_AGENT_MAX_LENGTH],
            },
        )
    return user_session


def record_session_seen(*, session_key: str) -> None:
    """Note that a session was just used (callers throttle this: see SessionActivityMiddleware)."""
    UserSession.objects.filter(session_key=session_key).update(last_seen_at=timezone.now())


def _end_session(*, actor: Any, user_session: UserSession, ip_address: str | None) -> None:
    """End one session for every app server: a runner session's execution finishes exactly as
    `finish_execution` finishes it; any other session is deleted from the store."""
    if user_session.kind == UserSession.Kind.RUNNER:
        try:
            finish_execution(actor=actor, execution=user_session.execution, ip_address=ip_address)
            return
        except ExecutionNotRunning:
            pass  # already over; its session may linger only as a row
    session_store()(session_key=user_session.session_key).delete()


def revoke_session(*, actor: Any, user_session: UserSession, ip_address: str | None = None) -> None:
    """End one of the actor's own sessions at once (their current one too: that signs them out)."""
    if not permissions.can_end_session(actor, user_session):
        raise AccessDenied("You can only end your own sessions.")
    execution = user_session.execution
    with transaction.atomic():
        _end_session(actor=actor, user_session=user_session, ip_address=ip_address)
        audit.record_event(
            action=AuditEvent.Action.SESSION_REVOKED,
            actor=actor,
            workspace=execution.workspace if execution else None,
            execution_id=execution.id if execution else None,
            ip_address=ip_address,
            detail={"kind": user_session.kind, **({"workflow": execution.workflow_reference} if execution else {})},
        )


def revoke_other_sessions(
    *, actor: Any, current_session_key: str | None, ip_address: str | None = None
) -> dict[str, int]:
    """Sign out everywhere else: end every session of the actor's but the current one. Returns how
    many of each kind ended."""
    with transaction.atomic():
        return end_other_sessions(
            actor=actor, current_session_key=current_session_key, reason="requested", ip_address=ip_address
        )


def end_other_sessions(
    *, actor: Any, current_session_key: str | None, reason: str, ip_address: str | None
) -> dict[str, int]:
    """End every session of the actor's but the current one, in the caller's transaction, and audit
    it with `reason`. Returns how many of each kind ended."""
    others = (
        UserSession.objects.filter(permissions.own_sessions_filter(actor))
        .exclude(session_key=current_session_key or "")
        .select_related("execution__workspace")
    )
    ended = dict.fromkeys(UserSession.Kind.values, 0)
    executions = []
    for user_session in others:
        _end_session(actor=actor, user_session=user_session, ip_address=ip_address)
        ended[user_session.kind] += 1
        if user_session.execution_id:
            executions.append(str(user_session.execution_id))
    audit.record_event(
        action=AuditEvent.Action.OTHER_SESSIONS_REVOKED,
        actor=actor,
        ip_address=ip_address,
        detail={"reason": reason, "ended": ended, "executions": executions},
    )
    return ended
