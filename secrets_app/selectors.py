"""Every read: querysets of what a user may see, built so a page costs a fixed number of queries."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import DatabaseError, connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from . import crypto, permissions
from .errors import (
    ExecutionNotFound,
    PageNotFound,
    SecretNotFound,
    SessionNotFound,
    TagNotFound,
    WorkflowNotFound,
    WorkspaceNotFound,
)
from .fields import SealedValue
from .models import (
    AuditEvent,
    Execution,
    Membership,
    Role,
    Secret,
    SecretTag,
    Tag,
    TagGroupObjectPermission,
    TagUserObjectPermission,
    UserSession,
    Workflow,
    Workspace,
)
from .permissions import Action
from .validators import SECRET_KEY_PATTERN, TAG_PATTERN, WORKFLOW_NAME_PATTERN

PAGE_SIZE = 50


def workspaces_for(user: Any) -> QuerySet[Workspace]:
    """The workspaces `user` can see, personal first, each with the caller's role."""
    visible = Workspace.objects.filter(permissions.visible_workspaces_filter(user))
    return permissions.annotate_caller_role(visible, user).order_by("kind", "name")


def workspace_for(user: Any, slug: str) -> Workspace:
    """One workspace the user can see, or WorkspaceNotFound (whether or not it exists)."""
    workspace = workspaces_for(user).filter(slug=slug).first()
    if workspace is None:
        raise WorkspaceNotFound()
    return workspace


def personal_workspace_of(user: Any) -> Workspace:
    return workspace_for(user, Workspace.objects.only("slug").get(personal_owner=user).slug)


# The Secrets list counts each secret's reads over this many days.
RECENT_READS_DAYS = 30


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
    """`secrets`, each with `same_value_as`: the keys of the other secrets of the workspace that
    `user` may see and that hold the same value (by fingerprint). One query for any number."""
    secrets = list(secrets)
    fingerprints = {secret.fingerprint for secret in secrets if secret.fingerprint}
    holders: dict[str, list[tuple[str, Any]]] = {}
    if fingerprints:
        rows = (
            workspace.secrets.filter(permissions.visible_secrets_filter(user, workspace), fingerprint__in=fingerprints)
            .order_by("key")
            .values_list("fingerprint", "key", "pk")
        )
        for fingerprint, key, pk in rows:
            holders.setdefault(fingerprint, []).append((key, pk))
    for secret in secrets:
        secret.same_value_as = [key for key, pk in holders.get(secret.fingerprint, []) if pk != secret.pk]
    return secrets


def keys_holding_fingerprint(workspace: Workspace, fingerprint: str) -> list[str]:
    return list(workspace.secrets.filter(fingerprint=fingerprint).order_by("key").values_list("key", flat=True))


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


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("user__username")


def paginate(queryset: QuerySet, raw_page: str | None, per_page: int = PAGE_SIZE) -> Page:
    """One page of `queryset` (pages count from 1), or PageNotFound."""
    paginator = Paginator(queryset, per_page)
    raw_page = raw_page or "1"
    if not (raw_page.isascii() and raw_page.isdigit()) or not 1 <= int(raw_page) <= paginator.num_pages:
        raise PageNotFound(f"There is no page {raw_page!r}; pages run from 1 to {paginator.num_pages}.")
    return paginator.page(int(raw_page))


# Tags and grants


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


# Workflows and executions


def workflows_in(workspace: Workspace) -> QuerySet[Workflow]:
    return (
        workspace.workflows.select_related("registered_by")
        .prefetch_related("secret_references")
        .annotate(running=Count("executions", filter=Q(executions__status=Execution.Status.RUNNING)))
        .order_by("name")
    )


def workflow_for(user: Any, reference: str) -> Workflow:
    """A workflow by `<home-slug>/<name>`, if `user` can see its home workspace."""
    home_slug, _, name = reference.partition("/")
    try:
        home = workspace_for(user, home_slug)
    except WorkspaceNotFound:
        raise WorkflowNotFound(f"No workflow {reference!r} that you can see.") from None
    workflow = home.workflows.filter(name=name).first() if WORKFLOW_NAME_PATTERN.fullmatch(name) else None
    if workflow is None:
        raise WorkflowNotFound(f"No workflow {reference!r} that you can see.")
    workflow.workspace = home
    return workflow


