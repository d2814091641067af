"""Workflows and executions."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet

from secrets_app import permissions
from secrets_app.errors import ExecutionNotFound, WorkflowNotFound, WorkspaceNotFound
from secrets_app.models import Execution, Workflow, Workspace
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.validators import WORKFLOW_NAME_PATTERN


def workflows_in(workspace: Workspace) -> QuerySet[Workflow]:
    return (
        workspace.workflows.select_related("registered_by")
        .prefetch_related("secret_references")
        .annotate(running=Count("executions", filter=Q(executions__status=Execution.Status.RUNNING)))
        .order_by("name")
    )


def workflow_for(user: Any, reference: str) -> Workflow:
    """A workflow by `<home-slug>/<name>`, if `user` can see its home workspace."""
    home_slug, _, name = reference.partition("/")
    try:
        home = workspace_for(user, home_slug)
    except WorkspaceNotFound:
        raise WorkflowNotFound(f"No workflow {reference!r} that you can see.") from None
    workflow = home.workflows.filter(name=name).first() if WORKFLOW_NAME_PATTERN.fullmatch(name) else None
    if workflow is None:
        raise WorkflowNotFound(f"No workflow {reference!r} that you can see.")
    workflow.workspace = home
    return workflow


def workflows_using_key(workspace: Workspace, key: str) -> QuerySet[Workflow]:
    """Registered workflows of `workspace` whose definitions reference secret `key`."""
    return workspace.workflows.filter(secret_references__key=key).order_by("name")


def executions_in(workspace: Workspace) -> QuerySet[Execution]:
    return workspace.executions.select_related("launched_by").order_by("-started_at")


def execution_for(user: Any, execution_id: str) -> Execution:
    """An execution `user` can see (one in a workspace they see), or ExecutionNotFound."""
    try:
        execution = Execution.objects.select_related("workspace", "launched_by").get(pk=execution_id)
    except (Execution.DoesNotExist, ValidationError, ValueError, TypeError):
        raise ExecutionNotFound() from None
    if not Workspace.objects.filter(permissions.visible_workspaces_filter(user), pk=execution.workspace_id).exists():
        raise ExecutionNotFound()
    return execution


def execution_by_runner_session(session_key: str) -> Execution | None:
    """The execution a (possibly ended) runner session belonged to."""
    if not session_key:
        return None
    executions = Execution.objects.select_related("home_workspace", "launched_by")
    return executions.filter(runner_session_key=session_key).first()
