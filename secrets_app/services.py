"""Every write: one function per use case, keyword-only arguments, audited, all or nothing."""

from __future__ import annotations

import datetime
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.sql import InsertQuery
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables
from guardian.shortcuts import assign_perm, get_group_perms, get_user_perms, remove_perm

from . import crypto, dotenv, permissions, selectors
from .client import placeholders_in
from .crypto import DecryptionFailed
from .errors import (
    AccessDenied,
    AlreadyMember,
    DotenvConflicts,
    DotenvInvalid,
    ExecutionNotRunning,
    GrantExists,
    GrantNotFound,
    GroupNotFound,
    InvalidOperation,
    LockOut,
    MemberNotFound,
    RunnerSessionEnded,
    SecretAlreadyExists,
    SecretExpired,
    SecretNotFound,
    SecretsRefused,
    UserNotFound,
    WorkflowAlreadyExists,
    WorkspaceMismatch,
    WorkspaceSlugTaken,
)
from .models import (
    EXPIRED_SECRET_GRACE_MAX_DAYS,
    AuditEvent,
    Execution,
    Expiry,
    ExpiryState,
    Membership,
    Role,
    Secret,
    SecretTag,
    Tag,
    TagGroupObjectPermission,
    TagUserObjectPermission,
    UserSession,
    Workflow,
    WorkflowSecretReference,
    Workspace,
)
from .permissions import Action
from .validators import (
    SECRET_KEY_PATTERN,
    TAG_PATTERN,
    json_contains_nul,
    printable_key,
    validate_secret_expiry,
    validate_secret_key,
    validate_secret_value,
    validate_tag_name,
    validate_workflow_name,
)

User = get_user_model()


