"""Developer Settings → Workflows and Executions: register, launch, delete, finish."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from secrets_app import errors, permissions
from secrets_app.forms import LaunchForm, WorkflowRegisterForm
from secrets_app.http import client_ip
from secrets_app.permissions import Action
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.approvals import approval_for, approvals_in
from secrets_app.selectors.pagination import paginate
from secrets_app.selectors.runs import execution_for, executions_in, visible_keys, workflow_for, workflows_in
from secrets_app.selectors.workspaces import workspace_for, workspace_menu
from secrets_app.services.approvals import decide_approval
from secrets_app.services.runs import delete_workflow, finish_execution, launch_execution, register_workflow
from secrets_app.views.base import console_view, developer_context, show_errors


def _launch_targets(user: Any) -> list[Any]:
    """The workspaces of the user's menu they may launch in (a bounded list: `workspace_menu`)."""
    return [w for w in workspace_menu(user) if permissions.can_launch_in(user, w)]


@console_view
@require_http_methods(["GET", "POST"])
def workflows_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The workflows registered in this workspace, and the form to register one."""
    workspace = workspace_for(request.user, slug)
    form = WorkflowRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workflow = register_workflow(
                actor=request.user, workspace=workspace, ip_address=client_ip(request), **form.cleaned_data
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Workflow {workflow.reference} registered.")
            return redirect("workflows", slug=workspace.slug)
    targets = _launch_targets(request.user)
    workflows = paginate(workflows_in(workspace), request.GET.get("page"))
    context = developer_context(
        request,
        workspace,
        "workflows",
        form=form,
        workflows=workflows,
        # Declared keys shown to you; the others are missing (if you see every secret) or hidden.
        sees_all_secrets=permissions.can(request.user, Action.VIEW_SECRETS, workspace),
        visible_keys=visible_keys(
            request.user, workspace, [ref.key for workflow in workflows for ref in workflow.listed_references]
        ),
        launch_form=LaunchForm(workspaces=targets, initial={"workspace": workspace.slug}) if targets else None,
    )
    return render(request, "developer/workflows.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
@reauthentication_required
def workflow_launch(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Launch a workflow; the page shows the runner session once."""
    workflow = workflow_for(request.user, f"{slug}/{name}")
    try:
        target = workspace_for(request.user, request.POST.get("workspace", ""))
    except errors.WorkspaceNotFound:
        target = None
    if target is None or not permissions.can_launch_in(request.user, target):
        messages.error(request, "Choose a workspace you may launch executions in.")
        return redirect("workflows", slug=slug)
    execution, session_key = launch_execution(
        actor=request.user, workspace=target, workflow=workflow, ip_address=client_ip(request)
    )
    # Post/redirect/get: the credential waits in this session for the one page that shows it, so a
    # reload neither launches again nor shows it again.
    request.session[_LAUNCHED] = {"execution": str(execution.id), "runner_session": session_key}
    return redirect("execution-launched", execution_id=execution.id)


_LAUNCHED = "launched_runner_session"


@console_view
@require_GET
def execution_launched(request: HttpRequest, execution_id: str) -> HttpResponse:
    """The page after a launch: the runner session, shown this once (it is taken out of the session
    as the page is made); later visits show the execution without it."""
    execution = execution_for(request.user, execution_id)
    handed = request.session.get(_LAUNCHED) or {}
    runner_session = handed.get("runner_session") if handed.get("execution") == str(execution.id) else None
    if runner_session is not None:
        del request.session[_LAUNCHED]
    context = developer_context(
        request, execution.workspace, "executions", execution=execution, runner_session=runner_session
    )
    return render(request, "developer/execution_launched.html", context)


@console_view
@require_POST
def workflow_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    workflow = workflow_for(request.user, f"{slug}/{name}")
    delete_workflow(actor=request.user, workflow=workflow, ip_address=client_ip(request))
    messages.success(request, f"Workflow {workflow.reference} deleted; its running executions ended.")
    return redirect("workflows", slug=slug)


@console_view
@require_GET
def executions_page(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    page = paginate(executions_in(workspace), request.GET.get("page"))
    return render(request, "developer/executions.html", developer_context(request, workspace, "executions", page=page))


@console_view
@require_POST
def execution_finish(request: HttpRequest, execution_id: str) -> HttpResponse:
    execution = execution_for(request.user, execution_id)
    try:
        ended = finish_execution(actor=request.user, execution=execution, ip_address=client_ip(request))
    except errors.ExecutionNotRunning as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"Execution of {ended.workflow_reference} {ended.status}; its runner session has ended."
        )
    return redirect("executions", slug=execution.workspace.slug)


@console_view
@require_GET
def approvals_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Owners and admins: the executions waiting to read protected secrets, to approve or reject."""
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_EXECUTIONS, workspace)
    page = paginate(approvals_in(workspace), request.GET.get("page"))
    for approval in page:
        approval.you_may_decide = permissions.can_decide_approval(request.user, approval.execution)
    return render(request, "developer/approvals.html", developer_context(request, workspace, "approvals", page=page))


@console_view
@require_POST
@reauthentication_required
def approval_decide(request: HttpRequest, approval_id: str, decision: str) -> HttpResponse:
    if decision not in ("approve", "reject"):
        raise errors.ApprovalNotFound()
    approval = approval_for(request.user, approval_id)
    try:
        decided = decide_approval(
            actor=request.user, approval=approval, approve=decision == "approve", ip_address=client_ip(request)
        )
    except errors.ExecutionNotRunning as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(request, f"Execution of {approval.execution.workflow_reference} {decided.status}.")
    return redirect("approvals", slug=approval.execution.workspace.slug)
