"""Pages of a list, numbered from 1, as the pages and the API show them."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from secrets_app.errors import PageNotFound
from secrets_app.validators import parse_number

PAGE_SIZE = 50


def paginate(queryset: QuerySet, raw_page: str | None, per_page: int = PAGE_SIZE) -> Page:
    """One page of `queryset` (pages count from 1), or PageNotFound."""
    paginator = Paginator(queryset, per_page)
    number = parse_number(raw_page or "1")
    if number is None or not 1 <= number <= paginator.num_pages:
        shown = (raw_page or "")[:20]
        raise PageNotFound(f"There is no page {shown!r}; pages run from 1 to {paginator.num_pages}.")
    return paginator.page(number)
