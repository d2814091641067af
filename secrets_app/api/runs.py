"""Workflows and executions: register and delete workflows, launch one (answering its runner
session), see and finish executions."""

from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field, StrictInt, WithJsonSchema

from secrets_app import permissions
from secrets_app.api.auth import runner_session_auth, session_auth
from secrets_app.api.parsing import JsonBody
from secrets_app.api.responses import JSON_BODY, SIGNED_IN, answers
from secrets_app.api.sessions import anonymous_place
from secrets_app.api.types import (
    DateTime,
    ExecutionStatus,
    Paged,
    PageNumber,
    PathSlug,
    PathUUID,
    PathWorkflowName,
    SecretKey,
    UUIDText,
    WorkflowName,
    WorkflowReference,
)
from secrets_app.http import client_ip
from secrets_app.models import Execution, Workflow
from secrets_app.permissions import Action
from secrets_app.placeholders import HIDDEN_NAME, hide_names
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.pagination import PAGE_SIZE, page_fields, paginate
from secrets_app.selectors.runner import RUNNER_EXECUTION
from secrets_app.selectors.runs import (
    declared_keys_seen_by,
    execution_for,
    executions_in,
    workflow_for,
    workflows_in,
)
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.runs import (
    WORKFLOW_DEFINITION_MAX_BYTES,
    delete_workflow,
    finish_execution,
    launch_execution,
    register_workflow,
)
from secrets_app.validators import TEMPLATE_MAX_NAMES

router = Router(tags=["workflows and executions"], auth=session_auth)

WORKFLOWS = "/workspaces/{slug:slug}/workflows/"
EXECUTIONS = "/workspaces/{slug:slug}/executions/"


class NewWorkflow(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: WorkflowName
    definition: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "object",
                "description": (
                    f"Any JSON object up to {WORKFLOW_DEFINITION_MAX_BYTES // 1024} KiB, with no NUL in any string; "
                    "`${workflow.secrets.KEY}` strings name secrets."
                ),
            }
        ),
    ]
    secrets: list[SecretKey] | None = Field(
        default=None,
        max_length=TEMPLATE_MAX_NAMES,
        description="Keys its code reads by name (get_secret), besides those its definition's placeholders name. "
        "Its runs may read these and no others (403 outside_workflow_scope).",
    )


