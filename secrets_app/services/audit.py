"""The audit log's writes: events, appended as links of an HMAC chain, and the export record.

Every other service writes its events through `record_event` / `record_events`, inside its own
transaction, so an event and the change it records commit together or not at all.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from secrets_app import crypto, permissions
from secrets_app.models import AuditEvent, Secret, Workspace
from secrets_app.permissions import Action


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