def workflows_using_key(workspace: Workspace, key: str) -> QuerySet[Workflow]:
    """Registered workflows of `workspace` whose definitions reference secret `key`."""
    return workspace.workflows.filter(secret_references__key=key).order_by("name")


def executions_in(workspace: Workspace) -> QuerySet[Execution]:
    return workspace.executions.select_related("launched_by").order_by("-started_at")


def execution_for(user: Any, execution_id: str) -> Execution:
    """An execution `user` can see (one in a workspace they see), or ExecutionNotFound."""
    try:
        execution = Execution.objects.select_related("workspace", "launched_by").get(pk=execution_id)
    except (Execution.DoesNotExist, ValidationError, ValueError, TypeError):
        raise ExecutionNotFound() from None
    if not Workspace.objects.filter(permissions.visible_workspaces_filter(user), pk=execution.workspace_id).exists():
        raise ExecutionNotFound()
    return execution


def execution_by_runner_session(session_key: str) -> Execution | None:
    """The execution a (possibly ended) runner session belonged to."""
    if not session_key:
        return None
    executions = Execution.objects.select_related("home_workspace", "launched_by")
    return executions.filter(runner_session_key=session_key).first()


# The audit log

AUDIT_LIST_FIELDS = (
    "id",
    "at",
    "action",
    "actor_username",
    "workspace_slug",
    "secret_key",
    "secret_id",
    "execution_id",
    "ip_address",
    "detail",
)


def audit_events_in(
    workspace: Workspace,
    *,
    key: str = "",
    username: str = "",
    action: str = "",
    first_day: datetime.date | None = None,
    last_day: datetime.date | None = None,
) -> QuerySet[AuditEvent]:
    """The workspace's audit events, newest first: optionally those whose key contains `key`
    (any case), made by `username`, of one `action`, or on days from `first_day` to `last_day`
    (both included, in the site's time zone).

    Ordered and bounded in time along the (workspace, -at) index; only the columns shown are
    loaded, and no related row, so a page is a fixed number of queries whatever the log's size.
    """
    events = AuditEvent.objects.filter(workspace_id=workspace.pk)
    if key:
        events = events.filter(secret_key__icontains=key)
    if username:
        events = events.filter(actor_username=username)
    if action:
        events = events.filter(action=action)
    if first_day is not None:
        events = events.filter(at__gte=_start_of(first_day))
    if last_day is not None and last_day < datetime.date.max:
        events = events.filter(at__lt=_start_of(last_day + datetime.timedelta(days=1)))
    return events.only(*AUDIT_LIST_FIELDS).order_by("-at", "-id")