def audit_event(
    *,
    action: str,
    actor: Any = None,
    workspace: Workspace | None = None,
    secret: Secret | None = None,
    secret_key: str = "",
    ip_address: str | None = None,
    execution_id: Any = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """An unsaved audit event. Callers pass names and ids, never a value."""
    signed_in = actor is not None and actor.is_authenticated
    return AuditEvent(
        at=timezone.now(),
        action=action,
        actor_id=actor.pk if signed_in else None,
        actor_username=actor.get_username() if signed_in else "",
        workspace_id=workspace.pk if workspace else None,
        workspace_slug=workspace.slug if workspace else "",
        secret_id=secret.pk if secret else None,
        secret_key=secret.key if secret else secret_key,
        execution_id=execution_id,
        ip_address=ip_address,
        detail=detail or {},
    )


class _AuditEventInsert:
    """One audit event as one INSERT, its SQL compiled once per process.

    The runner read writes an event on every request; `Model.save()` would build and compile the
    same INSERT each time, which costs more than the database spends on it.
    """

    def __init__(self) -> None:
        self.fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
        self._sql: dict[str, str] = {}

    def sql(self) -> str:
        if connection.vendor not in self._sql:
            query = InsertQuery(AuditEvent)
            query.insert_values(self.fields, [AuditEvent(action="", detail={})])
            ((sql, _),) = query.get_compiler(connection=connection).as_sql()
            self._sql[connection.vendor] = sql
        return self._sql[connection.vendor]

    def __call__(self, event: AuditEvent) -> None:
        params = [field.get_db_prep_save(field.pre_save(event, True), connection) for field in self.fields]
        with connection.cursor() as cursor:
            cursor.execute(self.sql(), params)


_insert_audit_event = _AuditEventInsert()


class _AuditChain:
    """The chain of audit events written through one database connection of one process.

    A chain per connection (that is, per app server thread) links events without a lock or a
    query shared by all writers, so the runner read pays nothing for it. A link counts only
    once its transaction commits: links made inside a transaction wait in Django's on-commit
    list, which forgets those a rollback (of the transaction or of a savepoint) took away, so
    the next event always extends the last link that exists, or will exist, in the database.
    """

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self.process = os.getpid()
        self.committed: tuple[int, str] = (0, "")

    def head(self) -> tuple[int, str]:
        """Position and MAC of the link the next event extends."""
        for _, callback, _ in reversed(connection.run_on_commit):
            if isinstance(callback, _ChainLink) and callback.chain is self:
                return callback.seq, callback.mac
        return self.committed

    def link(self, events: list[AuditEvent]) -> _ChainLink:
        seq, mac = self.head()
        for event in events:
            seq += 1
            event.chain_id, event.chain_seq = self.id, seq
            mac = event.mac = crypto.audit_mac(mac, event.chained_content())
        return _ChainLink(self, seq, mac)


@dataclass(frozen=True)
class _ChainLink:
    """Run on commit (at once outside a transaction): the chain's head moves to this link."""

    chain: _AuditChain
    seq: int
    mac: str

    def __call__(self) -> None:
        if self.seq > self.chain.committed[0]:
            self.chain.committed = (self.seq, self.mac)


def _audit_chain() -> _AuditChain:
    chain = getattr(connection, "audit_chain", None)
    if chain is None or chain.process != os.getpid():  # a forked worker starts a chain of its own
        chain = connection.audit_chain = _AuditChain()
    return chain


def record_events(events: list[AuditEvent]) -> list[AuditEvent]:
    """Append audit events, in order, as the next links of this connection's chain."""
    chain = _audit_chain()
    link = chain.link(events)
    try:
        if len(events) == 1:
            _insert_audit_event(events[0])
        else:
            AuditEvent.objects.bulk_create(events, batch_size=1000)
    except Exception:
        # Whether the write reached the database is unknown (a connection lost mid-commit):
        # the next event starts a new chain rather than risk a gap or a duplicate position.
        connection.audit_chain = None
        raise
    transaction.on_commit(link)
    return events


def record_event(**fields: Any) -> AuditEvent:
    """Append one audit event (see `audit_event` for the fields)."""
    return record_events([audit_event(**fields)])[0]


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


@sensitive_variables()
def change_password(
    *, user: Any, new_password: str, current_session_key: str | None, ip_address: str | None = None
) -> None:
    """Set a new password and end every other session of the user at once: browser, API and
    runner sessions are deleted from the store, not merely refused on their next use. The caller
    keeps the current session signed in (`update_session_auth_hash`)."""
    password_validation.validate_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        _revoke_other_sessions(
            actor=user, current_session_key=current_session_key, reason="password_changed", ip_address=ip_address
        )


# Sessions (the registry behind Account Settings → Sessions; `secrets_app.session_store` keeps it in
# step with the session store)


def register_session(
    *, user: Any, session_key: str, kind: str, ip_address: str | None = None, user_agent: str = ""
) -> UserSession:
    """Record a session that has just signed in, and forget the user's rows whose session is gone."""
    with transaction.atomic():
        UserSession.objects.filter(selectors.session_gone(), user=user).delete()
        user_session, _ = UserSession.objects.update_or_create(
            session_key=session_key,
            defaults={
                "user": user,
                "kind": kind,
                "execution": None,
                "ip_address": ip_address,
                "user_agent": user_agent[: UserSession.USER_AGENT_MAX_LENGTH],
            },
        )
    return user_session


def record_session_seen(*, session_key: str) -> None:
    """Note that a session was just used (callers throttle this: see SessionActivityMiddleware)."""
    UserSession.objects.filter(session_key=session_key).update(last_seen_at=timezone.now())


def _end_session(*, actor: Any, user_session: UserSession, ip_address: str | None) -> None:
    """End one session for every app server: a runner session's execution finishes exactly as
    `finish_execution` finishes it; any other session is deleted from the store."""
    if user_session.kind == UserSession.Kind.RUNNER:
        try:
            finish_execution(actor=actor, execution=user_session.execution, ip_address=ip_address)
            return
        except ExecutionNotRunning:
            pass  # already over; its session may linger only as a row
    _session_store()(session_key=user_session.session_key).delete()


def revoke_session(*, actor: Any, user_session: UserSession, ip_address: str | None = None) -> None:
    """End one of the actor's own sessions at once (their current one too: that signs them out)."""
    if not permissions.can_end_session(actor, user_session):
        raise AccessDenied("You can only end your own sessions.")
    execution = user_session.execution
    with transaction.atomic():
        _end_session(actor=actor, user_session=user_session, ip_address=ip_address)
        record_event(
            action=AuditEvent.Action.SESSION_REVOKED,
            actor=actor,
            workspace=execution.workspace if execution else None,
            execution_id=execution.id if execution else None,
            ip_address=ip_address,
            detail={"kind": user_session.kind, **({"workflow": execution.workflow_reference} if execution else {})},
        )


def revoke_other_sessions(
    *, actor: Any, current_session_key: str | None, ip_address: str | None = None
) -> dict[str, int]:
    """Sign out everywhere else: end every session of the actor's but the current one. Returns how
    many of each kind ended."""
    with transaction.atomic():
        return _revoke_other_sessions(
            actor=actor, current_session_key=current_session_key, reason="requested", ip_address=ip_address
        )


def _revoke_other_sessions(
    *, actor: Any, current_session_key: str | None, reason: str, ip_address: str | None
) -> dict[str, int]:
    others = (
        UserSession.objects.filter(permissions.own_sessions_filter(actor))
        .exclude(session_key=current_session_key or "")
        .select_related("execution__workspace")
    )
    ended = dict.fromkeys(UserSession.Kind.values, 0)
    executions = []
    for user_session in others:
        _end_session(actor=actor, user_session=user_session, ip_address=ip_address)
        ended[user_session.kind] += 1
        if user_session.execution_id:
            executions.append(str(user_session.execution_id))
    record_event(
        action=AuditEvent.Action.OTHER_SESSIONS_REVOKED,
        actor=actor,
        ip_address=ip_address,
        detail={"reason": reason, "ended": ended, "executions": executions},
    )
    return ended


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


def set_expired_secret_grace(*, actor: Any, workspace: Workspace, days: int, ip_address: str | None = None) -> None:
    """Let runners read the workspace's expired secrets for `days` after their expiry (0: not at
    all); takes effect on the next read."""
    permissions.require(actor, Action.CONFIGURE_WORKSPACE, workspace)
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= EXPIRED_SECRET_GRACE_MAX_DAYS:
        raise ValidationError(
            {
                "expired_secret_grace_days": [
                    f"Give a whole number of days from 0 (no grace) to {EXPIRED_SECRET_GRACE_MAX_DAYS}."
                ]
            }
        )
    previous = Workspace.objects.values_list("expired_secret_grace_days", flat=True).get(pk=workspace.pk)
    workspace.expired_secret_grace_days = days
    if previous == days:
        return
    with transaction.atomic():
        workspace.save(update_fields=["expired_secret_grace_days"])
        record_event(
            action=AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"expired_secret_grace_days": {"from": previous, "to": days}},
        )


