"""Receivers: every new user gets a personal workspace, whichever path created them; every sign-in
(browser or API) is recorded in the session registry, and resets its username's count of failed
sign-ins (never its address's: see AXES_RESET_ON_SUCCESS)."""

from typing import Any

from axes.utils import reset as reset_failed_sign_ins
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest

from secrets_app.http import client_ip, is_api_request
from secrets_app.models import UserSession
from secrets_app.services.sessions import register_session
from secrets_app.services.workspaces import create_personal_workspace


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="secrets_app.personal_workspace")
def give_new_user_a_personal_workspace(
    sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if created and not raw:
        create_personal_workspace(user=instance)


@receiver(user_logged_in, dispatch_uid="secrets_app.session_registry")
def register_signed_in_session(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    # Signing in over an existing session of someone else's empties it and leaves it without a
    # key until the response; the registry needs the key now.
    if request.session.session_key is None:
        request.session.save()
    register_session(
        user=user,
        session_key=request.session.session_key,
        kind=UserSession.Kind.API if is_api_request(request) else UserSession.Kind.BROWSER,
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )


@receiver(user_logged_in, dispatch_uid="secrets_app.reset_username_failures")
def reset_the_usernames_failed_sign_ins(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    reset_failed_sign_ins(username=user.get_username())
