"""The audit log: a workspace's events, filtered, and the verification of every HMAC chain."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils import timezone

from secrets_app import crypto
from secrets_app.models import AuditEvent, Workspace

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