def _start_of(day: datetime.date) -> datetime.datetime:
    """Midnight starting `day` in the current (by default the site's) time zone."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


# Sessions


def _store_sessions_alive() -> QuerySet[Session]:
    """The store's unexpired session under a UserSession row's key (for Exists or Subquery)."""
    return Session.objects.filter(session_key=OuterRef("session_key"), expire_date__gt=timezone.now())


def session_gone() -> Q:
    """Filter on UserSession: rows whose session is no longer in the store, or has expired."""
    return ~Q(Exists(_store_sessions_alive()))


def _session_rows(user: Any, current_session_key: str | None) -> QuerySet[UserSession]:
    """The user's registered sessions whose session is still in the store and unexpired, newest
    first, each with its expiry, its stored data (to check it still signs in) and `is_current`."""
    live = _store_sessions_alive()
    return (
        UserSession.objects.filter(permissions.own_sessions_filter(user))
        .annotate(
            expires_at=Subquery(live.values("expire_date")[:1]),
            session_data=Subquery(live.values("session_data")[:1]),
            is_current=ExpressionWrapper(Q(session_key=current_session_key or ""), BooleanField()),
        )
        .filter(expires_at__isnull=False)
        .select_related("execution__workspace")
        .order_by("-created_at")
    )


def _signs_in(row: UserSession, user: Any) -> bool:
    """Would this session still sign `user` in? Not once their password has changed by a path that
    did not end it (the admin site, `manage.py changepassword`): Django refuses it on its next use,
    so it is not listed as alive until then."""
    data = import_module(settings.SESSION_ENGINE).SessionStore().decode(row.session_data)
    stored_hash = data.get(HASH_SESSION_KEY) or ""
    if data.get(SESSION_KEY) != str(user.pk) or not stored_hash:
        return False
    valid = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored_hash, auth_hash) for auth_hash in valid)


def _alive(rows: QuerySet[UserSession], user: Any) -> list[UserSession]:
    alive = []
    for row in rows:
        if _signs_in(row, user):
            row.session_data = None
            alive.append(row)
    return alive


def sessions_of(user: Any, *, current_session_key: str | None) -> list[UserSession]:
    """The user's live sessions (browser, API, runner), newest first, the current one marked: one
    query, whatever their number."""
    return _alive(_session_rows(user, current_session_key), user)


def session_for(user: Any, session_id: str, *, current_session_key: str | None) -> UserSession:
    """One live session of the user's, or SessionNotFound (also for another user's session)."""
    try:
        rows = _session_rows(user, current_session_key).filter(pk=uuid.UUID(str(session_id)))
    except ValueError:
        raise SessionNotFound() from None
    found = _alive(rows, user)
    if not found:
        raise SessionNotFound()
    return found[0]


# The runner read path

RUNNER_EXECUTION = "runner_execution"
RUNNER_HOME_WORKSPACE = "runner_home_workspace"
RUNNER_WORKSPACE = "runner_workspace"
RUNNER_WORKFLOW = "runner_workflow"


@dataclass(frozen=True)
class RunnerContext:
    """Who is reading and where they may look: a runner session's execution, or a local run."""

    user: Any
    lookup_workspace: Workspace | None
    execution_id: str | None = None
    run_workspace_id: int | None = None
    workflow: str = ""

    @property
    def is_local(self) -> bool:
        return self.execution_id is None

    @property
    def workspace_mismatch(self) -> bool:
        return (
            not self.is_local
            and self.lookup_workspace is not None
            and self.run_workspace_id != self.lookup_workspace.pk
        )


def runner_context(session: Any, user: Any) -> RunnerContext:
    """From a runner session, the workflow's home workspace; from an ordinary session, the
    user's personal workspace only."""
    if RUNNER_EXECUTION in session:
        home_id, home_slug = session[RUNNER_HOME_WORKSPACE]
        return RunnerContext(
            user=user,
            lookup_workspace=Workspace(pk=home_id, slug=home_slug),
            execution_id=session[RUNNER_EXECUTION],
            run_workspace_id=session[RUNNER_WORKSPACE],
            workflow=session[RUNNER_WORKFLOW],
        )
    personal = Workspace.objects.only("id", "slug").filter(personal_owner_id=user.pk).first()
    return RunnerContext(user=user, lookup_workspace=personal)


