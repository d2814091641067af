"""Secrets: add (one or many), delete, tag and untag, and "which keys hold this value?".

Secrets are immutable: there is no update. Values are sealed as their rows are written and never
returned by anything here.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django_ratelimit.core import get_usage

from secrets_app import crypto, permissions
from secrets_app.errors import SecretAlreadyExists, SecretNotFound, TagNotFound, TooManyLookups
from secrets_app.models import AuditEvent, Secret, SecretTag, Tag, Workspace
from secrets_app.permissions import Action
from secrets_app.selectors.grants import tag_names_with_grants
from secrets_app.selectors.secrets import keys_holding_fingerprint
from secrets_app.services import audit
from secrets_app.validators import (
    TAG_PATTERN,
    printable_key,
    validate_secret_expiry,
    validate_secret_key,
    validate_secret_value,
    validate_tag_count,
    validate_tag_name,
)


def clean_tag_names(tag_names: Iterable[str]) -> list[str]:
    """Distinct, valid tag names in the order given, or a ValidationError listing each bad one."""
    names = list(dict.fromkeys(name.strip() for name in tag_names if name and name.strip()))
    validate_tag_count(len(names))
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
    permissions.require_tagging(actor, secret.workspace, tag_names_with_grants(secret.workspace, names))
    attached = []
    tags = _tags_named(secret.workspace, names)
    for name in names:
        _, created = SecretTag.objects.get_or_create(secret=secret, tag=tags[name], defaults={"added_by": actor})
        if created:
            attached.append(name)
    return attached


def validate_new_secret(
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
        tag_names = clean_tag_names(tags)
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
        audit.record_events(
            [
                audit.audit_event(
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


def require_tagging_rights(actor: Any, workspace: Workspace, tag_names: list[str]) -> None:
    """May `actor` put these tags on new secrets (tagging, and sharing through tags with grants)?"""
    if tag_names:
        permissions.require(actor, Action.TAG_SECRET, workspace)
        permissions.require_tagging(actor, workspace, tag_names_with_grants(workspace, tag_names))


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
    require_tagging_rights(actor, workspace, tag_names)
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
    tag_names = validate_new_secret(key, value, tags, expires_at)
    return _insert_secrets(
        actor=actor,
        workspace=workspace,
        entries=[(key, value, tag_names)],
        ip_address=ip_address,
        expires_at=expires_at,
    )[0]


def _count_value_lookup(*, actor: Any, workspace: Workspace, ip_address: str | None) -> None:
    """Count one lookup of `actor`'s in `workspace`, in the shared cache (every app server counts
    together); past VALUE_LOOKUP_RATE, audit the refusal and raise TooManyLookups."""
    usage = get_usage(
        None,
        group="secrets.value_lookup",
        key=lambda group, request: f"{actor.pk}:{workspace.pk}",
        rate=settings.VALUE_LOOKUP_RATE,
        increment=True,
    )
    if usage is None or not usage["should_limit"]:
        return
    audit.record_event(
        action=AuditEvent.Action.VALUE_LOOKUP_REFUSED,
        actor=actor,
        workspace=workspace,
        ip_address=ip_address,
        detail={"reason": "too_many_lookups", "rate": settings.VALUE_LOOKUP_RATE},
    )
    raise TooManyLookups(
        f"Too many value searches in this workspace (at most {settings.VALUE_LOOKUP_RATE}, per user): each one "
        "answers a guess, so they are limited. Try again later.",
        retry_after_seconds=usage["time_left"],
    )


@sensitive_variables()
def find_secrets_by_value(
    *, actor: Any, workspace: Workspace, value: str, ip_address: str | None = None
) -> tuple[list[str], int]:
    """The keys of the workspace's secrets that hold `value` ("is this stored anywhere here?"):
    the first VALUE_LOOKUP_LISTED by key, and how many there are in all.

    For the workspace's owners and admins only, compared by fingerprint within this workspace
    only, rate-limited (TooManyLookups), and audited with the keys found (never the value), since
    it answers guesses.
    """
    permissions.require(actor, Action.FIND_SECRETS_BY_VALUE, workspace)
    validate_secret_value(value)
    _count_value_lookup(actor=actor, workspace=workspace, ip_address=ip_address)
    keys, count = keys_holding_fingerprint(workspace, crypto.value_fingerprint(value, workspace_id=workspace.pk))
    audit.record_event(
        action=AuditEvent.Action.VALUE_LOOKED_UP,
        actor=actor,
        workspace=workspace,
        ip_address=ip_address,
        detail={"matches": keys, "match_count": count},
    )
    return keys, count


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
            tag_names = validate_new_secret(key, value, tags)
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


def delete_secret(*, actor: Any, secret: Secret, ip_address: str | None = None) -> None:
    """Delete a secret and its ciphertext; the key can then be added again."""
    permissions.require_on_secret(actor, Action.DELETE_SECRET, secret)
    with transaction.atomic():
        _, deleted = Secret.objects.filter(pk=secret.pk).delete()
        if not deleted.get(Secret._meta.label):
            raise SecretNotFound()  # someone else deleted it a moment ago
        audit.record_event(
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
        names = clean_tag_names(tag_names)
    except ValidationError as error:
        raise ValidationError({"tags": error}) from None
    if not names:
        raise ValidationError({"tags": ["Give at least one tag."]})
    with transaction.atomic():
        # Locked, so that two requests adding tags at once cannot pass the limit together.
        carried = set(Secret.objects.select_for_update().get(pk=secret.pk).tags.values_list("name", flat=True))
        try:
            validate_tag_count(len(carried | set(names)))
        except ValidationError as error:
            raise ValidationError({"tags": error}) from None
        attached = _attach_tags(actor=actor, secret=secret, names=names)
        for name in attached:
            audit.record_event(
                action=AuditEvent.Action.SECRET_TAGGED,
                actor=actor,
                workspace=secret.workspace,
                secret=secret,
                ip_address=ip_address,
                detail={"tag": name},
            )
    return attached


def untag_secret(*, actor: Any, secret: Secret, tag_name: str, ip_address: str | None = None) -> None:
    """Remove one tag from a secret; the access the tag gave to it ends at once. A protected tag
    (approvals) comes off only by whoever may protect tags: else a member could lift the second
    person's check by untagging."""
    permissions.require_on_secret(actor, Action.TAG_SECRET, secret)
    if TAG_PATTERN.fullmatch(tag_name) and secret.tags.filter(name=tag_name, protected=True).exists():
        permissions.require(actor, Action.MANAGE_GRANTS, secret.workspace)
    with transaction.atomic():
        removed = 0
        if TAG_PATTERN.fullmatch(tag_name):  # a malformed name is on no secret (and may hold NUL)
            removed, _ = SecretTag.objects.filter(secret=secret, tag__name=tag_name).delete()
        if not removed:
            raise TagNotFound(f"{secret.key} has no tag '{printable_key(tag_name)}'.")
        audit.record_event(
            action=AuditEvent.Action.SECRET_UNTAGGED,
            actor=actor,
            workspace=secret.workspace,
            secret=secret,
            ip_address=ip_address,
            detail={"tag": tag_name},
        )
