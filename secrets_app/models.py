"""Workspaces, members, secrets, tags and the audit log."""

from __future__ import annotations

import datetime
import enum
import ipaddress
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from . import crypto
from .errors import SecretImmutable
from .fields import EncryptedTextField, SealedValue, SealedValueFingerprintField, SealingKeyIdField
from .validators import (
    SECRET_KEY_MAX_LENGTH,
    TAG_MAX_LENGTH,
    WORKFLOW_NAME_MAX_LENGTH,
    validate_secret_key,
    validate_tag_name,
    validate_workflow_name,
)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# Longest grace a workspace may give its expired secrets.
EXPIRED_SECRET_GRACE_MAX_DAYS = 365


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


class Tag(models.Model):
    """A `key` or `key:value` label on secrets; object permissions on a tag reach its secrets."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=TAG_MAX_LENGTH, validators=[validate_tag_name])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="tag_unique_per_workspace")]
        # Granted per tag with guardian; each reaches every secret that carries the tag.
        permissions = [
            ("view_tagged_secrets", "See the metadata of secrets with this tag"),
            ("use_tagged_secrets", "Use the values of secrets with this tag at run time"),
            ("delete_tagged_secrets", "Delete secrets with this tag"),
        ]

    def __str__(self) -> str:
        return self.name


class TagUserObjectPermission(UserObjectPermissionBase):
    """A tag permission granted to one user (guardian's direct foreign-key form)."""

    content_object = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="user_grants")

    class Meta(UserObjectPermissionBase.Meta):
        pass


class TagGroupObjectPermission(GroupObjectPermissionBase):
    """A tag permission granted to a group (guardian's direct foreign-key form)."""

    content_object = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="group_grants")

    class Meta(GroupObjectPermissionBase.Meta):
        pass


IMMUTABLE_SECRET_FIELDS = frozenset(
    {"id", "workspace", "workspace_id", "key", "value", "key_id", "fingerprint", "expires_at"}
)

# Fields whose value as loaded is remembered, so that `save()` can refuse a change to them.
_REMEMBERED_SECRET_FIELDS = ("workspace_id", "key", "expires_at")


class ExpiryState(enum.StrEnum):
    """Where a secret stands against its expiry date."""

    NONE = "none"  # no expiry date
    ACTIVE = "active"
    EXPIRING = "expiring"  # expires within the warning window (SECRET_EXPIRY_WARNING_DAYS)
    GRACE = "grace"  # expired, but the workspace's grace has not run out
    EXPIRED = "expired"


@dataclass(frozen=True)
class Expiry:
    """A secret's expiry as of `now`: its state, whole days left (negative once expired), and when
    the workspace's grace ends."""

    state: ExpiryState
    expires_at: datetime.datetime | None = None
    grace_ends_at: datetime.datetime | None = None
    days_left: int | None = None

    @property
    def days_ago(self) -> int | None:
        """Whole days since it expired."""
        return None if self.days_left is None else -self.days_left

    @classmethod
    def of(cls, expires_at: datetime.datetime | None, *, grace_days: int, now: datetime.datetime) -> Expiry:
        if expires_at is None:
            return cls(ExpiryState.NONE)
        grace_ends_at = expires_at + datetime.timedelta(days=grace_days)
        if expires_at > now:
            days_left = (expires_at - now).days
            soon = days_left < settings.SECRET_EXPIRY_WARNING_DAYS
            state = ExpiryState.EXPIRING if soon else ExpiryState.ACTIVE
        else:
            days_left = -((now - expires_at).days)
            state = ExpiryState.GRACE if now < grace_ends_at else ExpiryState.EXPIRED
        return cls(state, expires_at, grace_ends_at, days_left)


class SecretQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        if IMMUTABLE_SECRET_FIELDS & kwargs.keys():
            raise SecretImmutable()
        return super().update(**kwargs)

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        if IMMUTABLE_SECRET_FIELDS & set(fields):
            raise SecretImmutable()
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def reseal(self, secret: Secret) -> bool:
        """Replace `secret`'s stored value by the same plaintext sealed under the active key.

        The one write allowed to touch a value after creation, because the value it writes is
        the value that was there. Conditional on the row still holding the bytes that were
        opened, so a concurrent delete or rotation is left alone; False when nothing was written.
        """
        resealed = SealedValue(crypto.reseal(secret.value, secret.associated_data()))
        still_as_read = self.filter(pk=secret.pk, key_id=secret.key_id, value=secret.value)
        written = models.QuerySet.update(still_as_read, value=resealed, key_id=crypto.sealed_key_id(resealed))
        return written == 1


