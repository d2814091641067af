"""Workspaces and their members."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.text import slugify

from secrets_app import permissions
from secrets_app.errors import (
    AlreadyMember,
    InvalidOperation,
    LockOut,
    MemberNotFound,
    UserNotFound,
    WorkspaceSlugTaken,
)
from secrets_app.models import AuditEvent, Execution, Membership, Role, Workspace
from secrets_app.permissions import Action
from secrets_app.services import audit
from secrets_app.services.runs import end_runner_sessions
from secrets_app.strict_json import text_problem
from secrets_app.validators import validate_expired_secret_grace_days

User = get_user_model()


def _unique_slug(base: str) -> str:
    base = slugify(base)[:56].strip("-") or "workspace"
    slug, suffix = base, 2
    while Workspace.objects.filter(slug=slug).exists():
        slug, suffix = f"{base}-{suffix}", suffix + 1
    return slug


def create_personal_workspace(*, user: Any) -> Workspace:
    """Give a new user the workspace only they can see."""
    with transaction.atomic():
        workspace = Workspace.objects.create(
            slug=_unique_slug(user.get_username()),
            name=f"{user.get_username()} (personal)",
            kind=Workspace.Kind.PERSONAL,
            personal_owner=user,
        )
        Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
        audit.record_event(
            action=AuditEvent.Action.WORKSPACE_CREATED,
            workspace=workspace,
            detail={"personal_owner": user.get_username()},
        )
    return workspace


_NOT_GIVEN: Any = object()


def create_team_workspace(
    *, actor: Any, name: str, slug: str, owner: Any = _NOT_GIVEN, ip_address: str | None = None
) -> Workspace:
    """Create a team workspace owned by `owner` (by default the actor; None when the admin
    site adds the owners itself in the same transaction)."""
    owner = actor if owner is _NOT_GIVEN else owner
    workspace = Workspace(slug=slug, name=name, kind=Workspace.Kind.TEAM)
    workspace.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            workspace.save()
            if owner is not None:
                Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
            audit.record_event(
                action=AuditEvent.Action.WORKSPACE_CREATED, actor=actor, workspace=workspace, ip_address=ip_address
            )
    except IntegrityError:
        raise WorkspaceSlugTaken() from None
    return workspace


def rename_workspace(*, actor: Any, workspace: Workspace, name: str, ip_address: str | None = None) -> None:
    """Change a workspace's display name (its slug is fixed)."""
    permissions.require(actor, Action.MANAGE_MEMBERS, workspace)
    previous = Workspace.objects.values_list("name", flat=True).get(pk=workspace.pk)
    workspace.name = name
    workspace.full_clean(validate_unique=False)
    if previous == name:
        return
    with transaction.atomic():
        workspace.save(update_fields=["name"])
        audit.record_event(
            action=AuditEvent.Action.WORKSPACE_RENAMED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"from": previous, "to": name},
        )


def set_expired_secret_grace(*, actor: Any, workspace: Workspace, days: int, ip_address: str | None = None) -> None:
    """Let runners read the workspace's expired secrets for `days` after their expiry (0: not at
    all); takes effect on the next read."""
    permissions.require(actor, Action.CONFIGURE_WORKSPACE, workspace)
    try:
        validate_expired_secret_grace_days(days)
    except ValidationError as error:
        raise ValidationError({"expired_secret_grace_days": error.error_list}) from None
    _change_setting(
        actor=actor, workspace=workspace, field="expired_secret_grace_days", value=days, ip_address=ip_address
    )


def set_mfa_policy(*, actor: Any, workspace: Workspace, required: bool, ip_address: str | None = None) -> None:
    """Owners: require (or stop requiring) a second factor of everyone who uses the workspace's
    secrets, workflows and executions (`permissions.mfa_policy_refuses`). An owner may not require it
    without a second factor of their own, which would lock them out."""
    permissions.require(actor, Action.SET_MFA_POLICY, workspace)
    if workspace.is_personal:
        raise InvalidOperation("A personal workspace has no policy: it is yours alone.")
    if required and not permissions.has_second_factor(actor):
        raise InvalidOperation("Add a second factor to your own account first: the policy would lock you out.")
    _change_setting(actor=actor, workspace=workspace, field="require_mfa", value=required, ip_address=ip_address)


def _change_setting(*, actor: Any, workspace: Workspace, field: str, value: Any, ip_address: str | None) -> None:
    """Set one setting of the workspace and audit it from what the database held; nothing is
    written (nor audited) when it already holds `value`."""
    previous = Workspace.objects.values_list(field, flat=True).get(pk=workspace.pk)
    setattr(workspace, field, value)
    if previous == value:
        return
    with transaction.atomic():
        workspace.save(update_fields=[field])
        audit.record_event(
            action=AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={field: {"from": previous, "to": value}},
        )


