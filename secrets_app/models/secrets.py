"""Secrets (encrypted, immutable), their expiry, and tags, on which tag grants are made."""

from __future__ import annotations

import datetime
import enum
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from secrets_app import crypto
from secrets_app.errors import SecretImmutable
from secrets_app.fields import EncryptedTextField, SealedValue, SealedValueFingerprintField, SealingKeyIdField
from secrets_app.models.workspaces import Workspace
from secrets_app.validators import SECRET_KEY_MAX_LENGTH, TAG_MAX_LENGTH, validate_secret_key, validate_tag_name


class Tag(models.Model):
    """A `key` or `key:value` label on secrets; object permissions on a tag reach its secrets."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=TAG_MAX_LENGTH, validators=[validate_tag_name])
    protected = models.BooleanField(
        default=False,
        help_text="Runs read the secrets carrying it only once an owner or admin other than the launcher approves.",
    )
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