def delete_workspace(*, actor: Any, workspace: Workspace, ip_address: str | None = None) -> None:
    """Delete a team workspace and everything in it (secrets, tags, grants)."""
    if workspace.is_personal:
        raise InvalidOperation("A personal workspace is deleted together with its user.")
    permissions.require(actor, Action.DELETE_WORKSPACE, workspace)
    with transaction.atomic():
        # Runs in this workspace, and runs elsewhere of workflows registered here.
        _end_runner_sessions(
            Execution.objects.filter(
                Q(workspace=workspace) | Q(home_workspace=workspace), status=Execution.Status.RUNNING
            )
        )
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
        raise UserNotFound(f"No active user named {username!r}.")
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
    permissions.require_tagging(actor, secret.workspace, selectors.tag_names_with_grants(secret.workspace, names))
    attached = []
    tags = _tags_named(secret.workspace, names)
    for name in names:
        _, created = SecretTag.objects.get_or_create(secret=secret, tag=tags[name], defaults={"added_by": actor})
        if created:
            attached.append(name)
    return attached


def _validate_new_secret(
    key: str, value: str, tags: Iterable[str], expires_at: datetime.datetime | None = None
) -> list[str]:
    """Check one new secret's fields; return its clean tag names, or a ValidationError by field."""
    field_errors: dict[str, ValidationError] = {}
    tag_names: list[str] = []
    try:
        validate_secret_key(key)
    except ValidationError as error:
        field_errors["key"] = error
    try:
        validate_secret_value(value)
    except ValidationError as error:
        field_errors["value"] = error
    try:
        tag_names = _clean_tag_names(tags)
    except ValidationError as error:
        field_errors["tags"] = error
    if expires_at is not None:
        try:
            validate_secret_expiry(expires_at, now=timezone.now())
        except ValidationError as error:
            field_errors["expires_at"] = error
    if field_errors:
        raise ValidationError(field_errors)
    return tag_names


def _tags_named(workspace: Workspace, names: list[str]) -> dict[str, Tag]:
    """The workspace's tags with these names, creating the missing ones."""
    tags = {tag.name: tag for tag in workspace.tags.filter(name__in=names)}
    missing = [Tag(workspace=workspace, name=name) for name in names if name not in tags]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        tags = {tag.name: tag for tag in workspace.tags.filter(name__in=names)}
    return tags


@sensitive_variables()
def _write_new_secrets(
    *,
    actor: Any,
    workspace: Workspace,
    secrets: list[Secret],
    entries: list[tuple[str, str, list[str]]],
    tag_names: list[str],
    ip_address: str | None,
) -> None:
    """One transaction: the secrets, their tags, one audit event each."""
    with transaction.atomic():
        Secret.objects.bulk_create(secrets, batch_size=500)
        tags = _tags_named(workspace, tag_names)
        SecretTag.objects.bulk_create(
            [
                SecretTag(secret=secret, tag=tags[name], added_by=actor)
                for secret, (_, _, names) in zip(secrets, entries, strict=True)
                for name in names
            ],
            batch_size=1000,
        )
        record_events(
            [
                audit_event(
                    action=AuditEvent.Action.SECRET_CREATED,
                    actor=actor,
                    workspace=workspace,
                    secret=secret,
                    ip_address=ip_address,
                    detail=_creation_detail(secret, names),
                )
                for secret, (_, _, names) in zip(secrets, entries, strict=True)
            ]
        )


def _require_tagging_rights(actor: Any, workspace: Workspace, tag_names: list[str]) -> None:
    """May `actor` put these tags on new secrets (tagging, and sharing through tags with grants)?"""
    if tag_names:
        permissions.require(actor, Action.TAG_SECRET, workspace)
        permissions.require_tagging(actor, workspace, selectors.tag_names_with_grants(workspace, tag_names))


def _creation_detail(secret: Secret, tag_names: list[str]) -> dict[str, Any]:
    detail: dict[str, Any] = {"tags": tag_names} if tag_names else {}
    if secret.expires_at is not None:
        detail["expires_at"] = secret.expires_at.astimezone(datetime.UTC).isoformat()
    return detail


