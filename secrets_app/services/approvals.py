"""Protected secrets and approvals, as GitHub's environments with required reviewers: a tag marked
protected puts the secrets carrying it behind a second person. An execution whose workflow declares
such a secret asks for approval at launch; its runner's reads of them answer `403
approval_required` until an owner or admin other than the launcher approves. Every step is audited.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from secrets_app import permissions
from secrets_app.errors import AccessDenied, ExecutionNotRunning
from secrets_app.models import AuditEvent, Execution, ExecutionApproval, Tag, Workflow
from secrets_app.permissions import Action
from secrets_app.selectors.approvals import protected_declared_keys
from secrets_app.services import audit


def set_tag_protected(*, actor: Any, tag: Tag, protected: bool, ip_address: str | None = None) -> Tag:
    """Owners and admins: protect a tag (runs read its secrets only once approved) or stop."""
    permissions.require(actor, Action.MANAGE_GRANTS, tag.workspace)
    if tag.protected == protected:
        return tag
    with transaction.atomic():
        tag.protected = protected
        tag.save(update_fields=["protected"])
        audit.record_event(
            action=AuditEvent.Action.TAG_PROTECTED,
            actor=actor,
            workspace=tag.workspace,
            ip_address=ip_address,
            detail={"tag": tag.name, "protected": protected},
        )
    return tag


def request_approval_if_needed(
    *, actor: Any, execution: Execution, workflow: Workflow, ip_address: str | None = None
) -> ExecutionApproval | None:
    """At launch, in its transaction: if the workflow declares secrets carrying a protected tag,
    the execution waits for approval (one pending request listing those keys)."""
    keys = protected_declared_keys(workflow)
    if not keys:
        return None
    approval = ExecutionApproval.objects.create(execution=execution, protected_keys=keys)
    _record_request(actor=actor, execution=execution, keys=keys, ip_address=ip_address)
    return approval


def _record_request(*, actor: Any, execution: Execution, keys: list[str], ip_address: str | None) -> None:
    audit.record_event(
        action=AuditEvent.Action.APPROVAL_REQUESTED,
        actor=actor,
        workspace=execution.workspace,
        execution_id=execution.id,
        ip_address=ip_address,
        detail={"workflow": execution.workflow_reference, "protected_keys": keys},
    )


def decide_approval(
    *, actor: Any, approval: ExecutionApproval, approve: bool, ip_address: str | None = None
) -> ExecutionApproval:
    """Approve (its runner may read the protected keys until the execution ends) or reject (they
    stay refused, `approval_rejected`) a pending request. Owners and admins of the workspace, never the launcher.
    Raises AccessDenied, or ExecutionNotRunning if it is no longer pending or running."""
    execution = approval.execution
    if not permissions.can_decide_approval(actor, execution):
        if actor.pk == execution.launched_by_id:
            raise AccessDenied("You launched this execution: another owner or admin must approve it.")
        raise AccessDenied("Only an owner or admin of the workspace approves executions.")
    with transaction.atomic():
        pending = ExecutionApproval.objects.select_for_update().filter(
            pk=approval.pk, status=ExecutionApproval.Status.PENDING, execution__status=Execution.Status.RUNNING
        )
        if not pending.exists():
            raise ExecutionNotRunning("This request was already decided, or its execution has ended.")
        status = ExecutionApproval.Status.APPROVED if approve else ExecutionApproval.Status.REJECTED
        pending.update(status=status, decided_by=actor, decided_at=timezone.now())
        audit.record_event(
            action=AuditEvent.Action.APPROVAL_GRANTED if approve else AuditEvent.Action.APPROVAL_REJECTED,
            actor=actor,
            workspace=execution.workspace,
            execution_id=execution.id,
            ip_address=ip_address,
            detail={
                "workflow": execution.workflow_reference,
                "launched_by": execution.launched_by.get_username(),
                "protected_keys": approval.protected_keys,
            },
        )
    approval.refresh_from_db()
    return approval


def expire_pending_approval(*, execution: Execution) -> None:
    """In the transaction that ends an execution: a request still pending expires, audited."""
    if ExecutionApproval.objects.filter(execution=execution, status=ExecutionApproval.Status.PENDING).update(
        status=ExecutionApproval.Status.EXPIRED, decided_at=timezone.now()
    ):
        audit.record_event(
            action=AuditEvent.Action.APPROVAL_EXPIRED,
            workspace=execution.workspace,
            execution_id=execution.id,
            detail={"workflow": execution.workflow_reference},
        )


def request_approval_for_keys(*, execution_id: Any, keys: list[str], ip_address: str | None = None) -> None:
    """A runner was refused protected keys (`approval_required`): make sure a pending request asks
    for them, so that someone can approve. A key protected after launch opens a request; one not
    covered by an approval given puts it back to pending with that key added (its approver saw a
    smaller list). A rejected request stays rejected."""
    with transaction.atomic():
        execution = Execution.objects.select_related("workspace", "launched_by").get(pk=execution_id)
        approval = ExecutionApproval.objects.select_for_update().filter(execution=execution).first()
        if approval is not None and (
            approval.status in (ExecutionApproval.Status.REJECTED, ExecutionApproval.Status.EXPIRED)
            or (approval.status == ExecutionApproval.Status.PENDING and set(keys) <= set(approval.protected_keys))
        ):
            return
        wanted = sorted(set(keys) | set(approval.protected_keys if approval else []))
        if approval is None:
            ExecutionApproval.objects.create(execution=execution, protected_keys=wanted)
        else:
            ExecutionApproval.objects.filter(pk=approval.pk).update(
                status=ExecutionApproval.Status.PENDING, protected_keys=wanted, decided_by=None, decided_at=None
            )
        _record_request(actor=execution.launched_by, execution=execution, keys=wanted, ip_address=ip_address)
