"""Secrets a user may see (metadata only, never values), with their last use and the keys holding
the same value; secrets about to expire."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Prefetch, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from secrets_app import permissions
from secrets_app.errors import SecretNotFound
from secrets_app.models import AuditEvent, Membership, Role, Secret, SecretTag, Tag, Workspace
from secrets_app.permissions import Action
from secrets_app.validators import SECRET_KEY_PATTERN, TAG_PATTERN

# The Secrets list counts each secret's reads over this many days.
RECENT_READS_DAYS = 30
# Keys named as holding the same value as a secret, and as holding a looked-up value: the rest are
# counted, not listed, so that a page or an answer stays small however many secrets share a value.
SAME_VALUE_LISTED = 10
VALUE_LOOKUP_LISTED = 100


def secrets_visible_to(
    user: Any, workspace: Workspace, *, tag: str = "", search: str = "", unread_days: int | None = None
) -> QuerySet[Secret]:
    """Metadata of the secrets `user` may see in `workspace`, sorted by key; values never loaded.

    Optionally only those carrying `tag`, whose key contains `search`, or that no runner has read in
    the last `unread_days` days (never read included). Each row says whether the caller may delete
    it (`caller_can_delete`) and how it was last used: when, by which workflow and execution, for
    whom (`last_read_*`), and how many reads in the last RECENT_READS_DAYS days. All from the audit
    log's (secret, action, time) index, as subqueries: the runner read writes nothing more for it.
    """
    now = timezone.now()
    secrets = workspace.secrets.filter(permissions.visible_secrets_filter(user, workspace))
    if tag:
        on_tag = SecretTag.objects.filter(secret=OuterRef("pk"), tag__name=tag)
        secrets = secrets.filter(Exists(on_tag)) if TAG_PATTERN.fullmatch(tag) else secrets.none()
    if search:
        secrets = secrets.filter(key__icontains=search) if "\x00" not in search else secrets.none()
    reads = AuditEvent.objects.filter(secret_id=OuterRef("pk"), action=AuditEvent.Action.SECRET_READ)
    if unread_days is not None:
        secrets = secrets.filter(~Exists(reads.filter(at__gte=now - datetime.timedelta(days=unread_days))))
    last_read = reads.order_by("-at")
    recent_reads = (
        reads.filter(at__gte=now - datetime.timedelta(days=RECENT_READS_DAYS))
        .order_by()
        .values("secret_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return (
        secrets.annotate(
            caller_can_delete=permissions.secret_permission_annotation(user, Action.DELETE_SECRET, workspace),
            last_read_at=Subquery(last_read.values("at")[:1]),
            last_read_workflow=Subquery(last_read.values("detail__workflow")[:1]),
            last_read_execution=Subquery(last_read.values("execution_id")[:1]),
            last_read_reader=Subquery(last_read.values("actor_username")[:1]),
            recent_reads=Coalesce(Subquery(recent_reads), 0),
        )
        .defer("value")
        .select_related("created_by")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name")))
        .order_by("key")
    )


def with_same_value_keys(user: Any, workspace: Workspace, secrets: Any) -> list[Secret]:
    """`secrets`, each with `same_value_as`: the first SAME_VALUE_LISTED keys (by key) of the other
    secrets of the workspace that `user` may see and that hold the same value (by fingerprint);
    `same_value_count`, how many there are in all; and `same_value_unlisted`, how many of them are
    not listed. One query, of at most SAME_VALUE_LISTED + 1 rows per secret, however many secrets
    share a value. Empty for whoever may not look values up (`Action.FIND_SECRETS_BY_VALUE`)."""
    secrets = list(secrets)
    # Only for those who may look a value up: for anyone who may add secrets, a probe secret's
    # flags would answer "is this value stored here?" without the lookup's role or its rate limit.
    may_compare = permissions.can(user, Action.FIND_SECRETS_BY_VALUE, workspace)
    fingerprints = {secret.fingerprint for secret in secrets if secret.fingerprint} if may_compare else set()
    holders: dict[str, list[tuple[str, Any]]] = {}
    totals: dict[str, int] = {}
    if fingerprints:
        visible = workspace.secrets.filter(
            permissions.visible_secrets_filter(user, workspace), fingerprint__in=fingerprints
        )
        for fingerprint, key, pk, total in _first_by_fingerprint(visible, SAME_VALUE_LISTED + 1):
            holders.setdefault(fingerprint, []).append((key, pk))
            totals[fingerprint] = total
    for secret in secrets:
        others = [key for key, pk in holders.get(secret.fingerprint, []) if pk != secret.pk]
        secret.same_value_as = others[:SAME_VALUE_LISTED]
        # The secret itself is among the holders counted (whoever sees it here may see it).
        secret.same_value_count = totals.get(secret.fingerprint, 1) - 1
        secret.same_value_unlisted = secret.same_value_count - len(secret.same_value_as)
    return secrets


def _first_by_fingerprint(secrets: QuerySet[Secret], limit: int) -> Any:
    """(fingerprint, key, pk, how many hold it) for the first `limit` secrets by key of each fingerprint."""
    by_fingerprint = {"partition_by": [F("fingerprint")]}
    return (
        secrets.annotate(
            position=Window(RowNumber(), order_by=F("key").asc(), **by_fingerprint),
            holders=Window(Count("pk"), **by_fingerprint),
        )
        .filter(position__lte=limit)
        .order_by("fingerprint", "key")
        .values_list("fingerprint", "key", "pk", "holders")
    )


def keys_holding_fingerprint(workspace: Workspace, fingerprint: str) -> tuple[list[str], int]:
    """The first VALUE_LOOKUP_LISTED keys (by key) of the workspace's secrets with this
    fingerprint, and how many there are in all."""
    holders = workspace.secrets.filter(fingerprint=fingerprint)
    return list(holders.order_by("key").values_list("key", flat=True)[:VALUE_LOOKUP_LISTED]), holders.count()


def secrets_expiring(*, within_days: int, now: datetime.datetime, workspace_slug: str = "") -> QuerySet[Secret]:
    """Secrets, in every workspace (or the one named), that expire within `within_days` days of
    `now` or already have: metadata only, with their workspace and its owners (`owner_memberships`),
    by workspace slug, expiry and key."""
    secrets = Secret.objects.filter(expires_at__lte=now + datetime.timedelta(days=within_days))
    if workspace_slug:
        secrets = secrets.filter(workspace__slug=workspace_slug)
    owners = Membership.objects.filter(role=Role.OWNER).select_related("user").order_by("user__username")
    return (
        secrets.defer("value")
        .select_related("workspace")
        .prefetch_related(Prefetch("workspace__memberships", queryset=owners, to_attr="owner_memberships"))
        .order_by("workspace__slug", "expires_at", "key")
    )


def secret_for(user: Any, workspace: Workspace, key: str) -> Secret:
    """One secret's metadata, or SecretNotFound whether it is missing or hidden from `user`."""
    # A malformed name names nothing; it is not sent to the database (it may hold NUL).
    secret = secrets_visible_to(user, workspace).filter(key=key).first() if SECRET_KEY_PATTERN.fullmatch(key) else None
    if secret is None:
        raise SecretNotFound()
    return secret


def secret_keys_taken(workspace: Workspace, keys: list[str]) -> set[str]:
    """Which of `keys` exist in `workspace`, whoever may see them: adding one would be a conflict,
    which creating a secret already reports (409) whether or not the caller can see it."""
    return set(workspace.secrets.filter(key__in=keys).values_list("key", flat=True))
