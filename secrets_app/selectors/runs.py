"""Workflows and executions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, F, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest

from secrets_app import permissions
from secrets_app.errors import ExecutionNotFound, WorkflowNotFound, WorkspaceNotFound
from secrets_app.models import Execution, Workflow, WorkflowSecretReference, Workspace
from secrets_app.selectors.pagination import Capped, capped
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.validators import WORKFLOW_NAME_PATTERN

# Keys a list of workflows names for each, and workflows named as using a key (the rest are
# counted): a page stays small however many secrets a definition names or workflows use a key.
WORKFLOW_KEYS_LISTED = 10
WORKFLOWS_USING_KEY_LISTED = 10


def workflows_in(workspace: Workspace) -> QuerySet[Workflow]:
    """The workflows registered in `workspace`, by name, each with `running` (executions running),
    `secret_count` (keys it names), `listed_references` (the first WORKFLOW_KEYS_LISTED of its
    secret references, by key) and `unlisted_references` (how many are not listed)."""
    running = Execution.objects.filter(workflow=OuterRef("pk"), status=Execution.Status.RUNNING)
    references = WorkflowSecretReference.objects.filter(workflow=OuterRef("pk"))
    return (
        workspace.workflows.select_related("registered_by")
        .prefetch_related(
            Prefetch(
                "secret_references",
                queryset=WorkflowSecretReference.objects.order_by("key")[:WORKFLOW_KEYS_LISTED],
                to_attr="listed_references",
            )
        )
        .annotate(running=_count(running), secret_count=_count(references))
        .annotate(unlisted_references=Greatest(F("secret_count") - WORKFLOW_KEYS_LISTED, 0))
        .order_by("name")
    )


def _count(rows: QuerySet) -> Coalesce:
    """How many of `rows` (filtered on the outer workflow) there are, as a subquery."""
    return Coalesce(Subquery(rows.order_by().values("workflow").annotate(n=Count("pk")).values("n")[:1]), 0)


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


def declared_keys(workflow: Workflow) -> list[str]:
    """The secret keys a workflow declares (its placeholders and its list), sorted: all its runs may read."""
    return list(workflow.secret_references.order_by("key").values_list("key", flat=True))


@dataclass(frozen=True)
class DeclaredKeys:
    """A workflow's declared keys as `user` may know them: the names they may see (`named`), how
    many others are hidden from them, and which named ones are not in the workspace (`missing`)."""

    named: list[str]
    hidden_names: set[str]
    missing: list[str]

    @property
    def hidden(self) -> int:
        return len(self.hidden_names)


def declared_keys_seen_by(user: Any, workflow: Workflow) -> DeclaredKeys:
    """Someone whose role shows every secret of the workspace sees every declared name and which are
    missing; anyone else (a viewer, a tag grantee) sees only the names of secrets shown to them."""
    declared = declared_keys(workflow)
    visible = visible_keys(user, workflow.workspace, declared)
    if permissions.can(user, permissions.Action.VIEW_SECRETS, workflow.workspace):
        return DeclaredKeys(named=declared, hidden_names=set(), missing=sorted(set(declared) - visible))
    named = [key for key in declared if key in visible]
    return DeclaredKeys(named=named, hidden_names=set(declared) - visible, missing=[])


def visible_keys(user: Any, workspace: Workspace, keys: list[str]) -> set[str]:
    """Which of `keys` exist in `workspace` and `user` may see (one query)."""
    visible = permissions.visible_secrets_filter(user, workspace)
    return set(workspace.secrets.filter(visible, key__in=keys).values_list("key", flat=True))


def workflows_using_key(workspace: Workspace, key: str, *, limit: int = WORKFLOWS_USING_KEY_LISTED) -> Capped:
    """The first `limit` registered workflows of `workspace` (by name) whose definitions reference
    secret `key`, and how many there are."""
    return capped(workspace.workflows.filter(secret_references__key=key).order_by("name"), limit)


def executions_in(workspace: Workspace) -> QuerySet[Execution]:
    return workspace.executions.select_related("launched_by", "approval").order_by("-started_at")


def execution_for(user: Any, execution_id: str) -> Execution:
    """An execution `user` can see (one in a workspace they see), or ExecutionNotFound."""
    try:
        execution = Execution.objects.select_related("workspace", "launched_by", "approval").get(pk=execution_id)
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
