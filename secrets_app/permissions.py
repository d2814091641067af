"""Every access decision: workspace roles (one matrix) and, for secrets, tag grants.

The UI, the JSON API, the admin and the runner endpoints all ask this module; nothing else
decides who may do what.
"""

from __future__ import annotations

import enum
from typing import Any

from allauth.mfa.models import Authenticator
from django.db.models import BooleanField, Exists, Expression, OuterRef, Q, QuerySet, Subquery, Value
from guardian.shortcuts import get_objects_for_user

from .errors import AccessDenied
from .models import (
    Expiry,
    ExpiryState,
    Membership,
    Role,
    Secret,
    SecretTag,
    Tag,
    TagGroupObjectPermission,
    TagUserObjectPermission,
    Workspace,
)


class Action(enum.StrEnum):
    VIEW_WORKSPACE = "view_workspace"
    VIEW_SECRETS = "view_secrets"
    CREATE_SECRET = "create_secret"
    DELETE_SECRET = "delete_secret"
    TAG_SECRET = "tag_secret"
    USE_SECRET = "use_secret"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_GRANTS = "manage_grants"
    VIEW_AUDIT = "view_audit"
    FIND_SECRETS_BY_VALUE = "find_secrets_by_value"
    REGISTER_WORKFLOW = "register_workflow"
    LAUNCH_EXECUTION = "launch_execution"
    MANAGE_EXECUTIONS = "manage_executions"
    DELETE_WORKSPACE = "delete_workspace"
    CONFIGURE_WORKSPACE = "configure_workspace"
    SET_MFA_POLICY = "set_mfa_policy"


_MEMBER_ACTIONS = frozenset(
    {
        Action.VIEW_WORKSPACE,
        Action.VIEW_SECRETS,
        Action.CREATE_SECRET,
        Action.DELETE_SECRET,
        Action.TAG_SECRET,
        Action.USE_SECRET,
        Action.REGISTER_WORKFLOW,
        Action.LAUNCH_EXECUTION,
    }
)
_ADMIN_ACTIONS = _MEMBER_ACTIONS | {
    Action.MANAGE_MEMBERS,
    Action.MANAGE_GRANTS,
    Action.VIEW_AUDIT,
    Action.MANAGE_EXECUTIONS,
    Action.FIND_SECRETS_BY_VALUE,
    Action.CONFIGURE_WORKSPACE,
}

# The permission matrix (documented in the README): what each role may do in its workspace.
ROLE_PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: _ADMIN_ACTIONS,
    Role.MEMBER: _MEMBER_ACTIONS,
    Role.VIEWER: frozenset({Action.VIEW_WORKSPACE}),
}

# Superusers administer every team workspace (the admin site, or its pages in the console) but, holding no
# role there, never add secrets, read values nor look them up. Personal workspaces stay private.
SUPERUSER_ACTIONS = frozenset(Action) - {
    Action.FIND_SECRETS_BY_VALUE,
    Action.CREATE_SECRET,
    Action.USE_SECRET,
    Action.REGISTER_WORKFLOW,
    Action.LAUNCH_EXECUTION,
}

# Only owners may make, unmake or remove owners.
ROLES_ONLY_OWNERS_MANAGE = frozenset({Role.OWNER})

# Tag grants: a guardian permission on a tag reaches every secret carrying the tag. Using or
# deleting a secret implies seeing it. Grants add to a role; they never take anything away.
TAG_PERMISSION_NAMES = {"view": "view_tagged_secrets", "use": "use_tagged_secrets", "delete": "delete_tagged_secrets"}
TAG_PERMISSION_SHORT_NAMES = {codename: short for short, codename in TAG_PERMISSION_NAMES.items()}
TAG_PERMISSIONS_FOR: dict[Action, tuple[str, ...]] = {
    Action.VIEW_SECRETS: tuple(TAG_PERMISSION_NAMES.values()),
    Action.USE_SECRET: ("use_tagged_secrets",),
    Action.DELETE_SECRET: ("delete_tagged_secrets",),
}


def _is_signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def annotate_caller_role(workspaces: QuerySet[Workspace], user: Any) -> QuerySet[Workspace]:
    """Add the caller's role to each workspace row, so later checks need no query."""
    role = Membership.objects.filter(workspace=OuterRef("pk"), user_id=user.pk).values("role")[:1]
    return workspaces.annotate(caller_role=Subquery(role), caller_id=Value(user.pk))