@sensitive_variables()
def _insert_secrets(
    *,
    actor: Any,
    workspace: Workspace,
    entries: list[tuple[str, str, list[str]]],
    ip_address: str | None,
    expires_at: datetime.datetime | None = None,
) -> list[Secret]:
    """Write validated (key, value, tag names) entries, each expiring at `expires_at` if given, with
    their tags and audit events, all in one transaction. Values are sealed as each row is written."""
    tag_names = sorted({name for _, _, names in entries for name in names})
    _require_tagging_rights(actor, workspace, tag_names)
    secrets = [
        Secret(id=uuid.uuid4(), workspace=workspace, key=key, value=value, created_by=actor, expires_at=expires_at)
        for key, value, _ in entries
    ]
    # A key taken when we wrote is a conflict. If the row that took it is gone by the time we
    # look (a concurrent delete), the key is free again: write once more.
    for attempt in range(2):
        try:
            _write_new_secrets(
                actor=actor,
                workspace=workspace,
                secrets=secrets,
                entries=entries,
                tag_names=tag_names,
                ip_address=ip_address,
            )
            break
        except IntegrityError:
            taken = sorted(workspace.secrets.filter(key__in=[s.key for s in secrets]).values_list("key", flat=True))
            if taken:
                raise SecretAlreadyExists.for_keys(taken) from None
            if attempt:
                raise
    for secret in secrets:
        secret._remember_identity()
    return secrets


@sensitive_variables()
def create_secret(
    *,
    actor: Any,
    workspace: Workspace,
    key: str,
    value: str,
    tags: Iterable[str] = (),
    expires_at: datetime.datetime | None = None,
    ip_address: str | None = None,
) -> Secret:
    """Add a secret, optionally expiring at `expires_at` (a future moment; fixed once created). The
    value is sealed before it is written and never returned."""
    permissions.require(actor, Action.CREATE_SECRET, workspace)
    tag_names = _validate_new_secret(key, value, tags, expires_at)
    return _insert_secrets(
        actor=actor,
        workspace=workspace,
        entries=[(key, value, tag_names)],
        ip_address=ip_address,
        expires_at=expires_at,
    )[0]


@sensitive_variables()
def find_secrets_by_value(*, actor: Any, workspace: Workspace, value: str, ip_address: str | None = None) -> list[str]:
    """Keys of the workspace's secrets that hold `value`: "is this stored anywhere here?".

    For the workspace's owners and admins only, compared by fingerprint within this workspace
    only, and audited with the keys found (never the value), since it answers guesses.
    """
    permissions.require(actor, Action.FIND_SECRETS_BY_VALUE, workspace)
    validate_secret_value(value)
    keys = selectors.keys_holding_fingerprint(workspace, crypto.value_fingerprint(value, workspace_id=workspace.pk))
    record_event(
        action=AuditEvent.Action.VALUE_LOOKED_UP,
        actor=actor,
        workspace=workspace,
        ip_address=ip_address,
        detail={"matches": keys},
    )
    return keys


@sensitive_variables()
def import_secrets(
    *,
    actor: Any,
    workspace: Workspace,
    entries: Iterable[tuple[str, str, Iterable[str]]],
    ip_address: str | None = None,
) -> list[Secret]:
    """Add many (key, value, tags) secrets at once: all or nothing. Invalid entries are reported
    by key; keys already in the workspace (or given twice) are conflicts, never overwritten."""
    permissions.require(actor, Action.CREATE_SECRET, workspace)
    cleaned, problems, seen = [], {}, set()
    for key, value, tags in entries:
        try:
            tag_names = _validate_new_secret(key, value, tags)
        except ValidationError as error:
            problems[str(key)] = [
                f"{field}: {message}" for field, messages in error.message_dict.items() for message in messages
            ]
            continue
        if key in seen:
            problems[key] = ["key: given more than once."]
        seen.add(key)
        cleaned.append((key, value, tag_names))
    if problems:
        raise ValidationError(problems)
    taken = sorted(workspace.secrets.filter(key__in=seen).values_list("key", flat=True))
    if taken:
        raise SecretAlreadyExists.for_keys(taken)
    return _insert_secrets(actor=actor, workspace=workspace, entries=cleaned, ip_address=ip_address)


# Importing a .env file (the format: secrets_app/dotenv.py)

DOTENV_NEW, DOTENV_CONFLICT, DOTENV_INVALID = "new", "conflict", "invalid"
DOTENV_CONFLICT_MESSAGE = (
    "A secret with this key already exists in this workspace; an import never replaces one (secrets are "
    "immutable): delete it first, or leave this line out."
)
DOTENV_EMPTY_VALUE_MESSAGE = "The value is empty: the console stores no empty values; give one or leave this line out."


@dataclass(frozen=True)
class DotenvImportLine:
    """One line of a .env import as a preview shows it: the key only if it is a valid key (an
    unreadable line may be a piece of a value), never the value."""

    line: int
    status: str
    key: str = ""
    code: str = ""
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"line": self.line, "key": self.key or None, "status": self.status}
        if self.error:
            answer.update(code=self.code, error=self.error)
        return answer


