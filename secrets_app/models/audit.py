"""The audit log: append-only events, each a link of an HMAC chain."""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from secrets_app.models.workspaces import Workspace
from secrets_app.validators import SECRET_KEY_MAX_LENGTH


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
        VALUE_LOOKUP_REFUSED = "secret.value_lookup_refused", "Value search refused (too many)"
        SESSION_REVOKED = "session.revoked", "Session revoked"
        OTHER_SESSIONS_REVOKED = "session.others_revoked", "Signed out everywhere else"
        USER_SIGNED_UP = "user.signed_up", "Signed up"
        PASSWORD_CHANGED = "user.password_changed", "Password changed"
        PASSWORD_RESET = "user.password_reset", "Password reset by e-mail"
        REAUTHENTICATED = "user.reauthenticated", "Identity confirmed for a sensitive action"
        FACTOR_ADDED = "mfa.factor_added", "Second factor added"
        FACTOR_REMOVED = "mfa.factor_removed", "Second factor removed"
        RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated", "Recovery codes regenerated"
        RECOVERY_CODE_USED = "mfa.recovery_code_used", "Recovery code used"
        TAG_PROTECTED = "tag.protection_changed", "Tag protection changed"
        APPROVAL_REQUESTED = "execution.approval_requested", "Approval requested for protected secrets"
        APPROVAL_GRANTED = "execution.approved", "Execution approved"
        APPROVAL_REJECTED = "execution.rejected", "Execution rejected"
        APPROVAL_EXPIRED = "execution.approval_expired", "Approval request expired"
        USER_ACCESS_CHANGED = "user.access_changed", "User's access changed in the admin"
        PASSWORD_SET_BY_ADMIN = "user.password_set_by_admin", "Password set by an administrator"

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
