"""Tags a user may see, the grants made on them, and who can reach a secret and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When

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
from secrets_app.selectors.pagination import Rows, capped
from secrets_app.validators import TAG_PATTERN

# Tags a menu (the Secrets page's tag filter) offers: the first this many by name.
TAG_MENU_SIZE = 100


def tags_visible_to(user: Any, workspace: Workspace) -> QuerySet:
    """Tags `user` may see, as rows of `name`, `protected` and `secret_count`, sorted by name: every tag of the
    workspace for those who see every secret, else the tags on the secrets they reach, counting
    only those secrets (never hidden ones)."""
    if permissions.can(user, Action.VIEW_SECRETS, workspace):
        return workspace.tags.values("name", "protected").annotate(secret_count=Count("secret_tags")).order_by("name")
    reached = permissions.granted_secret_ids(user, Action.VIEW_SECRETS, workspace)
    return (
        SecretTag.objects.filter(secret_id__in=reached)
        .values(name=F("tag__name"), protected=F("tag__protected"))
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


def grants_in(workspace: Workspace, *, tags: QuerySet[Tag] | None = None) -> Rows:
    """The tag grants of a workspace (or of some of its tags) as Grant rows, by tag, users before
    groups, grantee and permission ("view", "use", "delete"): one query of both kinds, paged in
    the database (`pagination.paginate`)."""
    codenames = permissions.TAG_PERMISSION_SHORT_NAMES
    tag_filter = {"content_object__in": tags} if tags is not None else {"content_object__workspace": workspace}
    permission_order = Case(
        *(When(permission__codename=codename, then=Value(n)) for n, codename in enumerate(codenames)),
        output_field=IntegerField(),
    )
    columns = ("pk", "kind", "tag_name", "grantee", "codename", "group_size", "permission_order")
    user_grants = TagUserObjectPermission.objects.filter(permission__codename__in=codenames, **tag_filter).annotate(
        kind=Value("user"),
        tag_name=F("content_object__name"),
        grantee=F(f"user__{get_user_model().USERNAME_FIELD}"),
        codename=F("permission__codename"),
        group_size=Value(None, output_field=IntegerField()),
        permission_order=permission_order,
    )
    members = get_user_model().groups.through.objects.filter(group_id=OuterRef("group_id"))
    group_grants = TagGroupObjectPermission.objects.filter(permission__codename__in=codenames, **tag_filter).annotate(
        kind=Value("group"),
        tag_name=F("content_object__name"),
        grantee=F("group__name"),
        codename=F("permission__codename"),
        group_size=Subquery(members.values("group_id").annotate(size=Count("pk")).values("size")[:1]),
        permission_order=permission_order,
    )
    rows = (
        user_grants.values_list(*columns)
        .union(group_grants.values_list(*columns), all=True)
        .order_by("tag_name", "-kind", "grantee", "permission_order")
    )

    def grant(row: tuple[Any, ...]) -> Grant:
        pk, kind, tag_name, grantee, codename, group_size, _ = row
        return Grant(
            f"{kind}-{pk}", tag_name, kind, grantee, codenames[codename], group_size or 0 if kind == "group" else None
        )

    return Rows(rows, grant)


SECRET_ACTIONS = (("view", Action.VIEW_SECRETS), ("use", Action.USE_SECRET), ("delete", Action.DELETE_SECRET))


@dataclass(frozen=True)
class AccessEntry:
    """Who can reach a secret, and why."""

    grantee_kind: str
    grantee: str
    reason: str
    permissions: tuple[str, ...]


# Members, and tag grants, that "who can reach this secret" lists (the rest are counted; the
# Members and Access pages list them all, a page at a time).
ACCESS_LISTED = 50


@dataclass(frozen=True)
class SecretAccess:
    """Who can reach a secret: the first entries, and how many members and grants are not listed."""

    entries: list[AccessEntry]
    unlisted_members: int
    unlisted_grants: int


def effective_access(secret: Secret) -> SecretAccess:
    """Who can reach `secret`: the first ACCESS_LISTED members by role (by username), then the
    users and groups of the first ACCESS_LISTED tag grants on its tags."""
    allowed_by_role = {
        role: tuple(name for name, action in SECRET_ACTIONS if permissions.role_allows(role, action)) for role in Role
    }
    members = capped(
        secret.workspace.memberships.filter(role__in=[role for role, allowed in allowed_by_role.items() if allowed])
        .select_related("user")
        .order_by("user__username"),
        ACCESS_LISTED,
    )
    entries = [
        AccessEntry("user", m.user.get_username(), f"role: {Role(m.role).label.lower()}", allowed_by_role[Role(m.role)])
        for m in members
    ]
    grants = capped(grants_in(secret.workspace, tags=Tag.objects.filter(secret_tags__secret=secret)), ACCESS_LISTED)
    by_grantee: dict[tuple[str, str, str], list[str]] = {}
    for grant in grants:
        label = f"{grant.grantee} ({grant.group_size} users)" if grant.grantee_kind == "group" else grant.grantee
        by_grantee.setdefault((grant.grantee_kind, label, f"tag {grant.tag}"), []).append(grant.permission)
    entries += [AccessEntry(kind, who, reason, tuple(perms)) for (kind, who, reason), perms in by_grantee.items()]
    return SecretAccess(entries, members.unlisted, grants.unlisted)