def delete_workspace(*, actor: Any, workspace: Workspace, ip_address: str | None = None) -> None:
    """Delete a team workspace and everything in it (secrets, tags, grants)."""
    if workspace.is_personal:
        raise InvalidOperation("A personal workspace is deleted together with its user.")
    permissions.require(actor, Action.DELETE_WORKSPACE, workspace)
    with transaction.atomic():
        # Runs in this workspace, and runs elsewhere of workflows registered here.
        end_runner_sessions(
            Execution.objects.filter(
                Q(workspace=workspace) | Q(home_workspace=workspace), status=Execution.Status.RUNNING
            )
        )
        audit.record_event(
            action=AuditEvent.Action.WORKSPACE_DELETED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"secrets": workspace.secrets.count()},
        )
        workspace.delete()


def _lock_memberships(workspace: Workspace, username: str) -> list[Membership]:
    """The workspace's owners and the member named `username`, locked: what a change of that
    member's role must see to keep an owner (never every member: a team may be large)."""
    if text_problem(username):  # a name the database cannot hold names no member
        raise MemberNotFound()
    return list(
        Membership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(Q(role=Role.OWNER) | Q(user__username=username), workspace=workspace)
    )


def _refuse_lock_out(memberships: list[Membership], *, changing: Membership, to_role: Role | None) -> None:
    owners_after = [m for m in memberships if (to_role if m.pk == changing.pk else Role(m.role)) == Role.OWNER]
    if not owners_after:
        raise LockOut()


def _active_user_named(name: str) -> Any:
    """The active user with this username, else the one whose address this is (when only one is)."""
    active = User.objects.filter(is_active=True)
    user = active.filter(username=name).first()
    if user is None and "@" in name and len(name) <= 254:
        by_address = list(active.filter(email__iexact=name)[:2])
        user = by_address[0] if len(by_address) == 1 else None
    return user


def add_member(
    *, actor: Any, workspace: Workspace, username: str, role: Role, ip_address: str | None = None
) -> Membership:
    """Add an existing user, named by username or by e-mail address, to a team workspace with `role`."""
    role = Role(role)
    user = None if text_problem(username) else _active_user_named(username)
    permissions.require_membership_change(
        actor, workspace, from_role=None, to_role=role, member_id=user.pk if user else None
    )
    if user is None:
        raise UserNotFound(f"No active user named {username!r} (a username, or an address they use).")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(workspace=workspace, user=user, role=role)
            audit.record_event(
                action=AuditEvent.Action.MEMBER_ADDED,
                actor=actor,
                workspace=workspace,
                ip_address=ip_address,
                detail={"member": user.get_username(), "role": role.value},
            )
    except IntegrityError:
        raise AlreadyMember() from None
    return membership


def change_member_role(
    *, actor: Any, workspace: Workspace, username: str, role: Role, ip_address: str | None = None
) -> Membership:
    """Give a member another role; a workspace always keeps an owner."""
    role = Role(role)
    with transaction.atomic():
        memberships = _lock_memberships(workspace, username)
        membership = next((m for m in memberships if m.user.get_username() == username), None)
        if membership is None:
            raise MemberNotFound()
        previous = Role(membership.role)
        permissions.require_membership_change(
            actor, workspace, from_role=previous, to_role=role, member_id=membership.user_id
        )
        if previous == role:
            return membership
        _refuse_lock_out(memberships, changing=membership, to_role=role)
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record_event(
            action=AuditEvent.Action.MEMBER_ROLE_CHANGED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"member": username, "from": previous.value, "to": role.value},
        )
    return membership


def remove_member(*, actor: Any, workspace: Workspace, username: str, ip_address: str | None = None) -> None:
    """Remove a member; a workspace always keeps an owner."""
    with transaction.atomic():
        memberships = _lock_memberships(workspace, username)
        membership = next((m for m in memberships if m.user.get_username() == username), None)
        if membership is None:
            raise MemberNotFound()
        previous = Role(membership.role)
        permissions.require_membership_change(
            actor, workspace, from_role=previous, to_role=None, member_id=membership.user_id
        )
        _refuse_lock_out(memberships, changing=membership, to_role=None)
        membership.delete()
        audit.record_event(
            action=AuditEvent.Action.MEMBER_REMOVED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"member": username, "role": previous.value},
        )