class Secret(models.Model):
    """A key and its sealed value in one workspace. Immutable once saved."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="secrets")
    key = models.CharField(max_length=SECRET_KEY_MAX_LENGTH, validators=[validate_secret_key])
    value = EncryptedTextField(fingerprint_field="fingerprint")
    key_id = SealingKeyIdField(sealed_field="value", help_text="Id of the encryption key the value is sealed with.")
    # Never shown, never compared across workspaces (see crypto.value_fingerprint); empty for a
    # value that could not be opened when fingerprints were introduced.
    fingerprint = SealedValueFingerprintField(sealed_field="value")
    tags = models.ManyToManyField(Tag, through="SecretTag", related_name="secrets", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this, runners are refused the value (unless the workspace gives grace)."
    )

    objects = SecretQuerySet.as_manager()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="secret_key_unique_per_workspace")]
        indexes = [
            models.Index(fields=["key_id", "id"], name="secret_sealing_key"),
            models.Index(fields=["workspace", "fingerprint"], name="secret_value_fingerprint"),
        ]

    def __str__(self) -> str:
        return self.key

    def __repr__(self) -> str:
        return f"<Secret {self.key!r} in workspace {self.workspace_id}>"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            self._refuse_identity_or_value_change()
        super().save(*args, **kwargs)
        self._remember_identity()

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Secret:
        instance = super().from_db(db, field_names, values)
        instance._remember_identity()
        return instance

    def _remember_identity(self) -> None:
        loaded = self.__dict__
        self._saved_identity = {name: loaded[name] for name in _REMEMBERED_SECRET_FIELDS if name in loaded}

    @property
    def expiry(self) -> Expiry:
        """The expiry as of now, under its workspace's grace (for pages and the API; the runner
        read decides from the grace its own query read)."""
        return Expiry.of(self.expires_at, grace_days=self.workspace.expired_secret_grace_days, now=timezone.now())

    def reveal_value(self) -> str:
        """Decrypt the value. Only the runner read path calls this; people never see values."""
        return crypto.unseal(self.value, self.associated_data())

    def value_fingerprint(self, plaintext: str) -> str:
        return crypto.value_fingerprint(plaintext, workspace_id=self.workspace_id)

    def associated_data(self) -> bytes:
        """What the sealed value is bound to: this workspace, this secret id, this key."""
        return crypto.secret_associated_data(workspace_id=self.workspace_id, secret_id=self.id, key=self.key)

    def _refuse_identity_or_value_change(self) -> None:
        saved = getattr(self, "_saved_identity", {})
        loaded = self.__dict__
        if any(name in loaded and loaded[name] != value for name, value in saved.items()):
            raise SecretImmutable()
        if isinstance(loaded.get("value"), str):
            raise SecretImmutable()


class SecretTag(models.Model):
    secret = models.ForeignKey(Secret, on_delete=models.CASCADE, related_name="secret_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="secret_tags")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["secret", "tag"], name="secret_tag_unique")]

    def __str__(self) -> str:
        return f"{self.tag_id} on {self.secret_id}"


class Workflow(models.Model):
    """A workflow registered in one workspace, its home: where its runners read secrets."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=WORKFLOW_NAME_MAX_LENGTH, validators=[validate_workflow_name])
    definition = models.JSONField(help_text="May hold ${workflow.secrets.NAME} placeholders.")
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="workflow_name_unique_per_workspace")]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        """How executions name it: `<home workspace slug>/<name>`."""
        return f"{self.workspace.slug}/{self.name}"


