"""Receivers: every new user gets a personal workspace, whichever path created them."""

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import services


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="secrets_app.personal_workspace")
def give_new_user_a_personal_workspace(
    sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if created and not raw:
        services.create_personal_workspace(user=instance)
