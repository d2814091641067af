"""Every write: one function per use case, keyword-only arguments, audited, all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables

from . import permissions
from .errors import (
    AlreadyMember,
    InvalidOperation,
    LockOut,
    MemberNotFound,
    SecretAlreadyExists,
    WorkspaceSlugTaken,
)
from .models import AuditEvent, Membership, Role, Secret, SecretTag, Tag, Workspace
from .permissions import Action
from .validators import validate_secret_key, validate_secret_value, validate_tag_name

User = get_user_model()


def record_event(
    *,
    action: str,
    actor: Any = None,
    workspace: Workspace | None = None,
    secret: Secret | None = None,
    secret_key: str = "",
    ip_address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. Callers pass names and ids, never a value."""
    signed_in = actor is not None and actor.is_authenticated
    return AuditEvent.objects.create(
        action=action,
        actor=actor if signed_in else None,
        actor_username=actor.get_username() if signed_in else "",
        workspace=workspace,
        workspace_slug=workspace.slug if workspace else "",
        secret_id=secret.pk if secret else None,
        secret_key=secret.key if secret else secret_key,
        ip_address=ip_address,
        detail=detail or {},
    )


# Users


@sensitive_variables()
def register_user(*, username: str, email: str, password: str) -> Any:
    """Sign up: create the user (the personal workspace follows from the user signal)."""
    with transaction.atomic():
        return User.objects.create_user(username=username, email=email, password=password)


def update_profile(*, user: Any, first_name: str, last_name: str, email: str) -> None:
    user.first_name, user.last_name, user.email = first_name, last_name, email
    user.full_clean(exclude=["password", "username"])
    user.save(update_fields=["first_name", "last_name", "email"])


# Workspaces and members


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
        record_event(
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
            record_event(
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
        record_event(
            action=AuditEvent.Action.WORKSPACE_RENAMED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"from": previous, "to": name},
        )


def delete_workspace(*, actor: Any, workspace: Workspace, ip_address: str | None = None) -> None:
    """Delete a team workspace and everything in it (secrets, tags, grants)."""
    if workspace.is_personal:
        raise InvalidOperation("A personal workspace is deleted together with its user.")
    permissions.require(actor, Action.DELETE_WORKSPACE, workspace)
    with transaction.atomic():
        record_event(
            action=AuditEvent.Action.WORKSPACE_DELETED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"secrets": workspace.secrets.count()},
        )
        workspace.delete()


def _lock_memberships(workspace: Workspace) -> list[Membership]:
    return list(Membership.objects.select_for_update(of=("self",)).select_related("user").filter(workspace=workspace))


def _refuse_lock_out(memberships: list[Membership], *, changing: Membership, to_role: Role | None) -> None:
    owners_after = [m for m in memberships if (to_role if m.pk == changing.pk else Role(m.role)) == Role.OWNER]
    if not owners_after:
        raise LockOut()


