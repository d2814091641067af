"""Tags and tag grants: the tags you may see, deleting a tag, and granting or revoking a tag's
permissions to users and groups."""

from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field

from secrets_app import permissions
from secrets_app.api.auth import session_auth
from secrets_app.api.parsing import JsonBody
from secrets_app.api.responses import JSON_BODY, SIGNED_IN, answers
from secrets_app.api.types import GrantId, Paged, PageNumber, PathSlug, PathTag, Text
from secrets_app.http import client_ip
from secrets_app.permissions import TAG_PERMISSION_NAMES, Action
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.grants import Grant, grants_in, tag_for, tags_visible_to
from secrets_app.selectors.pagination import PAGE_SIZE, page_fields, paginate
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.approvals import set_tag_protected
from secrets_app.services.grants import delete_tag, grant_tag_permissions, revoke_tag_grant

router = Router(tags=["tags and grants"], auth=session_auth)

TAGS = "/workspaces/{slug:slug}/tags/"
TagPermission = Literal[tuple(TAG_PERMISSION_NAMES)]


class NewGrant(Schema):
    """Exactly one grantee, a user or a group, and the permissions to grant them on the tag."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user: Text | None = None
    group: Text | None = None
    permissions: list[TagPermission] = Field(min_length=1)


class TagCount(Schema):
    name: str
    secrets: int = Field(ge=0)
    protected: bool = Field(description="Runs read its secrets only once another owner or admin approves.")


class TagChange(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    protected: bool


class TagList(Paged):
    workspace: str
    tags: list[TagCount] = Field(max_length=PAGE_SIZE)


class UserGrant(Schema):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^user-[0-9]+$")
    tag: str
    user: str
    permission: TagPermission


class GroupGrant(Schema):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^group-[0-9]+$")
    tag: str
    group: str
    permission: TagPermission
    group_size: int = Field(ge=0)


class TagGrants(Paged):
    tag: str
    grants: list[UserGrant | GroupGrant] = Field(max_length=PAGE_SIZE)


def grant_json(grant: Grant) -> dict[str, Any]:
    extra = {"group_size": grant.group_size} if grant.grantee_kind == "group" else {}
    return {
        "id": grant.id,
        "tag": grant.tag,
        grant.grantee_kind: grant.grantee,
        "permission": grant.permission,
        **extra,
    }


@router.get(
    TAGS,
    url_name="api-tags",
    response=answers({200: TagList}, *SIGNED_IN, 404),
    summary="The tags you may see, with how many secrets carry each, by name, 50 a page",
)
def list_tags(request: HttpRequest, slug: PathSlug, page: PageNumber = None) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    found = paginate(tags_visible_to(request.user, workspace), page)
    tags = [{"name": t["name"], "secrets": t["secret_count"], "protected": t["protected"]} for t in found]
    return {"workspace": workspace.slug, **page_fields(found), "tags": tags}


@router.patch(
    f"{TAGS}{{tag}}/",
    url_name="api-tag",
    response=answers({200: TagCount}, *SIGNED_IN, *JSON_BODY, 404),
    summary="Protect a tag (runs read its secrets only once another owner or admin approves), or stop",
)
@reauthentication_required
def change_tag(request: HttpRequest, slug: PathSlug, tag: PathTag, change: TagChange = JsonBody(...)) -> Any:
    workspace = workspace_for(request.user, slug)
    found = set_tag_protected(
        actor=request.user,
        tag=tag_for(request.user, workspace, tag),
        protected=change.protected,
        ip_address=client_ip(request),
    )
    return {"name": found.name, "secrets": found.secret_tags.count(), "protected": found.protected}


@router.delete(
    f"{TAGS}{{tag}}/",
    url_name="api-tag",
    response=answers({204: None}, *SIGNED_IN, 404),
    summary="Delete a tag: it leaves every secret, and its grants end",
)
@reauthentication_required
def remove_tag(request: HttpRequest, slug: PathSlug, tag: PathTag) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    delete_tag(actor=request.user, tag=tag_for(request.user, workspace, tag), ip_address=client_ip(request))
    return HttpResponse(status=204)


def _grants_answer(request: HttpRequest, workspace: Any, tag: str, page: str | None = None) -> dict[str, Any]:
    found = tag_for(request.user, workspace, tag)
    grants = paginate(grants_in(workspace, tags=workspace.tags.filter(pk=found.pk)), page)
    return {"tag": found.name, **page_fields(grants), "grants": [grant_json(g) for g in grants]}


@router.get(
    f"{TAGS}{{tag}}/grants/",
    url_name="api-tag-grants",
    response=answers({200: TagGrants}, *SIGNED_IN, 404),
    summary="The grants on a tag, by grantee, 50 a page",
)
def list_grants(request: HttpRequest, slug: PathSlug, tag: PathTag, page: PageNumber = None) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_GRANTS, workspace)
    return _grants_answer(request, workspace, tag, page)


@router.post(
    f"{TAGS}{{tag}}/grants/",
    url_name="api-tag-grants",
    response=answers({201: TagGrants}, *SIGNED_IN, *JSON_BODY, 404, 409),
    summary="Grant a user or a group permissions on a tag (created if new)",
)
@reauthentication_required
def grant(request: HttpRequest, slug: PathSlug, tag: PathTag, grant: NewGrant = JsonBody(...)) -> Any:
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_GRANTS, workspace)
    grant_tag_permissions(
        actor=request.user,
        workspace=workspace,
        tag_name=tag,
        permission_names=grant.permissions,
        username=grant.user or "",
        group_name=grant.group or "",
        ip_address=client_ip(request),
    )
    return Status(201, _grants_answer(request, workspace, tag))


@router.delete(
    f"{TAGS}{{tag}}/grants/{{grant_id}}/",
    url_name="api-tag-grant",
    response=answers({204: None}, *SIGNED_IN, 404),
    summary="Revoke one grant",
)
@reauthentication_required
def revoke_grant(request: HttpRequest, slug: PathSlug, tag: PathTag, grant_id: GrantId) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    revoke_tag_grant(
        actor=request.user, workspace=workspace, grant_id=grant_id, tag_name=tag, ip_address=client_ip(request)
    )
    return HttpResponse(status=204)
