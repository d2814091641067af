"""Workspaces: yours, with your role in each; a new team workspace; a workspace's settings."""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field

from secrets_app.api.auth import session_auth
from secrets_app.api.parsing import JsonBody
from secrets_app.api.responses import JSON_BODY, SIGNED_IN, answers
from secrets_app.api.types import GraceDays, NewSlug, Paged, PageNumber, PathSlug, WorkspaceName
from secrets_app.error_responses import error_response
from secrets_app.http import client_ip
from secrets_app.models import Role, Workspace
from secrets_app.reauthentication import require_recent_authentication
from secrets_app.selectors.pagination import PAGE_SIZE, page_fields, paginate
from secrets_app.selectors.workspaces import workspace_for, workspaces_for
from secrets_app.services.workspaces import create_team_workspace, set_expired_secret_grace, set_mfa_policy
from secrets_app.validators import EXPIRED_SECRET_GRACE_MAX_DAYS

router = Router(tags=["workspaces"], auth=session_auth)


class NewWorkspace(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    slug: NewSlug
    name: WorkspaceName


class WorkspaceSettings(Schema):
    """The settings to change (at least one). `require_mfa` is for owners, and needs a recent
    re-authentication (401 reauthentication_required)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    expired_secret_grace_days: GraceDays | None = None
    require_mfa: bool | None = None


class WorkspaceOut(Schema):
    slug: str
    name: str
    kind: Literal[tuple(Workspace.Kind.values)]
    role: Literal[tuple(Role.values)] | None = Field(
        description="Your role; null for a superuser administering a team workspace."
    )
    expired_secret_grace_days: int = Field(ge=0, le=EXPIRED_SECRET_GRACE_MAX_DAYS)
    require_mfa: bool = Field(description="Members need a second factor to use its secrets, workflows and executions")


class WorkspaceList(Paged):
    workspaces: list[WorkspaceOut] = Field(max_length=PAGE_SIZE)


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "slug": workspace.slug,
        "name": workspace.name,
        "kind": workspace.kind,
        "role": workspace.caller_role,
        "expired_secret_grace_days": workspace.expired_secret_grace_days,
        "require_mfa": workspace.require_mfa,
    }


@router.get(
    "/workspaces/",
    url_name="api-workspaces",
    response=answers({200: WorkspaceList}, *SIGNED_IN, 404),
    summary="Your workspaces, with your role in each, personal first, then by name, 50 a page",
)
def list_workspaces(request: HttpRequest, page: PageNumber = None) -> dict[str, Any]:
    found = paginate(workspaces_for(request.user), page)
    return {**page_fields(found), "workspaces": [workspace_json(w) for w in found]}


@router.post(
    "/workspaces/",
    url_name="api-workspaces",
    response=answers({201: WorkspaceOut}, *SIGNED_IN, *JSON_BODY, 409),
    summary="Create a team workspace you own",
)
def create_workspace(request: HttpRequest, workspace: NewWorkspace = JsonBody(...)) -> Any:
    created = create_team_workspace(
        actor=request.user, slug=workspace.slug, name=workspace.name, ip_address=client_ip(request)
    )
    return Status(201, workspace_json(workspace_for(request.user, created.slug)))


@router.get(
    "/workspaces/{slug:slug}/",
    url_name="api-workspace",
    response=answers({200: WorkspaceOut}, *SIGNED_IN, 404),
    summary="One workspace",
)
def get_workspace(request: HttpRequest, slug: PathSlug) -> dict[str, Any]:
    return workspace_json(workspace_for(request.user, slug))


@router.patch(
    "/workspaces/{slug:slug}/",
    url_name="api-workspace",
    response=answers({200: WorkspaceOut}, *SIGNED_IN, *JSON_BODY, 404),
    summary="Change a workspace's settings (owners and admins)",
)
def change_workspace(request: HttpRequest, slug: PathSlug, settings: WorkspaceSettings = JsonBody(...)) -> Any:
    found = workspace_for(request.user, slug)
    if settings.expired_secret_grace_days is None and settings.require_mfa is None:
        return error_response(400, "invalid_input", 'Send "expired_secret_grace_days", "require_mfa" or both.')
    if settings.require_mfa is not None:
        require_recent_authentication(request)
        set_mfa_policy(
            actor=request.user, workspace=found, required=settings.require_mfa, ip_address=client_ip(request)
        )
    if settings.expired_secret_grace_days is not None:
        set_expired_secret_grace(
            actor=request.user, workspace=found, days=settings.expired_secret_grace_days, ip_address=client_ip(request)
        )
    return workspace_json(found)
