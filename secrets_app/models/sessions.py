"""The registry of signed-in sessions (Account Settings → Sessions)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from secrets_app.models.runs import Execution


class UserSession(models.Model):
    """One signed-in session of a user (in a browser, through the API, or a runner's), so that
    they can see it and end it.

    It points at a session in the session store by that session's key, a credential: the key is
    never rendered nor returned, and pages and the API name a session by `id`. The store decides
    whether the session lives; a row whose session is gone, expired or no longer signs in stands
    for nothing (`selectors.sessions_of` leaves it out; `secrets_app.session_store` deletes rows
    with their sessions).
    """

    class Kind(models.TextChoices):
        BROWSER = "browser", "Browser"
        API = "api", "API"
        RUNNER = "runner", "Runner"

    USER_AGENT_MAX_LENGTH = 255

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_sessions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    execution = models.OneToOneField(
        Execution, on_delete=models.CASCADE, null=True, blank=True, related_name="user_session"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="user_session_user_created")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="runner", execution__isnull=False) | (~Q(kind="runner") & Q(execution__isnull=True)),
                name="user_session_runner_has_execution",
            )
        ]

    def __str__(self) -> str:
        # Never the session key.
        return f"{self.kind} session {self.pk} of user {self.user_id}"

    @property
    def device(self) -> str:
        """A short name for the client, from its user agent: "Firefox on Linux", "curl"."""
        agent = self.user_agent
        browser = next((name for marker, name in _USER_AGENT_CLIENTS if marker in agent), "")
        system = next((name for marker, name in _USER_AGENT_SYSTEMS if marker in agent), "")
        if browser:
            return f"{browser} on {system}" if system else browser
        return agent[:60] or "Unknown client"


# Looked for in this order: Edge's and Opera's user agents name Chrome too, Chrome's names Safari.
_USER_AGENT_CLIENTS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("Python-urllib/", "Python client"),
    ("python-requests/", "Python requests"),
)
_USER_AGENT_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