@dataclass(frozen=True)
class DotenvImportPlan:
    """What importing a .env file would do, line by line, and the entries it would write."""

    lines: list[DotenvImportLine]
    tag_names: list[str]
    entries: list[tuple[str, str, list[str]]] = field(repr=False)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((DOTENV_NEW, DOTENV_CONFLICT, DOTENV_INVALID), 0)
        for line in self.lines:
            counts[line.status] += 1
        return counts

    @property
    def importable(self) -> bool:
        return all(line.status == DOTENV_NEW for line in self.lines)

    @property
    def refused_lines(self) -> list[DotenvImportLine]:
        return [line for line in self.lines if line.status != DOTENV_NEW]

    def with_conflicts(self, keys: Iterable[str]) -> DotenvImportPlan:
        """The same plan, with these keys found taken after all."""
        taken = set(keys)
        lines = [
            DotenvImportLine(line.line, DOTENV_CONFLICT, line.key, SecretAlreadyExists.code, DOTENV_CONFLICT_MESSAGE)
            if line.key in taken and line.status == DOTENV_NEW
            else line
            for line in self.lines
        ]
        return DotenvImportPlan(lines=lines, tag_names=self.tag_names, entries=self.entries)


def _invalid_dotenv_line(assignment: dotenv.Assignment, error: ValidationError) -> DotenvImportLine:
    problems = [problem for field_errors in error.error_dict.values() for problem in field_errors]
    message = " ".join(
        DOTENV_EMPTY_VALUE_MESSAGE if problem.code == "empty_value" else " ".join(problem.messages)
        for problem in problems
    )
    key = "" if "key" in error.error_dict else assignment.key
    return DotenvImportLine(assignment.line, DOTENV_INVALID, key, problems[0].code or "invalid_input", message)


@sensitive_variables()
def plan_dotenv_import(*, actor: Any, workspace: Workspace, text: str, tags: Iterable[str] = ()) -> DotenvImportPlan:
    """Read a .env file for import into `workspace`: each line new, a conflict or invalid, with
    the same rules (and permission checks) as adding one secret. Writes nothing."""
    permissions.require(actor, Action.CREATE_SECRET, workspace)
    try:
        tag_names = _clean_tag_names(tags)
    except ValidationError as error:
        raise ValidationError({"tags": error}) from None
    _require_tagging_rights(actor, workspace, tag_names)
    try:
        parsed = dotenv.parse(text)
    except dotenv.DotenvRefused as error:
        raise ValidationError({"dotenv": ValidationError(error.message, code=error.code)}) from None
    lines = [
        DotenvImportLine(
            problem.line,
            DOTENV_INVALID,
            problem.key if SECRET_KEY_PATTERN.fullmatch(problem.key) else "",
            problem.code,
            problem.message,
        )
        for problem in parsed.problems
    ]
    valid = []
    for assignment in parsed.assignments:
        try:
            _validate_new_secret(assignment.key, assignment.value, ())
        except ValidationError as error:
            lines.append(_invalid_dotenv_line(assignment, error))
        else:
            valid.append(assignment)
    taken = selectors.secret_keys_taken(workspace, [assignment.key for assignment in valid])
    for assignment in valid:
        if assignment.key in taken:
            lines.append(
                DotenvImportLine(
                    assignment.line,
                    DOTENV_CONFLICT,
                    assignment.key,
                    SecretAlreadyExists.code,
                    DOTENV_CONFLICT_MESSAGE,
                )
            )
        else:
            lines.append(DotenvImportLine(assignment.line, DOTENV_NEW, assignment.key))
    lines.sort(key=lambda line: line.line)
    entries = [(assignment.key, assignment.value, tag_names) for assignment in valid if assignment.key not in taken]
    return DotenvImportPlan(lines=lines, tag_names=tag_names, entries=entries)


@sensitive_variables()
def import_dotenv(
    *, actor: Any, workspace: Workspace, text: str, tags: Iterable[str] = (), ip_address: str | None = None
) -> list[Secret]:
    """Import a .env file's secrets (each with `tags`) into `workspace` through `import_secrets`:
    one transaction, all or nothing. Refused whole if a line is invalid (DotenvInvalid) or a key
    exists (DotenvConflicts): nothing is ever overwritten."""
    plan = plan_dotenv_import(actor=actor, workspace=workspace, text=text, tags=tags)
    counts = plan.counts
    if counts[DOTENV_INVALID]:
        raise DotenvInvalid(plan)
    if counts[DOTENV_CONFLICT]:
        raise DotenvConflicts(plan)
    try:
        return import_secrets(actor=actor, workspace=workspace, entries=plan.entries, ip_address=ip_address)
    except SecretAlreadyExists as error:
        # Someone added one of the keys after the plan was read; the transaction wrote nothing.
        raise DotenvConflicts(plan.with_conflicts(error.keys)) from None


