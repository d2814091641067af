"""The audit log as files: CSV that spreadsheets open safely, and JSON Lines; streamed in chunks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone

from .models import AuditEvent

# Field names of both formats, in this order; documented in the README, so they stay stable.
EXPORT_FIELDS = (
    "id",
    "at",
    "action",
    "actor",
    "workspace",
    "key",
    "secret_id",
    "execution_id",
    "ip_address",
    "detail",
)

# Rows written per chunk sent: few large writes instead of one per event.
ROWS_PER_CHUNK = 500

# A spreadsheet reads a cell starting with one of these as a formula (or, for tab and carriage
# return, strips them and then may). Keys of refused runner reads, usernames, group names and
# workspace names are chosen by users, so any of them could be a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def event_record(event: AuditEvent) -> dict[str, Any]:
    """One event as the exports write it: plain JSON types, time in the site's time zone."""
    return {
        "id": event.id,
        "at": timezone.localtime(event.at).isoformat(),
        "action": event.action,
        "actor": event.actor_username,
        "workspace": event.workspace_slug,
        "key": event.secret_key,
        "secret_id": str(event.secret_id) if event.secret_id else None,
        "execution_id": str(event.execution_id) if event.execution_id else None,
        "ip_address": event.ip_address,
        "detail": event.detail,
    }


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs: a leading formula character gets a `'`."""
    return f"'{text}" if text.startswith(FORMULA_TRIGGERS) else text


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return spreadsheet_safe(str(value))


def csv_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    """A header row, then one row per event (`detail` as a JSON object), in chunks of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for count, event in enumerate(events, start=1):
        record = event_record(event)
        writer.writerow([_csv_cell(record[name]) for name in EXPORT_FIELDS])
        if count % ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def json_lines_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    """One JSON object per line, one line per event, in chunks of lines."""
    lines = []
    for event in events:
        # ASCII only: no line separator other than "\n" can reach a line (U+2028 splits lines for
        # some readers), and the file reads the same whatever encoding a tool assumes.
        lines.append(json.dumps(event_record(event)) + "\n")
        if len(lines) == ROWS_PER_CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


# Format (the file's extension, as in the address) -> (content type, chunk writer).
EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", csv_chunks),
    "jsonl": ("application/jsonl; charset=utf-8", json_lines_chunks),
}