class Launch(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    workflow: WorkflowReference
    lifetime: StrictInt | None = Field(
        default=None,
        json_schema_extra={"minimum": 60},
        description="Seconds the runner session lives, at most RUNNER_SESSION_MAX_AGE (default 43200).",
    )


class WorkflowSummary(Schema):
    reference: str
    name: str
    workspace: str
    secret_count: int = Field(ge=0, description="How many secret keys its definition names.")
    running: int = Field(ge=0, description="Its executions running now.")
    registered_by: str | None
    registered_at: DateTime


class WorkflowOut(Schema):
    reference: str
    name: str
    workspace: str
    definition: dict[str, Any]
    secrets: list[str] = Field(
        max_length=TEMPLATE_MAX_NAMES,
        description="The secret keys it declares (placeholders and its list) that you may know of, sorted.",
    )
    hidden_secrets: int = Field(
        ge=0, description="Declared keys of secrets hidden from you: not named here nor in the definition."
    )
    missing_secrets: list[str] = Field(
        max_length=TEMPLATE_MAX_NAMES, description="Declared keys not in its workspace: its runs would be refused them."
    )
    registered_by: str | None
    registered_at: DateTime


class WorkflowList(Paged):
    """A page of workflows, without their definitions (GET one workflow for its definition and keys)."""

    workspace: str
    workflows: list[WorkflowSummary] = Field(max_length=PAGE_SIZE)


class ExecutionOut(Schema):
    id: UUIDText
    workflow: str
    workspace: str
    status: ExecutionStatus
    launched_by: str | None = Field(description="Who launched it; null when a runner session asks.")
    started_at: DateTime
    expires_at: DateTime
    finished_at: DateTime | None
    protected_keys_awaiting_approval: list[str] = Field(
        description="While waiting_for_approval: the protected keys its runner may not read until approved."
    )


class LaunchedExecution(ExecutionOut):
    runner_session: str = Field(description="The runner session: send it as the session cookie.")


class ExecutionPage(Paged):
    workspace: str
    executions: list[ExecutionOut] = Field(max_length=PAGE_SIZE)


def workflow_summary_json(workflow: Workflow) -> dict[str, Any]:
    """A workflow of `selectors.runs.workflows_in`, as the list shows it."""
    return {
        "reference": workflow.reference,
        "name": workflow.name,
        "workspace": workflow.workspace.slug,
        "secret_count": workflow.secret_count,
        "running": workflow.running,
        "registered_by": workflow.registered_by.get_username() if workflow.registered_by else None,
        "registered_at": workflow.registered_at.isoformat(),
    }


def workflow_json(user: Any, workflow: Workflow) -> dict[str, Any]:
    seen = declared_keys_seen_by(user, workflow)
    return {
        "reference": workflow.reference,
        "name": workflow.name,
        "workspace": workflow.workspace.slug,
        "definition": hide_names(workflow.definition, seen.hidden_names),
        "secrets": seen.named,
        "hidden_secrets": seen.hidden,
        "missing_secrets": seen.missing,
        "registered_by": workflow.registered_by.get_username() if workflow.registered_by else None,
        "registered_at": workflow.registered_at.isoformat(),
    }


def execution_json(user: Any, execution: Execution) -> dict[str, Any]:
    waiting = execution.approval.protected_keys if execution.display_status == "waiting_for_approval" else []
    if waiting and not permissions.can(user, Action.VIEW_SECRETS, execution.home_workspace):
        waiting = [HIDDEN_NAME] * len(waiting)  # names of secrets the caller may not see
    return {
        "id": str(execution.id),
        "workflow": execution.workflow_reference,
        "workspace": execution.workspace.slug,
        "status": execution.display_status,
        "launched_by": execution.launched_by.get_username(),
        "started_at": execution.started_at.isoformat(),
        "expires_at": execution.expires_at.isoformat(),
        "finished_at": execution.finished_at.isoformat() if execution.finished_at else None,
        "protected_keys_awaiting_approval": waiting,
    }


@router.get(
    WORKFLOWS,
    url_name="api-workflows",
    response=answers({200: WorkflowList}, *SIGNED_IN, 404),
    summary="The workflows registered in this workspace, by name, 50 a page (without definitions)",
)
def list_workflows(request: HttpRequest, slug: PathSlug, page: PageNumber = None) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    found = paginate(workflows_in(workspace), page)
    return {"workspace": workspace.slug, **page_fields(found), "workflows": [workflow_summary_json(w) for w in found]}


@router.post(
    WORKFLOWS,
    url_name="api-workflows",
    response=answers({201: WorkflowOut}, *SIGNED_IN, *JSON_BODY, 404, 409),
    summary="Register a workflow here, its home",
)
def add_workflow(request: HttpRequest, slug: PathSlug, workflow: NewWorkflow = JsonBody(...)) -> Any:
    workspace = workspace_for(request.user, slug)
    registered = register_workflow(
        actor=request.user,
        workspace=workspace,
        name=workflow.name,
        definition=workflow.definition,
        secrets=workflow.secrets,
        ip_address=client_ip(request),
    )
    return Status(201, workflow_json(request.user, registered))


@router.get(
    f"{WORKFLOWS}{{name}}/",
    url_name="api-workflow",
    response=answers({200: WorkflowOut}, *SIGNED_IN, 404),
    summary="One workflow",
)
def get_workflow(request: HttpRequest, slug: PathSlug, name: PathWorkflowName) -> dict[str, Any]:
    return workflow_json(request.user, workflow_for(request.user, f"{slug}/{name}"))


@router.delete(
    f"{WORKFLOWS}{{name}}/",
    url_name="api-workflow",
    response=answers({204: None}, *SIGNED_IN, 404),
    summary="Delete a workflow; its running executions end",
)
def remove_workflow(request: HttpRequest, slug: PathSlug, name: PathWorkflowName) -> HttpResponse:
    found = workflow_for(request.user, f"{slug}/{name}")
    delete_workflow(actor=request.user, workflow=found, ip_address=client_ip(request))
    return HttpResponse(status=204)


@router.get(
    EXECUTIONS,
    url_name="api-executions",
    response=answers({200: ExecutionPage}, *SIGNED_IN, 404),
    summary="Executions launched in this workspace, newest first",
)
def list_executions(request: HttpRequest, slug: PathSlug, page: PageNumber = None) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    found = paginate(executions_in(workspace), page)
    return {
        "workspace": workspace.slug,
        **page_fields(found),
        "executions": [execution_json(request.user, e) for e in found],
    }


@router.post(
    EXECUTIONS,
    url_name="api-executions",
    response=answers({201: LaunchedExecution}, *SIGNED_IN, *JSON_BODY, 404),
    summary="Launch a workflow in this workspace; answers its runner session",
)
@reauthentication_required
def launch(request: HttpRequest, slug: PathSlug, launch: Launch = JsonBody(...)) -> Any:
    workspace = workspace_for(request.user, slug)
    execution, session_key = launch_execution(
        actor=request.user,
        workspace=workspace,
        workflow=workflow_for(request.user, launch.workflow),
        lifetime_seconds=launch.lifetime,
        ip_address=client_ip(request),
    )
    return Status(201, {**execution_json(request.user, execution), "runner_session": session_key})


@router.get(
    "/executions/{execution_id}/",
    auth=[session_auth, runner_session_auth],
    url_name="api-execution",
    response=answers({200: ExecutionOut}, *SIGNED_IN, 404),
    summary="One execution",
)
def get_execution(request: HttpRequest, execution_id: PathUUID) -> dict[str, Any]:
    found = execution_for(request.user, execution_id)
    return _as_seen(request, execution_json(request.user, found), found)


def _as_seen(request: HttpRequest, answer: dict[str, Any], execution: Execution) -> dict[str, Any]:
    """A runner session learns nothing of the user who launched it."""
    if RUNNER_EXECUTION not in request.session:
        return answer
    return {**answer, "launched_by": None, **anonymous_place(execution)}


@router.post(
    "/executions/{execution_id}/finish/",
    auth=[session_auth, runner_session_auth],
    url_name="api-execution-finish",
    response=answers({200: ExecutionOut}, *SIGNED_IN, 404, 409),
    summary="End an execution and its runner session (the runner may call this itself)",
)
def finish(request: HttpRequest, execution_id: PathUUID) -> dict[str, Any]:
    found = execution_for(request.user, execution_id)
    finished = finish_execution(actor=request.user, execution=found, ip_address=client_ip(request))
    return _as_seen(request, execution_json(request.user, finished), finished)
