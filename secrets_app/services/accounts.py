"""Users: sign-up, profile, password change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from secrets_app.services.sessions import end_other_sessions

User = get_user_model()


@sensitive_variables()
def register_user(*, username: str, email: str, password: str) -> Any:
    """Sign up: create the user (the personal workspace follows from the user signal)."""
    with transaction.atomic():
        return User.objects.create_user(username=username, email=email, password=password)


def update_profile(*, user: Any, first_name: str, last_name: str, email: str) -> None:
    user.first_name, user.last_name, user.email = first_name, last_name, email
    user.full_clean(exclude=["password", "username"])
    user.save(update_fields=["first_name", "last_name", "email"])


@sensitive_variables()
def change_password(
    *, user: Any, new_password: str, current_session_key: str | None, ip_address: str | None = None
) -> None:
    """Set a new password and end every other session of the user at once: browser, API and
    runner sessions are deleted from the store, not merely refused on their next use. The caller
    keeps the current session signed in (`update_session_auth_hash`)."""
    password_validation.validate_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        end_other_sessions(
            actor=user, current_session_key=current_session_key, reason="password_changed", ip_address=ip_address
        )
