"""Tags as units of access: grants of a tag's permissions to users and groups (django-guardian),
their revocation, and deleting a tag (which ends its grants)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from guardian.shortcuts import assign_perm, get_group_perms, get_user_perms, remove_perm

from secrets_app import permissions
from secrets_app.errors import AccessDenied, GrantExists, GrantNotFound, GroupNotFound, InvalidOperation, UserNotFound
from secrets_app.models import AuditEvent, Tag, TagGroupObjectPermission, TagUserObjectPermission, Workspace
from secrets_app.permissions import Action
from secrets_app.services import audit
from secrets_app.strict_json import text_problem
from secrets_app.validators import TAG_PATTERN, parse_number, validate_tag_name

User = get_user_model()


def delete_tag(*, actor: Any, tag: Tag, ip_address: str | None = None) -> None:
    """Delete a tag: it leaves every secret it was on, and the grants made on it end."""
    permissions.require(actor, Action.MANAGE_GRANTS, tag.workspace)
    with transaction.atomic():
        audit.record_event(
            action=AuditEvent.Action.TAG_DELETED,
            actor=actor,
            workspace=tag.workspace,
            ip_address=ip_address,
            detail={"tag": tag.name, "secrets": tag.secret_tags.count()},
        )
        tag.delete()


# Tag grants


def _tag_grantee(*, username: str, group_name: str) -> Any:
    if bool(username) == bool(group_name):
        raise ValidationError({"grantee": ["Name exactly one grantee: a user or a group."]})
    if username:
        user = None if text_problem(username) else User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise UserNotFound(f"No active user named {username!r}.")
        return user
    group = None if text_problem(group_name) else Group.objects.filter(name=group_name).first()
    if group is None:
        raise GroupNotFound(f"No group named {group_name!r}.")
    return group


def grant_tag_permissions(
    *,
    actor: Any,
    workspace: Workspace,
    tag_name: str,
    permission_names: Iterable[str],
    username: str = "",
    group_name: str = "",
    ip_address: str | None = None,
) -> list[str]:
    """Grant a user or a group permissions ("view", "use", "delete") on every secret carrying a
    tag (created if new). Returns the permissions that were new."""
    permissions.require(actor, Action.MANAGE_GRANTS, workspace)
    if workspace.is_personal:
        raise InvalidOperation("A personal workspace is private: tag grants are made in team workspaces.")
    wanted = list(dict.fromkeys(permission_names))
    unknown = [name for name in wanted if name not in permissions.TAG_PERMISSION_NAMES]
    if not wanted or unknown:
        choices = ", ".join(permissions.TAG_PERMISSION_NAMES)
        raise ValidationError({"permissions": [f"Choose one or more of: {choices}."]})
    try:
        validate_tag_name(tag_name)
    except ValidationError as error:
        raise ValidationError({"tag": error}) from None
    grantee = _tag_grantee(username=username, group_name=group_name)
    reaches_actor = grantee.pk == actor.pk if username else grantee.user_set.filter(pk=actor.pk).exists()
    if reaches_actor and not permissions.role_allows(permissions.role_in(actor, workspace), Action.MANAGE_GRANTS):
        # Superuser powers administer; they never grant their holder access (and so values).
        raise AccessDenied("Superusers administer workspaces; they do not grant themselves access.")
    grantee_field = {"user": grantee.get_username()} if username else {"group": grantee.name}
    with transaction.atomic():
        tag, _ = Tag.objects.get_or_create(workspace=workspace, name=tag_name)
        held = set(get_user_perms(grantee, tag) if username else get_group_perms(grantee, tag))
        new = [name for name in wanted if permissions.TAG_PERMISSION_NAMES[name] not in held]
        if not new:
            raise GrantExists(f"{next(iter(grantee_field.values()))} already holds that on tag {tag_name}.")
        for name in new:
            assign_perm(permissions.TAG_PERMISSION_NAMES[name], grantee, tag)
            audit.record_event(
                action=AuditEvent.Action.TAG_GRANTED,
                actor=actor,
                workspace=workspace,
                ip_address=ip_address,
                detail={"tag": tag_name, **grantee_field, "permission": name},
            )
    return new


def revoke_tag_grant(
    *, actor: Any, workspace: Workspace, grant_id: str, tag_name: str | None = None, ip_address: str | None = None
) -> None:
    """Revoke one grant (one permission of one user or group on one tag); access ends at once."""
    permissions.require(actor, Action.MANAGE_GRANTS, workspace)
    kind, _, number = grant_id.partition("-")
    model = {"user": TagUserObjectPermission, "group": TagGroupObjectPermission}.get(kind)
    row_id = parse_number(number)
    grant = (
        model.objects.select_related("content_object", "permission", kind)
        .filter(
            pk=row_id,
            content_object__workspace=workspace,
            permission__codename__in=permissions.TAG_PERMISSION_NAMES.values(),
            **({"content_object__name": tag_name} if tag_name is not None else {}),
        )
        .first()
        if model is not None and row_id is not None and (tag_name is None or TAG_PATTERN.fullmatch(tag_name))
        else None
    )
    if grant is None:
        raise GrantNotFound()
    grantee = getattr(grant, kind)
    tag = grant.content_object
    name = permissions.TAG_PERMISSION_SHORT_NAMES[grant.permission.codename]
    grantee_field = {"user": grantee.get_username()} if kind == "user" else {"group": grantee.name}
    with transaction.atomic():
        remove_perm(grant.permission.codename, grantee, tag)
        audit.record_event(
            action=AuditEvent.Action.TAG_REVOKED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"tag": tag.name, **grantee_field, "permission": name},
        )
