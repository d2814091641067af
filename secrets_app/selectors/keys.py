"""Stored values by encryption key id, for key rotation."""

from __future__ import annotations

import uuid

from django.db.models import Count

from secrets_app.models import Secret


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