def role_in(user: Any, workspace: Workspace) -> Role | None:
    """The user's role in the workspace, or None."""
    if not _is_signed_in(user):
        return None
    if getattr(workspace, "caller_id", None) != user.pk:
        workspace.caller_role = (
            Membership.objects.filter(workspace=workspace, user_id=user.pk).values_list("role", flat=True).first()
        )
        workspace.caller_id = user.pk
    return Role(workspace.caller_role) if workspace.caller_role else None


def role_allows(role: Role | None, action: Action) -> bool:
    return role is not None and action in ROLE_PERMISSIONS[role]


def _superuser_allows(user: Any, action: Action, workspace: Workspace) -> bool:
    return user.is_superuser and not workspace.is_personal and action in SUPERUSER_ACTIONS


def can(user: Any, action: Action, workspace: Workspace) -> bool:
    """May `user` do `action` in `workspace` through their role (or as a superuser)?"""
    if not _is_signed_in(user):
        return False
    return role_allows(role_in(user, workspace), action) or _superuser_allows(user, action, workspace)


def require(user: Any, action: Action, workspace: Workspace) -> None:
    """Raise AccessDenied unless `user` may do `action` in `workspace`."""
    if not can(user, action, workspace):
        raise AccessDenied()


def granted_tags(user: Any, action: Action, tags: QuerySet[Tag]) -> QuerySet[Tag]:
    """The tags among `tags` on which `user`, or one of their groups, holds a grant for `action`.

    Object grants only: a model-wide (global) permission never widens access here.
    """
    return get_objects_for_user(
        user,
        list(TAG_PERMISSIONS_FOR[action]),
        klass=tags,
        any_perm=True,
        with_superuser=False,
        accept_global_perms=False,
    )


def visible_workspaces_filter(user: Any) -> Q:
    """Workspaces the user can see: those they belong to, those where they hold a tag grant
    (and, for superusers, every team workspace)."""
    if not _is_signed_in(user):
        return Q(pk__in=[])
    member = Q(Exists(Membership.objects.filter(workspace=OuterRef("pk"), user_id=user.pk)))
    grantee = Q(Exists(granted_tags(user, Action.VIEW_SECRETS, Tag.objects.all()).filter(workspace=OuterRef("pk"))))
    visible = member | grantee
    return visible | Q(kind=Workspace.Kind.TEAM) if user.is_superuser else visible


def granted_secret_ids(user: Any, action: Action, workspace: Workspace) -> QuerySet[SecretTag]:
    """Ids (`secret_id` rows) of the workspace's secrets carrying a tag `user` holds a grant for
    `action` on."""
    tags = granted_tags(user, action, Tag.objects.filter(workspace=workspace))
    return SecretTag.objects.filter(tag__in=tags).values("secret_id")


def _reach(user: Any, action: Action, workspace: Workspace) -> bool | None:
    """True if the role allows `action` on every secret of the workspace, False if nothing can
    allow it, None if it depends on each secret's tags."""
    if can(user, action, workspace):
        return True
    if not _is_signed_in(user) or action not in TAG_PERMISSIONS_FOR:
        return False
    return None


def secrets_filter(user: Any, action: Action, workspace: Workspace) -> Q:
    """Filter on `workspace.secrets`: those `user` may do `action` to, by role or tag grant (one
    SQL expression, whatever the number of secrets, tags and grants)."""
    reach = _reach(user, action, workspace)
    if reach is None:
        return Q(pk__in=granted_secret_ids(user, action, workspace))
    return Q() if reach else Q(pk__in=[])


def visible_secrets_filter(user: Any, workspace: Workspace) -> Q:
    """Filter on `workspace.secrets`: those whose metadata `user` may see."""
    return secrets_filter(user, Action.VIEW_SECRETS, workspace)


def secret_permission_annotation(user: Any, action: Action, workspace: Workspace) -> Expression:
    """A boolean column for a secrets queryset: may `user` do `action` to this row?"""
    reach = _reach(user, action, workspace)
    if reach is None:
        return Exists(granted_secret_ids(user, action, workspace).filter(secret_id=OuterRef("pk")))
    return Value(reach, output_field=BooleanField())


def roles_allowing(action: Action) -> list[Role]:
    return [role for role, actions in ROLE_PERMISSIONS.items() if action in actions]


