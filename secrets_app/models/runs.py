"""Workflows (registered in their home workspace) and executions (runs, each with a runner session)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from secrets_app.models.workspaces import Workspace
from secrets_app.validators import SECRET_KEY_MAX_LENGTH, WORKFLOW_NAME_MAX_LENGTH, validate_workflow_name


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
        """Its status, or "expired", or "waiting_for_approval" while running with a pending request
        to read protected secrets (select_related("approval") spares the query)."""
        if self.is_expired:
            return "expired"
        if self.status == self.Status.RUNNING:
            approval = getattr(self, "approval", None)  # None when it needs none (the accessor raises)
            if approval is not None and approval.status == "pending":
                return "waiting_for_approval"
        return self.status


class ExecutionApproval(models.Model):
    """The approval an execution needs to read its protected secrets (those carrying a protected
    tag): asked at launch, given or refused by an owner or admin other than the launcher; it lasts as
    long as the execution. Lists the protected keys it wants, never a value."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired (the execution ended first)"

    execution = models.OneToOneField(Execution, on_delete=models.CASCADE, related_name="approval")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    protected_keys = models.JSONField(default=list)
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["status", "-requested_at"], name="approval_status_requested")]

    def __str__(self) -> str:
        return f"approval of {self.execution_id} ({self.status})"