def add_member(
    *, actor: Any, workspace: Workspace, username: str, role: Role, ip_address: str | None = None
) -> Membership:
    """Add an existing user to a team workspace with `role`."""
    role = Role(role)
    permissions.require_membership_change(actor, workspace, from_role=None, to_role=role)
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise MemberNotFound(f"No active user named {username!r}.")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(workspace=workspace, user=user, role=role)
            record_event(
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
        memberships = _lock_memberships(workspace)
        membership = next((m for m in memberships if m.user.get_username() == username), None)
        if membership is None:
            raise MemberNotFound()
        previous = Role(membership.role)
        permissions.require_membership_change(actor, workspace, from_role=previous, to_role=role)
        if previous == role:
            return membership
        _refuse_lock_out(memberships, changing=membership, to_role=role)
        membership.role = role
        membership.save(update_fields=["role"])
        record_event(
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
        memberships = _lock_memberships(workspace)
        membership = next((m for m in memberships if m.user.get_username() == username), None)
        if membership is None:
            raise MemberNotFound()
        previous = Role(membership.role)
        permissions.require_membership_change(actor, workspace, from_role=previous, to_role=None)
        _refuse_lock_out(memberships, changing=membership, to_role=None)
        membership.delete()
        record_event(
            action=AuditEvent.Action.MEMBER_REMOVED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"member": username, "role": previous.value},
        )


# Secrets


def _clean_tag_names(tag_names: Iterable[str]) -> list[str]:
    """Distinct, valid tag names in the order given, or a ValidationError listing each bad one."""
    names = list(dict.fromkeys(name.strip() for name in tag_names if name and name.strip()))
    problems = []
    for name in names:
        try:
            validate_tag_name(name)
        except ValidationError as error:
            problems.extend(error.error_list)
    if problems:
        raise ValidationError(problems)
    return names


def _attach_tags(*, actor: Any, secret: Secret, names: list[str]) -> list[str]:
    """Attach tags by name (creating them in the workspace); return the names newly attached."""
    attached = []
    for name in names:
        tag, _ = Tag.objects.get_or_create(workspace_id=secret.workspace_id, name=name)
        _, created = SecretTag.objects.get_or_create(secret=secret, tag=tag, defaults={"added_by": actor})
        if created:
            attached.append(name)
    return attached


@sensitive_variables()
def create_secret(
    *,
    actor: Any,
    workspace: Workspace,
    key: str,
    value: str,
    tags: Iterable[str] = (),
    ip_address: str | None = None,
) -> Secret:
    """Add a secret. The value is sealed before it is written and never returned."""
    permissions.require(actor, Action.CREATE_SECRET, workspace)
    field_errors: dict[str, ValidationError] = {}
    tag_names: list[str] = []
    for field_name, check in (
        ("key", lambda: validate_secret_key(key)),
        ("value", lambda: validate_secret_value(value)),
        ("tags", lambda: tag_names.extend(_clean_tag_names(tags))),
    ):
        try:
            check()
        except ValidationError as error:
            field_errors[field_name] = error
    if field_errors:
        raise ValidationError(field_errors)
    if tag_names:
        permissions.require(actor, Action.TAG_SECRET, workspace)

    secret = Secret(id=uuid.uuid4(), workspace=workspace, key=key, value=value, created_by=actor)
    try:
        with transaction.atomic():
            secret.save(force_insert=True)
            _attach_tags(actor=actor, secret=secret, names=tag_names)
            record_event(
                action=AuditEvent.Action.SECRET_CREATED,
                actor=actor,
                workspace=workspace,
                secret=secret,
                ip_address=ip_address,
                detail={"tags": tag_names} if tag_names else {},
            )
    except IntegrityError:
        if Secret.objects.filter(workspace=workspace, key=key).exists():
            raise SecretAlreadyExists() from None
        raise
    return secret


def delete_secret(*, actor: Any, secret: Secret, ip_address: str | None = None) -> None:
    """Delete a secret and its ciphertext; the key can then be added again."""
    permissions.require_on_secret(actor, Action.DELETE_SECRET, secret)
    with transaction.atomic():
        record_event(
            action=AuditEvent.Action.SECRET_DELETED,
            actor=actor,
            workspace=secret.workspace,
            secret=secret,
            ip_address=ip_address,
        )
        secret.delete()


def tag_secret(*, actor: Any, secret: Secret, tag_names: Iterable[str], ip_address: str | None = None) -> list[str]:
    """Attach tags to a secret (metadata only); return the names that were new on it."""
    permissions.require_on_secret(actor, Action.TAG_SECRET, secret)
    try:
        names = _clean_tag_names(tag_names)
    except ValidationError as error:
        raise ValidationError({"tags": error}) from None
    if not names:
        raise ValidationError({"tags": ["Give at least one tag."]})
    with transaction.atomic():
        attached = _attach_tags(actor=actor, secret=secret, names=names)
        for name in attached:
            record_event(
                action=AuditEvent.Action.SECRET_TAGGED,
                actor=actor,
                workspace=secret.workspace,
                secret=secret,
                ip_address=ip_address,
                detail={"tag": name},
            )
    return attached


def untag_secret(*, actor: Any, secret: Secret, tag_name: str, ip_address: str | None = None) -> None:
    """Remove one tag from a secret; the access the tag gave to it ends at once."""
    permissions.require_on_secret(actor, Action.TAG_SECRET, secret)
    with transaction.atomic():
        removed, _ = SecretTag.objects.filter(secret=secret, tag__name=tag_name).delete()
        if not removed:
            raise ValidationError({"tags": [f"The secret has no tag {tag_name!r}."]})
        record_event(
            action=AuditEvent.Action.SECRET_UNTAGGED,
            actor=actor,
            workspace=secret.workspace,
            secret=secret,
            ip_address=ip_address,
            detail={"tag": tag_name},
        )


def delete_tag(*, actor: Any, tag: Tag, ip_address: str | None = None) -> None:
    """Delete a tag: it leaves every secret it was on, and the grants made on it end."""
    permissions.require(actor, Action.MANAGE_GRANTS, tag.workspace)
    with transaction.atomic():
        record_event(
            action=AuditEvent.Action.TAG_DELETED,
            actor=actor,
            workspace=tag.workspace,
            ip_address=ip_address,
            detail={"tag": tag.name, "secrets": tag.secret_tags.count()},
        )
        tag.delete()