def secret_row_permission(user: Any, action: Action) -> Q:
    """A condition on any Secret row, in SQL: may `user` do `action` to it, by their role in its
    workspace or by a tag grant on it? For the runner read, which must decide in the same query.

    The same rule as `granted_tags`, as plain joins over guardian's direct foreign-key grant tables
    (`get_objects_for_user` costs a millisecond of Python per call: too much on the hot path;
    tests/test_runners.py checks both agree). Only object grants count; superuser powers never
    reach values."""
    if not _is_signed_in(user):
        return Q(pk__in=[])
    members = Membership.objects.filter(workspace=OuterRef("workspace_id"), role__in=roles_allowing(action))
    by_role = Q(Exists(members.filter(user_id=user.pk)))
    if action not in TAG_PERMISSIONS_FOR:
        return by_role
    codenames = TAG_PERMISSIONS_FOR[action]
    on_this_secret = {"content_object__secret_tags__secret": OuterRef("pk"), "permission__codename__in": codenames}
    by_user_grant = Exists(TagUserObjectPermission.objects.filter(user_id=user.pk, **on_this_secret))
    by_group_grant = Exists(TagGroupObjectPermission.objects.filter(group__user=user.pk, **on_this_secret))
    return by_role | Q(by_user_grant) | Q(by_group_grant)


def expiry_allows_use(expiry: Expiry) -> bool:
    """May a runner still use a secret, as far as its expiry goes? Until it expires, and after that
    while its workspace's grace lasts; never once the grace has run out."""
    return expiry.state is not ExpiryState.EXPIRED


def can_on_secret(user: Any, action: Action, secret: Secret) -> bool:
    """May `user` do `action` (view, use, delete, tag) to this one secret, by role or tag grant?"""
    if can(user, action, secret.workspace):
        return True
    if not _is_signed_in(user) or action not in TAG_PERMISSIONS_FOR:
        return False
    return granted_tags(user, action, Tag.objects.filter(secret_tags__secret=secret)).exists()


def require_on_secret(user: Any, action: Action, secret: Any) -> None:
    if not can_on_secret(user, action, secret):
        raise AccessDenied()


def require_membership_change(
    actor: Any, workspace: Workspace, *, from_role: Role | None, to_role: Role | None, member_id: Any = None
) -> None:
    """Adding (from None), changing or removing (to None) a member: admins manage members, only owners
    manage owners, personal workspaces have no members, and superusers never change their own
    membership (`member_id`) beyond what their role alone allows."""
    if workspace.is_personal:
        raise AccessDenied("A personal workspace belongs to one user; create a team workspace to share secrets.")
    role = role_in(actor, workspace)
    as_superuser = actor.is_superuser and member_id != actor.pk
    if not (
        role_allows(role, Action.MANAGE_MEMBERS)
        or (as_superuser and _superuser_allows(actor, Action.MANAGE_MEMBERS, workspace))
    ):
        if member_id == actor.pk and actor.is_superuser:
            raise AccessDenied("Superusers administer workspaces; they do not add themselves or change their own role.")
        raise AccessDenied()
    touches_owner = from_role in ROLES_ONLY_OWNERS_MANAGE or to_role in ROLES_ONLY_OWNERS_MANAGE
    if touches_owner and not (role == Role.OWNER or as_superuser):
        raise AccessDenied("Only an owner can add, change or remove an owner.")


def can_use_admin_site(user: Any) -> bool:
    return _is_signed_in(user) and user.is_staff


def require_tagging(user: Any, secret_workspace: Workspace, tags_with_grants: list[str]) -> None:
    """Putting a tag that carries grants on a secret shares it with the grantees: only those
    who manage grants may do that."""
    if tags_with_grants and not can(user, Action.MANAGE_GRANTS, secret_workspace):
        names = ", ".join(sorted(tags_with_grants))
        raise AccessDenied(
            f"Tag {names} gives other people access to the secrets that carry it; "
            "only a workspace owner or admin can put it on a secret."
        )


def admin_can(user: Any, action: Action, workspace: Workspace | None) -> bool:
    """Admin site: staff act on a workspace as their role (or superuser powers) allow."""
    return can_use_admin_site(user) and workspace is not None and can(user, action, workspace)


