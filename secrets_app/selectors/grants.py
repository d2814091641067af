"""Tags a user may see, the grants made on them, and who can reach a secret and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from secrets_app import permissions
from secrets_app.errors import TagNotFound
from secrets_app.models import (
    Role,
    Secret,
    SecretTag,
    Tag,
    TagGroupObjectPermission,
    TagUserObjectPermission,
    Workspace,
)
from secrets_app.permissions import Action
from secrets_app.validators import TAG_PATTERN


def tags_visible_to(user: Any, workspace: Workspace) -> QuerySet:
    """Tags `user` may see, as rows of `name` and `secret_count`, sorted by name: every tag of the
    workspace for those who see every secret, else the tags on the secrets they reach, counting
    only those secrets (never hidden ones)."""
    if permissions.can(user, Action.VIEW_SECRETS, workspace):
        return workspace.tags.values("name").annotate(secret_count=Count("secret_tags")).order_by("name")
    reached = permissions.granted_secret_ids(user, Action.VIEW_SECRETS, workspace)
    return (
        SecretTag.objects.filter(secret_id__in=reached)
        .values(name=F("tag__name"))
        .annotate(secret_count=Count("pk"))
        .order_by("name")
    )


def tag_for(user: Any, workspace: Workspace, name: str) -> Tag:
    """One tag `user` may see, or TagNotFound."""
    tag = workspace.tags.filter(name=name).first() if TAG_PATTERN.fullmatch(name) else None
    if tag is None or not tags_visible_to(user, workspace).filter(name=name).exists():
        raise TagNotFound()
    return tag


def tag_names_with_grants(workspace: Workspace, names: list[str]) -> list[str]:
    """Which of these tag names carry at least one grant in `workspace`."""
    if not names:
        return []
    granted = Q(Exists(TagUserObjectPermission.objects.filter(content_object=OuterRef("pk")))) | Q(
        Exists(TagGroupObjectPermission.objects.filter(content_object=OuterRef("pk")))
    )
    return list(workspace.tags.filter(granted, name__in=names).values_list("name", flat=True))


@dataclass(frozen=True)
class Grant:
    """One permission ("view", "use" or "delete") held by a user or a group on one tag."""

    id: str
    tag: str
    grantee_kind: str
    grantee: str
    permission: str
    group_size: int | None = None


def grants_in(workspace: Workspace, *, tags: QuerySet[Tag] | None = None) -> list[Grant]:
    """The tag grants of a workspace (or of some of its tags), by tag, grantee and permission."""
    codenames = permissions.TAG_PERMISSION_SHORT_NAMES
    tag_filter = {"content_object__in": tags} if tags is not None else {"content_object__workspace": workspace}
    user_grants = TagUserObjectPermission.objects.filter(
        permission__codename__in=codenames, **tag_filter
    ).select_related("content_object", "permission", "user")
    group_grants = (
        TagGroupObjectPermission.objects.filter(permission__codename__in=codenames, **tag_filter)
        .select_related("content_object", "permission", "group")
        .annotate(group_size=Count("group__user"))
    )
    grants = [
        Grant(f"user-{g.pk}", g.content_object.name, "user", g.user.get_username(), codenames[g.permission.codename])
        for g in user_grants
    ] + [
        Grant(
            f"group-{g.pk}",
            g.content_object.name,
            "group",
            g.group.name,
            codenames[g.permission.codename],
            g.group_size,
        )
        for g in group_grants
    ]
    order = list(permissions.TAG_PERMISSION_NAMES)
    return sorted(grants, key=lambda g: (g.tag, g.grantee_kind != "user", g.grantee, order.index(g.permission)))


SECRET_ACTIONS = (("view", Action.VIEW_SECRETS), ("use", Action.USE_SECRET), ("delete", Action.DELETE_SECRET))


@dataclass(frozen=True)
class AccessEntry:
    """Who can reach a secret, and why."""

    grantee_kind: str
    grantee: str
    reason: str
    permissions: tuple[str, ...]


def effective_access(secret: Secret) -> list[AccessEntry]:
    """Everyone who can reach `secret`: members by role, then users and groups by tag grant."""
    entries = []
    for membership in secret.workspace.memberships.select_related("user").order_by("user__username"):
        role = Role(membership.role)
        allowed = tuple(name for name, action in SECRET_ACTIONS if permissions.role_allows(role, action))
        if allowed:
            entries.append(AccessEntry("user", membership.user.get_username(), f"role: {role.label.lower()}", allowed))
    by_grantee: dict[tuple[str, str, str], list[str]] = {}
    for grant in grants_in(secret.workspace, tags=Tag.objects.filter(secret_tags__secret=secret)):
        label = f"{grant.grantee} ({grant.group_size} users)" if grant.grantee_kind == "group" else grant.grantee
        by_grantee.setdefault((grant.grantee_kind, label, f"tag {grant.tag}"), []).append(grant.permission)
    entries += [AccessEntry(kind, who, reason, tuple(perms)) for (kind, who, reason), perms in by_grantee.items()]
    return entries
