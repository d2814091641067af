"""Approvals: which declared keys of a workflow are protected, and the requests waiting in a workspace."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from secrets_app import permissions
from secrets_app.errors import ApprovalNotFound
from secrets_app.models import ExecutionApproval, Secret, Workflow, Workspace


def protected_declared_keys(workflow: Workflow) -> list[str]:
    """The keys the workflow declares whose secret, in its home workspace, carries a protected tag."""
    declared = workflow.secret_references.values("key")
    protected = Secret.objects.filter(workspace=workflow.workspace, key__in=declared, tags__protected=True)
    return sorted(set(protected.values_list("key", flat=True)))


def approvals_in(workspace: Workspace, *, pending_only: bool = True) -> QuerySet[ExecutionApproval]:
    """The approval requests of executions that run in `workspace`, newest first."""
    requests = ExecutionApproval.objects.filter(execution__workspace=workspace).select_related(
        "execution__launched_by", "execution__workspace", "decided_by"
    )
    return requests.filter(status=ExecutionApproval.Status.PENDING) if pending_only else requests


def approval_for(user: Any, approval_id: Any) -> ExecutionApproval:
    """One request `user` may see (they may see its workspace's executions), or ApprovalNotFound."""
    if not (isinstance(approval_id, str) and approval_id.isascii() and approval_id.isdigit() and len(approval_id) < 19):
        raise ApprovalNotFound()
    related = ExecutionApproval.objects.select_related("execution__workspace", "execution__launched_by")
    approval = related.filter(pk=int(approval_id)).first()
    if approval is None:
        raise ApprovalNotFound()
    if not permissions.can(user, permissions.Action.VIEW_WORKSPACE, approval.execution.workspace):
        raise ApprovalNotFound()
    return approval
