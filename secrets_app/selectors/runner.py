"""The runner read's lookups: who is reading and where they may look (`RunnerContext`), and the
one query that finds the secrets and decides permission, expiry and execution state at once."""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, QuerySet, Subquery
from django.db.models.functions import Length
from django.utils import timezone

from secrets_app import permissions
from secrets_app.fields import SealedValue
from secrets_app.models import Execution, ExecutionApproval, Secret, SecretTag, WorkflowSecretReference, Workspace
from secrets_app.permissions import Action

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
    only on whether this is a runner session, on whether values are fetched (a template's read
    fetches their stored sizes first) and on the number of keys, rounded up to a power of two (the
    list is padded by repeating its last key): so it is built once per shape, through the same
    `permissions.secret_row_permission` the rest of the console uses, with sentinel values where
    each read's values go, and later reads only swap in their values. There are at most
    2 x 2 x 11 shapes (up to MAX_KEYS keys) per database vendor, whatever the requests.
    """

    MAX_KEYS = 1024

    USER, WORKSPACE = -702_001, -702_002
    EXECUTION = uuid.UUID(int=702_003)
    NOW = datetime.datetime(2001, 7, 2, 0, 3, tzinfo=datetime.UTC)
    KEY_PREFIX = "\x00sentinel-key-"

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, bool, int, bool], tuple[str, list[tuple[str, Any]]]] = {}

    def build(
        self, *, user_id: Any, workspace_id: Any, keys: list[str], execution_id: Any, now: Any, with_values: bool = True
    ) -> QuerySet:
        reader = _SignedInReader(pk=user_id)
        usable = permissions.secret_row_permission(reader, Action.USE_SECRET)
        secrets = Secret.objects.filter(workspace_id=workspace_id, key__in=keys).annotate(
            usable=ExpressionWrapper(usable, BooleanField())
        )
        # The expiry, and the grace its workspace gives, come in the same row: a join on the
        # workspace's primary key, not another query.
        if not with_values:
            secrets = secrets.annotate(stored_size=Length("value"))
        stored = "value" if with_values else "stored_size"
        columns = ["id", "workspace_id", "key", stored, "expires_at", "workspace__expired_secret_grace_days", "usable"]
        if execution_id is not None:
            live = Execution.objects.filter(pk=execution_id, status=Execution.Status.RUNNING, expires_at__gt=now)
            # A runner session reads only what its workflow declares (placeholders and its list).
            declared = WorkflowSecretReference.objects.filter(
                workflow__executions__pk=execution_id, key=OuterRef("key")
            )
            # A secret carrying a protected tag, and whether this execution's approval was given.
            protected = SecretTag.objects.filter(secret=OuterRef("pk"), tag__protected=True)
            # The keys an approval covers are those its approver saw: a key protected since is not.
            approved = ExecutionApproval.objects.filter(
                execution_id=execution_id, status=ExecutionApproval.Status.APPROVED
            ).values("protected_keys")[:1]
            secrets = secrets.annotate(
                execution_live=Exists(live),
                in_scope=Exists(declared),
                protected=Exists(protected),
                approved_keys=Subquery(approved),
            )
            columns += ["execution_live", "in_scope", "protected", "approved_keys"]
        return secrets.values_list(*columns).order_by()

    def _compile(self, is_local: bool, key_count: int, with_values: bool) -> tuple[str, list[tuple[str, Any]]]:
        """The SQL, and for each parameter either ("value", constant) or ("slot", name)."""
        keys = [f"{self.KEY_PREFIX}{number}" for number in range(key_count)]
        queryset = self.build(
            user_id=self.USER,
            workspace_id=self.WORKSPACE,
            keys=keys,
            execution_id=None if is_local else self.EXECUTION,
            now=self.NOW,
            with_values=with_values,
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

    def run(self, context: RunnerContext, keys: list[str], *, with_values: bool) -> list[Secret]:
        if len(keys) > self.MAX_KEYS:
            raise ValueError(f"The runner read looks up at most {self.MAX_KEYS} keys at once.")
        padded = 1 << (len(keys) - 1).bit_length()
        keys = keys + keys[-1:] * (padded - len(keys))
        shape = (connection.vendor, context.is_local, padded, with_values)
        if shape not in self._compiled:
            self._compiled[shape] = self._compile(context.is_local, padded, with_values)
        sql, layout = self._compiled[shape]
        values = {"user_id": context.user.pk, "workspace_id": context.lookup_workspace.pk}
        values |= {f"key:{number}": key for number, key in enumerate(keys)}
        if not context.is_local:
            values |= {"execution_id": _db_uuid(uuid.UUID(context.execution_id)), "now": _db_datetime(timezone.now())}
        params = [values[item] if kind == "slot" else item for kind, item in layout]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [self._secret(row, context.is_local, with_values) for row in cursor.fetchall()]

    @staticmethod
    def _secret(row: tuple[Any, ...], is_local: bool, with_values: bool) -> Secret:
        secret_id, workspace_id, key, stored, expires_at, grace_days, usable, *run = row
        secret_id = secret_id if isinstance(secret_id, uuid.UUID) else uuid.UUID(secret_id)
        secret = Secret.from_db(
            connection.alias,
            ["id", "workspace_id", "key", "expires_at"],
            [secret_id, workspace_id, key, _aware_datetime(expires_at)],
        )
        if with_values:
            secret.value = SealedValue(stored)
        else:
            secret.stored_size = stored
        secret.grace_days = grace_days
        secret.usable = bool(usable)
        secret.execution_live = is_local or bool(run[0])
        secret.in_scope = is_local or bool(run[1])
        # A local run reads the user's own personal workspace: nobody else to approve it.
        secret.awaits_approval = False
        if not is_local and run[2]:
            approved_keys = json.loads(run[3]) if isinstance(run[3], (str, bytes)) else (run[3] or [])
            secret.awaits_approval = key not in approved_keys
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


def secrets_for_runner(context: RunnerContext, keys: list[str], *, with_values: bool = True) -> list[Secret]:
    """The secrets named `keys` (at most 1,024) where this runner may look, each saying whether
    the reader may use it (`usable`), the grace its workspace gives once it expires (`grace_days`)
    and, for a runner session, whether its execution is still running (`execution_live`) and its
    workflow declares the key (`in_scope`): one query. With its sealed `value`, or else only its
    `stored_size` in bytes (see `sealed_values`)."""
    if context.lookup_workspace is None or not keys:
        return []
    return _runner_read_query.run(context, keys, with_values=with_values)


def sealed_values(secrets: list[Secret]) -> None:
    """Fetch the sealed values of secrets read without them (one query), into their `value`."""
    by_id = {secret.pk: secret for secret in secrets}
    for secret_id, sealed in Secret.objects.filter(pk__in=by_id).values_list("id", "value"):
        by_id[secret_id].value = sealed


def keys_visible_to_runner(context: RunnerContext, keys: list[str]) -> set[str]:
    """Which of these keys the reader may see (to tell "not allowed" from "not found")."""
    visible = permissions.secret_row_permission(context.user, Action.VIEW_SECRETS)
    return set(
        Secret.objects.filter(visible, workspace_id=context.lookup_workspace.pk, key__in=keys).values_list(
            "key", flat=True
        )
    )
