"""Workspaces and their members, with a role each."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from secrets_app.validators import EXPIRED_SECRET_GRACE_MAX_DAYS


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Workspace(models.Model):
    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        TEAM = "team", "Team"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEAM)
    personal_owner = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="personal_workspace",
        help_text="Set for personal workspaces only: the one user who can see it.",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="workspaces")
    expired_secret_grace_days = models.PositiveSmallIntegerField(
        "grace for expired secrets (days)",
        default=0,
        validators=[MaxValueValidator(EXPIRED_SECRET_GRACE_MAX_DAYS)],
        help_text="Days after a secret's expiry during which runners may still read it (0: none).",
    )
    require_mfa = models.BooleanField(
        "require two-factor authentication",
        default=False,
        help_text=(
            "Members without a second factor (TOTP or a passkey) keep seeing the workspace, but may not use its "
            "secrets, workflows or executions until they add one. Runner sessions already running keep working."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="personal") & Q(personal_owner__isnull=False))
                | (Q(kind="team") & Q(personal_owner__isnull=True)),
                name="workspace_personal_has_owner",
            )
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_personal(self) -> bool:
        return self.kind == self.Kind.PERSONAL


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"