class _RunnerReadQuery:
    """The runner read's one query, compiled to SQL once per shape, then run with each read's values.

    Building it through the ORM (the secret, "may the launcher use it" as role OR tag grant, and
    "is the execution still running", as nested EXISTS) costs about 2 ms of Python per request,
    ten times what the database spends on it, on the one path that must be fast. The SQL depends
    only on whether this is a runner session and on how many keys are read; so it is built once
    per shape, through the same `permissions.secret_row_permission` the rest of the console uses,
    with sentinel values where each read's values go, and later reads only swap in their values.
    """

    USER, WORKSPACE = -702_001, -702_002
    EXECUTION = uuid.UUID(int=702_003)
    NOW = datetime.datetime(2001, 7, 2, 0, 3, tzinfo=datetime.UTC)
    KEY_PREFIX = "\x00sentinel-key-"

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, bool, int], tuple[str, list[tuple[str, Any]]]] = {}

    def build(self, *, user_id: Any, workspace_id: Any, keys: list[str], execution_id: Any, now: Any) -> QuerySet:
        reader = _SignedInReader(pk=user_id)
        usable = permissions.secret_row_permission(reader, Action.USE_SECRET)
        secrets = Secret.objects.filter(workspace_id=workspace_id, key__in=keys).annotate(
            usable=ExpressionWrapper(usable, BooleanField())
        )
        # The expiry, and the grace its workspace gives, come in the same row: a join on the
        # workspace's primary key, not another query.
        columns = ["id", "workspace_id", "key", "value", "expires_at", "workspace__expired_secret_grace_days", "usable"]
        if execution_id is not None:
            live = Execution.objects.filter(pk=execution_id, status=Execution.Status.RUNNING, expires_at__gt=now)
            secrets = secrets.annotate(execution_live=Exists(live))
            columns.append("execution_live")
        return secrets.values_list(*columns).order_by()

    def _compile(self, is_local: bool, key_count: int) -> tuple[str, list[tuple[str, Any]]]:
        """The SQL, and for each parameter either ("value", constant) or ("slot", name)."""
        keys = [f"{self.KEY_PREFIX}{number}" for number in range(key_count)]
        queryset = self.build(
            user_id=self.USER,
            workspace_id=self.WORKSPACE,
            keys=keys,
            execution_id=None if is_local else self.EXECUTION,
            now=self.NOW,
        )
        sql, params = queryset.query.get_compiler(queryset.db).as_sql()
        slots = {self.USER: "user_id", self.WORKSPACE: "workspace_id"}
        slots |= {key: f"key:{number}" for number, key in enumerate(keys)}
        slots |= {_db_uuid(self.EXECUTION): "execution_id", _db_datetime(self.NOW): "now"}
        layout = [("slot", slots[param]) if _is_sentinel(param, slots) else ("value", param) for param in params]
        placed = {name for kind, name in layout if kind == "slot"}
        expected = set(slots.values()) - ({"execution_id", "now"} if is_local else set())
        if placed != expected:
            raise RuntimeError(f"The runner read query places {sorted(placed)}, not {sorted(expected)}.")
        return sql, layout

    def run(self, context: RunnerContext, keys: list[str]) -> list[Secret]:
        shape = (connection.vendor, context.is_local, len(keys))
        if shape not in self._compiled:
            self._compiled[shape] = self._compile(context.is_local, len(keys))
        sql, layout = self._compiled[shape]
        values = {"user_id": context.user.pk, "workspace_id": context.lookup_workspace.pk}
        values |= {f"key:{number}": key for number, key in enumerate(keys)}
        if not context.is_local:
            values |= {"execution_id": _db_uuid(uuid.UUID(context.execution_id)), "now": _db_datetime(timezone.now())}
        params = [values[item] if kind == "slot" else item for kind, item in layout]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [self._secret(row, context.is_local) for row in cursor.fetchall()]

    @staticmethod
    def _secret(row: tuple[Any, ...], is_local: bool) -> Secret:
        secret_id, workspace_id, key, sealed, expires_at, grace_days, usable, *live = row
        secret_id = secret_id if isinstance(secret_id, uuid.UUID) else uuid.UUID(secret_id)
        secret = Secret.from_db(
            connection.alias,
            ["id", "workspace_id", "key", "value", "expires_at"],
            [secret_id, workspace_id, key, SealedValue(sealed), _aware_datetime(expires_at)],
        )
        secret.grace_days = grace_days
        secret.usable = bool(usable)
        secret.execution_live = is_local or bool(live[0])
        return secret


@dataclass(frozen=True)
class _SignedInReader:
    """Stands for the signed-in user whose id the runner read query is built with."""

    pk: Any
    is_authenticated: bool = True
    is_active: bool = True


def _db_uuid(value: uuid.UUID) -> Any:
    return Execution._meta.pk.get_db_prep_value(value, connection)


def _db_datetime(value: datetime.datetime) -> Any:
    return Execution._meta.get_field("expires_at").get_db_prep_value(value, connection)


