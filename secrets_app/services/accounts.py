"""Users: sign-up, profile, password change and reset, second factors. Every identity event is
audited; those that take a credential away (a new password, a removed factor) end the user's other
sessions, runner sessions included, in the same transaction."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from secrets_app.models import AuditEvent
from secrets_app.services import audit
from secrets_app.services.sessions import end_other_sessions

User = get_user_model()


@sensitive_variables()
def register_user(*, username: str, email: str, password: str) -> Any:
    """Sign up: create the user (the personal workspace follows from the user signal)."""
    with transaction.atomic():
        return User.objects.create_user(username=username, email=email, password=password)


def update_profile(*, user: Any, first_name: str, last_name: str) -> None:
    """Your name (your address is changed on Account Settings → E-mail, which confirms it)."""
    user.first_name, user.last_name = first_name, last_name
    user.full_clean(exclude=["password", "username", "email"])
    user.save(update_fields=["first_name", "last_name"])


def record_sign_up(*, user: Any, method: str, ip_address: str | None = None) -> None:
    """Audit a sign-up; `method` is "password" (the sign-up page) or "sso" (single sign-on)."""
    audit.record_event(
        action=AuditEvent.Action.USER_SIGNED_UP, actor=user, ip_address=ip_address, detail={"method": method}
    )


def after_password_change(*, user: Any, current_session_key: str | None, ip_address: str | None = None) -> None:
    """A password was changed (allauth's form has saved it): end every other session of the user's."""
    with transaction.atomic():
        audit.record_event(action=AuditEvent.Action.PASSWORD_CHANGED, actor=user, ip_address=ip_address)
        end_other_sessions(
            actor=user, current_session_key=current_session_key, reason="password_changed", ip_address=ip_address
        )


def after_password_reset(*, user: Any, ip_address: str | None = None) -> None:
    """A password was reset from an e-mailed link: whoever held the old one may be signed in
    anywhere, so every session of the user's ends, runner sessions included."""
    with transaction.atomic():
        audit.record_event(action=AuditEvent.Action.PASSWORD_RESET, actor=user, ip_address=ip_address)
        end_other_sessions(actor=user, current_session_key=None, reason="password_reset", ip_address=ip_address)


def record_factor_added(*, user: Any, factor: str, ip_address: str | None = None) -> None:
    """Audit a second factor added: "totp", "recovery_codes" or "webauthn"."""
    audit.record_event(
        action=AuditEvent.Action.FACTOR_ADDED, actor=user, ip_address=ip_address, detail={"factor": factor}
    )


def after_factor_removed(
    *, user: Any, factor: str, current_session_key: str | None, ip_address: str | None = None
) -> None:
    """A second factor was removed: audit it and end the user's other sessions, which may have
    been signed in with it."""
    with transaction.atomic():
        audit.record_event(
            action=AuditEvent.Action.FACTOR_REMOVED, actor=user, ip_address=ip_address, detail={"factor": factor}
        )
        end_other_sessions(
            actor=user, current_session_key=current_session_key, reason="factor_removed", ip_address=ip_address
        )


def record_recovery_codes_regenerated(*, user: Any, ip_address: str | None = None) -> None:
    audit.record_event(action=AuditEvent.Action.RECOVERY_CODES_REGENERATED, actor=user, ip_address=ip_address)


def record_recovery_code_used(*, user: Any, unused: int, ip_address: str | None = None) -> None:
    """Audit a sign-in (or confirmation) with a recovery code, and how many codes are left."""
    audit.record_event(
        action=AuditEvent.Action.RECOVERY_CODE_USED, actor=user, ip_address=ip_address, detail={"unused": unused}
    )


def record_reauthentication(*, user: Any, method: str, ip_address: str | None = None) -> None:
    """Audit a confirmation of identity for a sensitive action: "password", "totp", "recovery_codes"
    or "webauthn"."""
    audit.record_event(
        action=AuditEvent.Action.REAUTHENTICATED, actor=user, ip_address=ip_address, detail={"method": method}
    )


def record_user_access_change(*, actor: Any, user: Any, changes: dict[str, Any], ip_address: str | None = None) -> None:
    """Audit a change to what `user` may reach made in the admin site: active, staff, superuser,
    groups (tag grants reach group members), permissions; `changes` says from what to what."""
    audit.record_event(
        action=AuditEvent.Action.USER_ACCESS_CHANGED,
        actor=actor,
        ip_address=ip_address,
        detail={"user": user.get_username(), **changes},
    )


def after_password_set_by_admin(*, actor: Any, user: Any, ip_address: str | None = None) -> None:
    """Someone else set `user`'s password (the admin site): audit it and end every session of the
    user's, runner sessions included."""
    with transaction.atomic():
        audit.record_event(
            action=AuditEvent.Action.PASSWORD_SET_BY_ADMIN,
            actor=actor,
            ip_address=ip_address,
            detail={"user": user.get_username()},
        )
        end_other_sessions(actor=user, current_session_key=None, reason="password_set_by_admin", ip_address=ip_address)
