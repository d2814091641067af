"""Every read: querysets of what a user may see, built so a page costs a fixed number of queries."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, QuerySet

from . import permissions
from .errors import PageNotFound, SecretNotFound, WorkspaceNotFound
from .models import Membership, Secret, Tag, Workspace

PAGE_SIZE = 50


def workspaces_for(user: Any) -> QuerySet[Workspace]:
    """The workspaces `user` can see, personal first, each with the caller's role."""
    visible = Workspace.objects.filter(permissions.visible_workspaces_filter(user))
    return permissions.annotate_caller_role(visible, user).order_by("kind", "name")


def workspace_for(user: Any, slug: str) -> Workspace:
    """One workspace the user can see, or WorkspaceNotFound (whether or not it exists)."""
    workspace = workspaces_for(user).filter(slug=slug).first()
    if workspace is None:
        raise WorkspaceNotFound()
    return workspace


def personal_workspace_of(user: Any) -> Workspace:
    return workspace_for(user, Workspace.objects.only("slug").get(personal_owner=user).slug)


def secrets_visible_to(user: Any, workspace: Workspace) -> QuerySet[Secret]:
    """Metadata of the secrets `user` may see in `workspace`, sorted by key; values never loaded."""
    return (
        workspace.secrets.filter(permissions.visible_secrets_filter(user, workspace))
        .defer("value")
        .select_related("created_by")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name")))
        .order_by("key")
    )


def secret_for(user: Any, workspace: Workspace, key: str) -> Secret:
    """One secret's metadata, or SecretNotFound whether it is missing or hidden from `user`."""
    secret = secrets_visible_to(user, workspace).filter(key=key).first()
    if secret is None:
        raise SecretNotFound()
    return secret


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("user__username")


def paginate(queryset: QuerySet, raw_page: str | None, per_page: int = PAGE_SIZE) -> Page:
    """One page of `queryset` (pages count from 1), or PageNotFound."""
    paginator = Paginator(queryset, per_page)
    raw_page = raw_page or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= paginator.num_pages:
        raise PageNotFound(f"There is no page {raw_page!r}; pages run from 1 to {paginator.num_pages}.")
    return paginator.page(int(raw_page))
