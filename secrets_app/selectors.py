"""Every read: querysets of what a user may see, built so a page costs a fixed number of queries."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

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
from django.utils import timezone

from . import permissions
from .errors import (
    ExecutionNotFound,
    PageNotFound,
    SecretNotFound,
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


def secrets_visible_to(user: Any, workspace: Workspace, *, tag: str = "", search: str = "") -> QuerySet[Secret]:
    """Metadata of the secrets `user` may see in `workspace`, sorted by key; values never loaded.

    Optionally only those carrying `tag`, or whose key contains `search`. Each row says
    whether the caller may delete it (`caller_can_delete`).
    """
    secrets = workspace.secrets.filter(permissions.visible_secrets_filter(user, workspace))
    if tag:
        on_tag = SecretTag.objects.filter(secret=OuterRef("pk"), tag__name=tag)
        secrets = secrets.filter(Exists(on_tag)) if TAG_PATTERN.fullmatch(tag) else secrets.none()
    if search:
        secrets = secrets.filter(key__icontains=search) if "\x00" not in search else secrets.none()
    reads = AuditEvent.objects.filter(secret_id=OuterRef("pk"), action=AuditEvent.Action.SECRET_READ).order_by("-id")
    return (
        secrets.annotate(
            caller_can_delete=permissions.secret_permission_annotation(user, Action.DELETE_SECRET, workspace),
            last_read_at=Subquery(reads.values("at")[:1]),
            last_read_by=Subquery(reads.values("detail__workflow")[:1]),
        )
        .defer("value")
        .select_related("created_by")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name")))
        .order_by("key")
    )


def secret_for(user: Any, workspace: Workspace, key: str) -> Secret:
    """One secret's metadata, or SecretNotFound whether it is missing or hidden from `user`."""
    # A malformed name names nothing; it is not sent to the database (it may hold NUL).
    secret = secrets_visible_to(user, workspace).filter(key=key).first() if SECRET_KEY_PATTERN.fullmatch(key) else None
    if secret is None:
        raise SecretNotFound()
    return secret


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
        columns = ["id", "workspace_id", "key", "value", "usable"]
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
        secret_id, workspace_id, key, sealed, usable, *live = row
        secret_id = secret_id if isinstance(secret_id, uuid.UUID) else uuid.UUID(secret_id)
        secret = Secret.from_db(
            connection.alias,
            ["id", "workspace_id", "key", "value"],
            [secret_id, workspace_id, key, SealedValue(sealed)],
        )
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


def _is_sentinel(param: Any, slots: dict[Any, str]) -> bool:
    return isinstance(param, (int, str, uuid.UUID, datetime.datetime)) and param in slots


_runner_read_query = _RunnerReadQuery()


def secrets_for_runner(context: RunnerContext, keys: list[str]) -> list[Secret]:
    """The secrets named `keys` where this runner may look, each saying whether the reader may use
    it (`usable`) and, for a runner session, whether its execution is still running
    (`execution_live`): one query."""
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
