"""The audit log: a workspace's events, filtered, and the verification of every HMAC chain."""

from __future__ import annotations

import datetime
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import CharField, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

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


# Your own account's events (sign-up, password, factors, confirmations, sessions), newest first.
ACCOUNT_EVENTS_LISTED = 20
ACCOUNT_ACTIONS = [
    AuditEvent.Action.USER_SIGNED_UP,
    AuditEvent.Action.PASSWORD_CHANGED,
    AuditEvent.Action.PASSWORD_RESET,
    AuditEvent.Action.PASSWORD_SET_BY_ADMIN,
    AuditEvent.Action.REAUTHENTICATED,
    AuditEvent.Action.FACTOR_ADDED,
    AuditEvent.Action.FACTOR_REMOVED,
    AuditEvent.Action.RECOVERY_CODES_REGENERATED,
    AuditEvent.Action.RECOVERY_CODE_USED,
    AuditEvent.Action.SESSION_REVOKED,
    AuditEvent.Action.OTHER_SESSIONS_REVOKED,
]


def account_events_of(user: Any) -> list[AuditEvent]:
    """The latest ACCOUNT_EVENTS_LISTED events of `user`'s own account (Account Settings → Security)."""
    mine = AuditEvent.objects.filter(actor_id=user.pk, workspace__isnull=True, action__in=ACCOUNT_ACTIONS)
    return list(mine.order_by("-id")[:ACCOUNT_EVENTS_LISTED])


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


# Read as the database stores them, as text: a row a database writer garbled (a time that is no
# time, an id that is no UUID) must be reported like any other bad row, not stop the walk.
_RAW_COLUMNS = {
    "at": "at_text",
    "chain_id": "chain_text",
    "secret_id": "secret_id_text",
    "execution_id": "execution_id_text",
}


def _as_event(row: dict[str, Any]) -> AuditEvent:
    """The event a raw row holds, or ValueError naming the column that cannot be read."""
    fields = {name: value for name, value in row.items() if name not in _RAW_COLUMNS.values()}
    for column, text in (("at", row["at_text"]), ("chain_id", row["chain_text"])):
        if text is None:
            raise ValueError(column)
    try:
        at = parse_datetime(row["at_text"].replace(" ", "T", 1))
    except ValueError:
        at = None
    if at is None:
        raise ValueError("at")
    fields["at"] = at if timezone.is_aware(at) else timezone.make_aware(at, datetime.UTC)
    for column in ("chain_id", "secret_id", "execution_id"):
        text = row[_RAW_COLUMNS[column]]
        try:
            fields[column] = uuid.UUID(text) if text else None
        except ValueError:
            raise ValueError(column) from None
    if fields["ip_address"]:
        try:
            ipaddress.ip_address(fields["ip_address"])
        except ValueError:
            raise ValueError("ip_address") from None
    return AuditEvent(**fields)


def _shown(chain_text: str | None) -> str:
    try:
        return str(uuid.UUID(chain_text))
    except (TypeError, ValueError):
        return repr(chain_text)


def audit_chain_report() -> AuditChainReport:
    """Walk every chain of the audit log, recomputing each link's MAC.

    An event whose content (or MAC) was changed fails its own check; an event deleted from the
    middle or the start of a chain leaves a gap in its positions; renumbering to hide a gap
    breaks the MAC of the event after it; a row whose columns cannot be read at all is reported
    as malformed, and the walk goes on from its stored MAC. Problems come in event id order.

    The MAC does not cover the row's `id`: the database gives it as the row is inserted, after the
    MAC was computed (covering it would cost every audited write a second statement), and nothing
    here relies on it: chains are walked by (chain, position), which the MAC covers.
    """
    report = AuditChainReport()
    chain, expected_seq, previous_mac = None, 1, ""
    casts = {alias: Cast(column, CharField()) for column, alias in _RAW_COLUMNS.items()}
    plain = [f.attname for f in AuditEvent._meta.concrete_fields if f.attname not in _RAW_COLUMNS]
    rows = AuditEvent.objects.annotate(**casts).order_by("chain_id", "chain_seq").values(*plain, *casts)
    for row in rows.iterator(chunk_size=5000):
        report.events += 1
        if row["chain_text"] != chain:
            chain, expected_seq, previous_mac = row["chain_text"], 1, ""
            report.chains += 1
        try:
            event, unreadable = _as_event(row), ""
        except ValueError as error:
            event, unreadable = None, str(error)
        when = f"{event.at:%Y-%m-%d %H:%M:%S}" if event else repr(row["at_text"])
        where = f"event {row['id']} ({row['action']} at {when}, chain {_shown(chain)} #{row['chain_seq']})"
        if row["chain_seq"] != expected_seq:
            missing = (
                f"#{expected_seq}"
                if row["chain_seq"] == expected_seq + 1
                else f"#{expected_seq}-#{row['chain_seq'] - 1}"
            )
            problem = f"missing: {missing} of chain {_shown(chain)}, before {where}"
        elif event is None:
            problem = f"malformed: {where}: its {unreadable} cannot be read"
        elif not crypto.macs_equal(crypto.audit_mac(previous_mac, event.chained_content()), row["mac"]):
            problem = f"altered: {where} does not match its MAC"
        else:
            problem = ""
        if problem:
            report.problems.append(AuditChainProblem(row["id"], problem))
        expected_seq, previous_mac = row["chain_seq"] + 1, row["mac"]
    report.problems.sort(key=lambda problem: problem.event_id)
    return report
