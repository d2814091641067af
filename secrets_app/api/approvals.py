"""Approvals: the requests of executions waiting to read protected secrets, and deciding them."""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from secrets_app import permissions
from secrets_app.api.responses import SIGNED_IN, answers
from secrets_app.api.types import DateTime, Paged, PageNumber, PathSlug, UUIDText, WorkflowReference
from secrets_app.http import client_ip
from secrets_app.models import ExecutionApproval
from secrets_app.permissions import Action
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.approvals import approval_for, approvals_in
from secrets_app.selectors.pagination import PAGE_SIZE, page_fields, paginate
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.approvals import decide_approval

router = Router(tags=["approvals"])


class ApprovalOut(Schema):
    """A request to read protected secrets: who launched what, which keys; never a value."""

    id: int
    execution: UUIDText
    workflow: WorkflowReference
    workspace: str
    launched_by: str
    protected_keys: list[str]
    status: Literal[tuple(ExecutionApproval.Status.values)]
    requested_at: DateTime
    decided_by: str | None
    decided_at: DateTime | None


class ApprovalList(Paged):
    approvals: list[ApprovalOut] = Field(max_length=PAGE_SIZE)


def approval_json(approval: ExecutionApproval) -> dict[str, Any]:
    execution = approval.execution
    return {
        "id": approval.pk,
        "execution": str(execution.id),
        "workflow": execution.workflow_reference,
        "workspace": execution.workspace.slug,
        "launched_by": execution.launched_by.get_username(),
        "protected_keys": approval.protected_keys,
        "status": approval.status,
        "requested_at": approval.requested_at.isoformat(),
        "decided_by": approval.decided_by.get_username() if approval.decided_by else None,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
    }


@router.get(
    "/workspaces/{slug:slug}/approvals/",
    url_name="api-approvals",
    response=answers({200: ApprovalList}, *SIGNED_IN, 404),
    summary="Owners and admins: the executions waiting for approval to read protected secrets, newest first",
)
def list_approvals(request: HttpRequest, slug: PathSlug, page: PageNumber = None) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_EXECUTIONS, workspace)
    found = paginate(approvals_in(workspace), page)
    return {"workspace": workspace.slug, **page_fields(found), "approvals": [approval_json(a) for a in found]}


def _decide(request: HttpRequest, approval_id: str, *, approve: bool) -> dict[str, Any]:
    approval = approval_for(request.user, approval_id)
    return approval_json(
        decide_approval(actor=request.user, approval=approval, approve=approve, ip_address=client_ip(request))
    )


@router.post(
    "/approvals/{approval_id}/approve/",
    url_name="api-approval-approve",
    response=answers({200: ApprovalOut}, *SIGNED_IN, 404, 409),
    summary="Approve: its runner may read the protected secrets until the execution ends (not the launcher)",
)
@reauthentication_required
def approve(request: HttpRequest, approval_id: str) -> dict[str, Any]:
    return _decide(request, approval_id, approve=True)


@router.post(
    "/approvals/{approval_id}/reject/",
    url_name="api-approval-reject",
    response=answers({200: ApprovalOut}, *SIGNED_IN, 404, 409),
    summary="Reject: its runner's reads of the protected secrets stay refused",
)
@reauthentication_required
def reject(request: HttpRequest, approval_id: str) -> dict[str, Any]:
    return _decide(request, approval_id, approve=False)