class WorkflowSecretReference(models.Model):
    """A `${workflow.secrets.KEY}` placeholder in a workflow's definition (found at registration)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="secret_references")
    key = models.CharField(max_length=SECRET_KEY_MAX_LENGTH)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "key"], name="workflow_reference_unique")]
        indexes = [models.Index(fields=["key"], name="workflow_reference_key")]

    def __str__(self) -> str:
        return f"{self.workflow_id} uses {self.key}"


class Execution(models.Model):
    """One run of a workflow, launched in some workspace by a user, with its runner session.

    The runner session is an ordinary Django session in the session store; its key is kept
    here (as the session table keeps it) so that finishing the execution can delete it.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.SET_NULL, null=True, related_name="executions")
    workflow_reference = models.CharField(max_length=64 + 1 + WORKFLOW_NAME_MAX_LENGTH)
    home_workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="executions")
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="executions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    runner_session_key = models.CharField(max_length=40, unique=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["workspace", "-started_at"], name="execution_workspace_started")]

    def __str__(self) -> str:
        return f"{self.workflow_reference} in {self.workspace_id} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.status == self.Status.RUNNING and self.expires_at <= timezone.now()

    @property
    def display_status(self) -> str:
        return "expired" if self.is_expired else self.status


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


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit events are append-only.")

    def delete(self) -> Any:
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One thing that happened: who, where, to which key, when, from where. Never a value.

    Foreign keys are kept without database constraints and never cascade, so deleting a
    user or a workspace leaves its history intact; the usernames and slugs are copied in.
    """

    class Action(models.TextChoices):
        SECRET_CREATED = "secret.created", "Secret created"
        SECRET_DELETED = "secret.deleted", "Secret deleted"
        SECRET_TAGGED = "secret.tagged", "Tag added to secret"
        SECRET_UNTAGGED = "secret.untagged", "Tag removed from secret"
        WORKSPACE_CREATED = "workspace.created", "Workspace created"
        WORKSPACE_RENAMED = "workspace.renamed", "Workspace renamed"
        WORKSPACE_SETTINGS_CHANGED = "workspace.settings_changed", "Workspace settings changed"
        WORKSPACE_DELETED = "workspace.deleted", "Workspace deleted"
        TAG_DELETED = "tag.deleted", "Tag deleted"
        TAG_GRANTED = "tag.granted", "Tag permission granted"
        TAG_REVOKED = "tag.revoked", "Tag permission revoked"
        MEMBER_ADDED = "member.added", "Member added"
        MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        SECRET_READ = "secret.read", "Value read by a runner"
        SECRET_READ_DENIED = "secret.read_denied", "Runner read refused"
        WORKFLOW_REGISTERED = "workflow.registered", "Workflow registered"
        WORKFLOW_DELETED = "workflow.deleted", "Workflow deleted"
        EXECUTION_LAUNCHED = "execution.launched", "Execution launched"
        EXECUTION_FINISHED = "execution.finished", "Execution finished"
        ENCRYPTION_KEY_ROTATED = "encryption.rotated", "Values re-encrypted under the active key"
        AUDIT_EXPORTED = "audit.exported", "Audit log exported"
        VALUE_LOOKED_UP = "secret.value_looked_up", "Workspace searched for a value"
        SESSION_REVOKED = "session.revoked", "Session revoked"
        OTHER_SESSIONS_REVOKED = "session.others_revoked", "Signed out everywhere else"

    # No index of its own: every runner read appends an event, so each index costs on the hot
    # path; reads by time go through (workspace, -at).
    at = models.DateTimeField(default=timezone.now, editable=False)
    action = models.CharField(max_length=40, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+"
    )
    workspace_slug = models.CharField(max_length=64, blank=True)
    secret_key = models.CharField(max_length=SECRET_KEY_MAX_LENGTH, blank=True)
    secret_id = models.UUIDField(null=True, blank=True)
    execution_id = models.UUIDField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # Tamper evidence: each event is a link in its writer's chain (one chain per database
    # connection of each app server thread), its MAC covering its content and the previous
    # link's MAC. `manage.py verify_audit_log` walks every chain.
    chain_id = models.UUIDField(editable=False)
    chain_seq = models.PositiveBigIntegerField(editable=False)
    mac = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["workspace", "-at"], name="audit_workspace_at"),
            models.Index(fields=["secret_id", "action", "-at"], name="audit_secret_action_at"),
        ]
        constraints = [models.UniqueConstraint(fields=["chain_id", "chain_seq"], name="audit_chain_position")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.secret_key}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("Audit events are append-only.")

    def chained_content(self) -> bytes:
        """Everything the event says, in one canonical form, for its MAC.

        Values are normalised the way the database gives them back (UTC time, compressed IP
        address, JSON with sorted keys), so the MAC computed when writing is the one recomputed
        when verifying, on SQLite and PostgreSQL alike.
        """
        return json.dumps(
            [
                str(self.chain_id),
                self.chain_seq,
                self.at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
                self.action,
                self.actor_id,
                self.actor_username,
                self.workspace_id,
                self.workspace_slug,
                self.secret_key,
                str(self.secret_id) if self.secret_id else None,
                str(self.execution_id) if self.execution_id else None,
                ipaddress.ip_address(self.ip_address).compressed if self.ip_address else None,
                self.detail,
            ],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
