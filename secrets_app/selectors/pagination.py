"""Pages of a list, numbered from 1, as the pages and the API show them."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from secrets_app.errors import PageNotFound

PAGE_SIZE = 50


def paginate(queryset: QuerySet, raw_page: str | None, per_page: int = PAGE_SIZE) -> Page:
    """One page of `queryset` (pages count from 1), or PageNotFound."""
    paginator = Paginator(queryset, per_page)
    raw_page = raw_page or "1"
    if not (raw_page.isascii() and raw_page.isdigit()) or not 1 <= int(raw_page) <= paginator.num_pages:
        raise PageNotFound(f"There is no page {raw_page!r}; pages run from 1 to {paginator.num_pages}.")
    return paginator.page(int(raw_page))