def admin_workspaces_filter(user: Any) -> Q:
    """Admin site: the team workspaces a staff user manages (superusers: every one). Personal
    workspaces are not administered: they have no members but their owner, and no grants."""
    if not can_use_admin_site(user):
        return Q(pk__in=[])
    if user.is_superuser:
        return Q(kind=Workspace.Kind.TEAM)
    managing = roles_allowing(Action.MANAGE_MEMBERS)
    member_managing = Exists(Membership.objects.filter(workspace=OuterRef("pk"), user_id=user.pk, role__in=managing))
    return Q(member_managing, kind=Workspace.Kind.TEAM)


# A runner session is a credential for the runner endpoints only: it cannot open pages, change
# anything or call the rest of the API as its launching user, and it touches only its own
# execution. Route name -> methods it may use there.
RUNNER_SESSION_ROUTES: dict[str, frozenset[str]] = {
    "api-session": frozenset({"GET"}),
    "api-runner-ping": frozenset({"GET"}),
    "api-runner-secret": frozenset({"GET"}),
    "api-runner-resolve": frozenset({"POST"}),
    "api-execution": frozenset({"GET"}),
    "api-execution-finish": frozenset({"POST"}),
}


# Where a workspace's "require two-factor" policy applies (by route name; the workspace is the route's
# `slug`). Runner sessions never reach these routes: those minted before the policy keep reading.
MFA_POLICY_ROUTES = frozenset(
    (
        "secrets value-lookup secrets-import secrets-import-confirm secret-detail secret-delete secret-tags-add "
        "secret-tag-remove workflows workflow-launch workflow-delete executions api-secrets api-secret "
        "api-secret-tags api-secret-tag api-secrets-import api-value-lookup api-workflows api-workflow api-executions "
        "api-tags api-tag api-tag-grants api-tag-grant access grant-revoke tag-delete activity activity-export"
    ).split()
)


def has_second_factor(user: Any) -> bool:
    """Has the user a TOTP authenticator or a passkey (recovery codes alone are not a factor)?"""
    return Authenticator.objects.filter(user_id=user.pk).exclude(type=Authenticator.Type.RECOVERY_CODES).exists()


def mfa_policy_refuses(user: Any, workspace: Workspace) -> bool:
    """Does the workspace's "require two-factor" policy refuse this signed-in user (one without a
    second factor) on its secrets, workflows and executions?"""
    return workspace.require_mfa and _is_signed_in(user) and not has_second_factor(user)


def can_decide_approval(user: Any, execution: Any) -> bool:
    """An owner or admin of the execution's workspace, by role (not a superuser's powers), other than its launcher."""
    return (
        role_allows(role_in(user, execution.workspace), Action.MANAGE_EXECUTIONS)
        and user.pk != execution.launched_by_id
    )


def runner_session_may_call(
    session_execution_id: str, route_name: str | None, method: str, route_kwargs: dict[str, Any]
) -> bool:
    """May a runner session (of execution `session_execution_id`) call this route?"""
    if method not in RUNNER_SESSION_ROUTES.get(route_name or "", frozenset()):
        return False
    return route_kwargs.get("execution_id", session_execution_id) == session_execution_id


def can_launch_in(user: Any, workspace: Workspace) -> bool:
    """Members launch executions by role; a user holding a `use` grant on a tag of the workspace
    may launch too, so that the grant letting them use the tagged secrets lets them run the
    workflows that need them. (What each run may read is still decided per secret, at read time.)"""
    if can(user, Action.LAUNCH_EXECUTION, workspace):
        return True
    return _is_signed_in(user) and granted_tags(user, Action.USE_SECRET, workspace.tags.all()).exists()


def require_launch(user: Any, workspace: Workspace) -> None:
    if not can_launch_in(user, workspace):
        raise AccessDenied("You may not launch executions in this workspace.")


def can_finish_execution(user: Any, execution: Any) -> bool:
    """The launcher (also through its own runner session), or whoever manages the executions of
    the workspace it runs in."""
    return _is_signed_in(user) and (
        execution.launched_by_id == user.pk or can(user, Action.MANAGE_EXECUTIONS, execution.workspace)
    )


# Sessions: every user sees and ends their own sessions and only those, superusers included
# (an administrator ends someone's access by deactivating them, in the admin site).


def own_sessions_filter(user: Any) -> Q:
    """Filter on UserSession: the sessions `user` may see and end."""
    if not _is_signed_in(user):
        return Q(pk__in=[])
    return Q(user_id=user.pk)


def can_end_session(user: Any, user_session: Any) -> bool:
    return _is_signed_in(user) and user_session.user_id == user.pk
