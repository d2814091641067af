"""Template filters for the Activity page."""

from typing import Any

from django import template

register = template.Library()


def _readable(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_readable(item) for item in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{name}={_readable(item)}" for name, item in sorted(value.items())) or "none"
    return "none" if value is None else str(value)


@register.filter
def detail_summary(detail: Any) -> str:
    """An audit event's `detail` as one line: `name: value; name: value`, names in alphabetical
    order (PostgreSQL's jsonb keeps no other)."""
    if not isinstance(detail, dict):
        return _readable(detail)
    return "; ".join(f"{name.replace('_', ' ')}: {_readable(value)}" for name, value in sorted(detail.items()))