def delete_secret(*, actor: Any, secret: Secret, ip_address: str | None = None) -> None:
    """Delete a secret and its ciphertext; the key can then be added again."""
    permissions.require_on_secret(actor, Action.DELETE_SECRET, secret)
    with transaction.atomic():
        _, deleted = Secret.objects.filter(pk=secret.pk).delete()
        if not deleted.get(Secret._meta.label):
            raise SecretNotFound()  # someone else deleted it a moment ago
        record_event(
            action=AuditEvent.Action.SECRET_DELETED,
            actor=actor,
            workspace=secret.workspace,
            secret=secret,
            ip_address=ip_address,
        )


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
        removed = 0
        if TAG_PATTERN.fullmatch(tag_name):  # a malformed name is on no secret (and may hold NUL)
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


# Tag grants


def _tag_grantee(*, username: str, group_name: str) -> Any:
    if bool(username) == bool(group_name):
        raise ValidationError({"grantee": ["Name exactly one grantee: a user or a group."]})
    if username:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise UserNotFound(f"No active user named {username!r}.")
        return user
    group = Group.objects.filter(name=group_name).first()
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
    grantee_field = {"user": grantee.get_username()} if username else {"group": grantee.name}
    with transaction.atomic():
        tag, _ = Tag.objects.get_or_create(workspace=workspace, name=tag_name)
        held = set(get_user_perms(grantee, tag) if username else get_group_perms(grantee, tag))
        new = [name for name in wanted if permissions.TAG_PERMISSION_NAMES[name] not in held]
        if not new:
            raise GrantExists(f"{next(iter(grantee_field.values()))} already holds that on tag {tag_name}.")
        for name in new:
            assign_perm(permissions.TAG_PERMISSION_NAMES[name], grantee, tag)
            record_event(
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
    grant = (
        model.objects.select_related("content_object", "permission", kind)
        .filter(
            pk=int(number),
            content_object__workspace=workspace,
            permission__codename__in=permissions.TAG_PERMISSION_NAMES.values(),
            **({"content_object__name": tag_name} if tag_name is not None else {}),
        )
        .first()
        if model is not None
        and number.isascii()
        and number.isdigit()
        and (tag_name is None or TAG_PATTERN.fullmatch(tag_name))
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
        record_event(
            action=AuditEvent.Action.TAG_REVOKED,
            actor=actor,
            workspace=workspace,
            ip_address=ip_address,
            detail={"tag": tag.name, **grantee_field, "permission": name},
        )


# Workflows and executions

WORKFLOW_DEFINITION_MAX_BYTES = 256 * 1024


def register_workflow(
    *, actor: Any, workspace: Workspace, name: str, definition: Any, ip_address: str | None = None
) -> Workflow:
    """Register a workflow in `workspace`, its home; remember which secret keys it references."""
    permissions.require(actor, Action.REGISTER_WORKFLOW, workspace)
    problems: dict[str, ValidationError] = {}
    try:
        validate_workflow_name(name)
    except ValidationError as error:
        problems["name"] = error
    if not isinstance(definition, dict):
        problems["definition"] = ValidationError("The definition must be a JSON object.")
    elif len(json.dumps(definition)) > WORKFLOW_DEFINITION_MAX_BYTES:
        problems["definition"] = ValidationError("The definition is larger than 256 KiB.")
    elif json_contains_nul(definition):
        problems["definition"] = ValidationError("The definition must not contain NUL characters (\\u0000).")
    if problems:
        raise ValidationError(problems)
    keys = placeholders_in(definition)
    try:
        with transaction.atomic():
            workflow = Workflow.objects.create(
                workspace=workspace, name=name, definition=definition, registered_by=actor
            )
            WorkflowSecretReference.objects.bulk_create(
                [WorkflowSecretReference(workflow=workflow, key=k) for k in keys]
            )
            record_event(
                action=AuditEvent.Action.WORKFLOW_REGISTERED,
                actor=actor,
                workspace=workspace,
                ip_address=ip_address,
                detail={"workflow": workflow.reference, "secrets": keys},
            )
    except IntegrityError:
        raise WorkflowAlreadyExists() from None
    return workflow


def delete_workflow(*, actor: Any, workflow: Workflow, ip_address: str | None = None) -> None:
    """Delete a workflow; its running executions end (their runner sessions are deleted)."""
    permissions.require(actor, Action.REGISTER_WORKFLOW, workflow.workspace)
    with transaction.atomic():
        _end_runner_sessions(workflow.executions.filter(status=Execution.Status.RUNNING))
        record_event(
            action=AuditEvent.Action.WORKFLOW_DELETED,
            actor=actor,
            workspace=workflow.workspace,
            ip_address=ip_address,
            detail={"workflow": workflow.reference},
        )
        workflow.delete()


def _session_store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore


def _end_runner_sessions(executions: Any, status: str = Execution.Status.REVOKED) -> None:
    """Delete the runner sessions of these executions from the session store (cache and
    database), so every app server refuses them at once, and mark the executions ended."""
    for key in executions.values_list("runner_session_key", flat=True):
        _session_store()(session_key=key).delete()
    executions.update(status=status, finished_at=timezone.now())


def launch_execution(
    *,
    actor: Any,
    workspace: Workspace,
    workflow: Workflow,
    lifetime_seconds: int | None = None,
    ip_address: str | None = None,
) -> tuple[Execution, str]:
    """Launch `workflow` in `workspace` (which may differ from its home). Returns the execution
    and its runner session key: a real Django session, bound to the execution and to `actor`,
    that ends when the execution finishes or after its lifetime."""
    permissions.require_launch(actor, workspace)
    maximum = settings.RUNNER_SESSION_MAX_AGE
    lifetime = maximum if lifetime_seconds is None else lifetime_seconds
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 60 <= lifetime <= maximum:
        raise ValidationError({"lifetime": [f"The lifetime is a whole number of seconds from 60 to {maximum}."]})
    execution = Execution(
        id=uuid.uuid4(),
        workflow=workflow,
        workflow_reference=workflow.reference,
        home_workspace=workflow.workspace,
        workspace=workspace,
        launched_by=actor,
        expires_at=timezone.now() + datetime.timedelta(seconds=lifetime),
    )
    session = _session_store()()
    session.update(
        {
            SESSION_KEY: str(actor.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: actor.get_session_auth_hash(),
            selectors.RUNNER_EXECUTION: str(execution.id),
            selectors.RUNNER_HOME_WORKSPACE: [workflow.workspace.pk, workflow.workspace.slug],
            selectors.RUNNER_WORKSPACE: workspace.pk,
            selectors.RUNNER_WORKFLOW: workflow.reference,
        }
    )
    session.set_expiry(lifetime)
    try:
        with transaction.atomic():
            session.create()
            execution.runner_session_key = session.session_key
            execution.save(force_insert=True)
            UserSession.objects.create(
                session_key=session.session_key,
                user=actor,
                kind=UserSession.Kind.RUNNER,
                execution=execution,
                ip_address=ip_address,
            )
            record_event(
                action=AuditEvent.Action.EXECUTION_LAUNCHED,
                actor=actor,
                workspace=workspace,
                execution_id=execution.id,
                ip_address=ip_address,
                detail={"workflow": workflow.reference, "expires_at": execution.expires_at.isoformat()},
            )
    except Exception:
        session.delete()
        raise
    return execution, session.session_key


def finish_execution(*, actor: Any, execution: Execution, ip_address: str | None = None) -> Execution:
    """End an execution and its runner session, at once, for every app server.

    Ended by its launcher (or its own runner) it is `finished`; ended by a workspace admin who
    did not launch it, `revoked`.
    """
    if not permissions.can_finish_execution(actor, execution):
        raise AccessDenied("Only the user who launched it, or a workspace admin, can finish this execution.")
    status = Execution.Status.FINISHED if execution.launched_by_id == actor.pk else Execution.Status.REVOKED
    with transaction.atomic():
        running = Execution.objects.select_for_update().filter(pk=execution.pk, status=Execution.Status.RUNNING)
        if not running.exists():
            raise ExecutionNotRunning()
        _end_runner_sessions(running, status=status)
        record_event(
            action=AuditEvent.Action.EXECUTION_FINISHED,
            actor=actor,
            workspace=execution.workspace,
            execution_id=execution.id,
            ip_address=ip_address,
            detail={"workflow": execution.workflow_reference, "status": status},
        )
    execution.refresh_from_db()
    return execution


# The audit log


def record_audit_export(
    *, actor: Any, workspace: Workspace, export_format: str, filters: dict[str, str], ip_address: str | None = None
) -> AuditEvent:
    """Audit that `actor` exported the workspace's audit log, in which format and with which filters."""
    permissions.require(actor, Action.VIEW_AUDIT, workspace)
    return record_event(
        action=AuditEvent.Action.AUDIT_EXPORTED,
        actor=actor,
        workspace=workspace,
        ip_address=ip_address,
        detail={"format": export_format, "filters": filters},
    )


# The runner read path


def _runner_event(
    context: selectors.RunnerContext,
    *,
    action: str,
    key: str,
    secret: Secret | None,
    ip_address: str | None,
    **detail: Any,
) -> AuditEvent:
    if not context.is_local:
        detail["workflow"] = context.workflow
    return audit_event(
        action=action,
        actor=context.user,
        workspace=context.lookup_workspace,
        secret=secret,
        secret_key=printable_key(key),
        execution_id=context.execution_id,
        ip_address=ip_address,
        detail={**detail, "local": context.is_local},
    )


@sensitive_variables()
def read_secrets_for_runner(
    *, context: selectors.RunnerContext, keys: list[str], ip_address: str | None = None, template: bool = False
) -> dict[str, str]:
    """The values of `keys` for a runner, all or nothing, under the runner rules. For a `template`,
    a refusal lists every refused key with its reason.

    Every read and every refusal is an audit event, written before any value is returned: if
    that write fails, this raises and no value leaves (Vault's rule).
    """
    found: dict[str, Secret] = {}
    in_grace: set[str] = set()
    if context.workspace_mismatch:
        refused = dict.fromkeys(keys, "workspace_mismatch")
    else:
        well_formed = [key for key in keys if SECRET_KEY_PATTERN.fullmatch(key)]
        found = {secret.key: secret for secret in selectors.secrets_for_runner(context, well_formed)}
        refused = {}
        for key in keys:
            secret = found.get(key)
            if secret is None:
                refused[key] = "secret_not_found"
            elif not context.is_local and not secret.execution_live:
                refused[key] = "execution_finished"
            elif not secret.usable:
                refused[key] = "permission_denied"
            elif secret.expires_at is not None:
                expiry = Expiry.of(secret.expires_at, grace_days=secret.grace_days, now=timezone.now())
                if not permissions.expiry_allows_use(expiry):
                    refused[key] = "secret_expired"
                elif expiry.state is ExpiryState.GRACE:
                    in_grace.add(key)
        if "permission_denied" in refused.values():
            # Off the hot path: someone who may not even see the secret is told it is not there.
            seen = selectors.keys_visible_to_runner(
                context, [k for k, r in refused.items() if r == "permission_denied"]
            )
            refused = {
                k: "secret_not_found" if r == "permission_denied" and k not in seen else r for k, r in refused.items()
            }
    values: dict[str, str] = {}
    if not refused:
        for key in keys:
            try:
                values[key] = found[key].reveal_value()
            except DecryptionFailed:
                refused[key] = "undecryptable"
    if refused:
        _record_refusals(context, refused, ip_address=ip_address)
        raise _refusal(refused, template=template)
    record_events(
        [
            _runner_event(
                context,
                action=AuditEvent.Action.SECRET_READ,
                key=key,
                secret=found[key],
                ip_address=ip_address,
                **({"expired_grace": True} if key in in_grace else {}),
            )
            for key in keys
        ]
    )
    return values


def _refusal(refused: dict[str, str], *, template: bool) -> Exception:
    """The error for a refused runner read: one key read alone gets its own error; a template's
    keys get one list."""
    reasons = set(refused.values())
    if reasons == {"workspace_mismatch"}:
        return WorkspaceMismatch()
    if reasons == {"execution_finished"}:
        return RunnerSessionEnded("execution_finished")
    if len(refused) == 1 and not template:
        ((key, reason),) = refused.items()
        if reason == "secret_not_found":
            return SecretNotFound(f"No secret {key} that this run may read.")
        if reason == "undecryptable":
            return DecryptionFailed()
        if reason == "secret_expired":
            return SecretExpired(
                f"Secret {key} has expired and its workspace's grace, if any, has run out: runners may no longer "
                "read it. Delete it and add it again with a new value."
            )
        return AccessDenied(f"The user who launched this run may not use secret {key}.")
    return SecretsRefused(refused)


def refuse_ended_runner_session(
    *, execution: Execution, keys: list[str], ip_address: str | None = None
) -> RunnerSessionEnded:
    """Audit a runner that came back with the session of a finished or expired execution (or of
    one whose launcher can no longer sign in)."""
    if execution.status != Execution.Status.RUNNING:
        reason = "execution_finished"
    elif execution.expires_at <= timezone.now():
        reason = "execution_expired"
    else:
        reason = "session_expired"
    context = selectors.RunnerContext(
        user=execution.launched_by,
        lookup_workspace=execution.home_workspace,
        execution_id=str(execution.id),
        run_workspace_id=execution.workspace_id,
        workflow=execution.workflow_reference,
    )
    _record_refusals(context, dict.fromkeys(keys, reason), ip_address=ip_address)
    return RunnerSessionEnded(reason)


def _record_refusals(context: selectors.RunnerContext, refused: dict[str, str], *, ip_address: str | None) -> None:
    """One `secret.read_denied` event per refused key, with its reason."""
    record_events(
        [
            _runner_event(
                context,
                action=AuditEvent.Action.SECRET_READ_DENIED,
                key=key,
                secret=None,
                reason=reason,
                ip_address=ip_address,
            )
            for key, reason in refused.items()
        ]
    )


# Encryption keys


@dataclass
class ResealedBatch:
    resealed: int = 0
    gone: int = 0
    unreadable: list[Secret] = field(default_factory=list)


def reseal_secrets(secrets: list[Secret]) -> ResealedBatch:
    """Seal these secrets' values again under the active key, in one transaction.

    A row deleted (or already resealed) since it was read counts as gone. A row that cannot be
    opened is left exactly as it is and reported: rotation never replaces what it cannot read.
    """
    outcome = ResealedBatch()
    with transaction.atomic():
        for secret in secrets:
            try:
                written = Secret.objects.reseal(secret)
            except DecryptionFailed:
                outcome.unreadable.append(secret)
                continue
            if written:
                outcome.resealed += 1
            else:
                outcome.gone += 1
    return outcome


def record_key_rotation(*, active_key_id: str, resealed: dict[str, int], unreadable: int) -> None:
    record_event(
        action=AuditEvent.Action.ENCRYPTION_KEY_ROTATED,
        detail={"to_key_id": active_key_id, "resealed_from": resealed, "unreadable": unreadable},
    )
