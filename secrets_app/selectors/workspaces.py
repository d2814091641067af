"""Workspaces a user can see, and their members."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from secrets_app import permissions
from secrets_app.errors import WorkspaceNotFound
from secrets_app.models import Membership, Workspace
from secrets_app.selectors.pagination import Capped, capped
from secrets_app.validators import SLUG_PATTERN

# Workspaces a menu (the switcher, "Run in") offers: the first this many, personal first, then by
# name; the Workspaces page lists them all, a page at a time.
WORKSPACE_MENU_SIZE = 100


def workspaces_for(user: Any) -> QuerySet[Workspace]:
    """The workspaces `user` can see, personal first, each with the caller's role."""
    visible = Workspace.objects.filter(permissions.visible_workspaces_filter(user))
    return permissions.annotate_caller_role(visible, user).order_by("kind", "name")


def workspace_menu(user: Any) -> Capped:
    """The first WORKSPACE_MENU_SIZE workspaces `user` can see, and how many there are."""
    return capped(workspaces_for(user), WORKSPACE_MENU_SIZE)


def workspace_for(user: Any, slug: str) -> Workspace:
    """One workspace the user can see, or WorkspaceNotFound (whether or not it exists; also for a
    slug no workspace can have, which is never sent to the database)."""
    workspace = workspaces_for(user).filter(slug=slug).first() if SLUG_PATTERN.fullmatch(slug) else None
    if workspace is None:
        raise WorkspaceNotFound()
    return workspace


def personal_workspace_of(user: Any) -> Workspace:
    return workspace_for(user, Workspace.objects.only("slug").get(personal_owner=user).slug)


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("user__username")