def _aware_datetime(value: Any) -> datetime.datetime | None:
    """A datetime column as a raw cursor gives it (SQLite: naive, or text), made aware as the ORM
    would make it."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return timezone.make_aware(value, connection.timezone) if timezone.is_naive(value) else value


def _is_sentinel(param: Any, slots: dict[Any, str]) -> bool:
    return isinstance(param, (int, str, uuid.UUID, datetime.datetime)) and param in slots


_runner_read_query = _RunnerReadQuery()


def secrets_for_runner(context: RunnerContext, keys: list[str]) -> list[Secret]:
    """The secrets named `keys` where this runner may look, each saying whether the reader may use
    it (`usable`), the grace its workspace gives once it expires (`grace_days`) and, for a runner
    session, whether its execution is still running (`execution_live`): one query."""
    if context.lookup_workspace is None or not keys:
        return []
    return _runner_read_query.run(context, keys)


def keys_visible_to_runner(context: RunnerContext, keys: list[str]) -> set[str]:
    """Which of these keys the reader may see (to tell "not allowed" from "not found")."""
    visible = permissions.secret_row_permission(context.user, Action.VIEW_SECRETS)
    return set(
        Secret.objects.filter(visible, workspace_id=context.lookup_workspace.pk, key__in=keys).values_list(
            "key", flat=True
        )
    )


# Encryption keys


def sealed_value_counts() -> dict[str, int]:
    """How many stored values each encryption key id has sealed, across every workspace."""
    rows = Secret.objects.order_by().values_list("key_id").annotate(rows=Count("id"))
    return dict(sorted(rows))


def secrets_sealed_under(key_id: str, *, after: uuid.UUID | None, limit: int) -> list[Secret]:
    """The next `limit` secrets sealed under `key_id`, in id order, after the id `after`."""
    rows = Secret.objects.filter(key_id=key_id).only("id", "workspace_id", "key", "value", "key_id").order_by("id")
    if after is not None:
        rows = rows.filter(id__gt=after)
    return list(rows[:limit])


# Audit chain


@dataclass(frozen=True)
class AuditChainProblem:
    event_id: int
    description: str


@dataclass
class AuditChainReport:
    events: int = 0
    chains: int = 0
    problems: list[AuditChainProblem] = field(default_factory=list)


def audit_chain_report() -> AuditChainReport:
    """Walk every chain of the audit log, recomputing each link's MAC.

    An event whose content (or MAC) was changed fails its own check; an event deleted from the
    middle or the start of a chain leaves a gap in its positions; renumbering to hide a gap
    breaks the MAC of the event after it. Problems come in event id order.
    """
    report = AuditChainReport()
    chain_id, expected_seq, previous_mac = None, 1, ""
    for event in AuditEvent.objects.order_by("chain_id", "chain_seq").iterator(chunk_size=5000):
        report.events += 1
        if event.chain_id != chain_id:
            chain_id, expected_seq, previous_mac = event.chain_id, 1, ""
            report.chains += 1
        when = f"{event.at:%Y-%m-%d %H:%M:%S}"
        where = f"event {event.id} ({event.action} at {when}, chain {event.chain_id} #{event.chain_seq})"
        if event.chain_seq != expected_seq:
            missing = (
                f"#{expected_seq}" if event.chain_seq == expected_seq + 1 else f"#{expected_seq}-#{event.chain_seq - 1}"
            )
            report.problems.append(
                AuditChainProblem(event.id, f"missing: {missing} of chain {event.chain_id}, before {where}")
            )
        elif not crypto.macs_equal(crypto.audit_mac(previous_mac, event.chained_content()), event.mac):
            report.problems.append(AuditChainProblem(event.id, f"altered: {where} does not match its MAC"))
        expected_seq, previous_mac = event.chain_seq + 1, event.mac
    report.problems.sort(key=lambda problem: problem.event_id)
    return report


# Health


def dependency_checks() -> dict[str, str]:
    """Can this process reach its database and its cache right now? "ok", or why not."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError as error:
        checks["database"] = f"unreachable ({type(error).__name__})"
    probe = f"readyz-probe-{uuid.uuid4().hex}"
    try:
        cache.set(probe, "stored", timeout=10)
        checks["cache"] = "ok" if cache.get(probe) == "stored" else "not storing values"
        cache.delete(probe)
    except Exception as error:
        checks["cache"] = f"unreachable ({type(error).__name__})"
    return checks
