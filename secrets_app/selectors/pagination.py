"""Pages of a list, numbered from 1, as the pages and the API show them; and the first few rows
of a list that is shown whole nowhere (a menu, a summary), with how many there are in all.

Every list an answer or a page shows goes through one of the two, so that no request's answer
grows with the data: a page holds at most PAGE_SIZE rows, a capped list at most its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet, Window

from secrets_app.errors import PageNotFound
from secrets_app.validators import parse_number

PAGE_SIZE = 50


class Rows:
    """A queryset whose rows are shown as `make(row)`: counted and sliced in the database, and
    only the rows of the slice taken are made (a Paginator, or `capped`, takes it as a queryset)."""

    def __init__(self, queryset: QuerySet, make: Callable[[Any], Any]) -> None:
        self.queryset, self.make = queryset, make

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.make(row) for row in self.queryset[index]]
        return self.make(self.queryset[index])

    def __iter__(self) -> Iterator[Any]:
        return (self.make(row) for row in self.queryset)


def paginate(queryset: QuerySet | Rows, raw_page: str | None, per_page: int = PAGE_SIZE) -> Page:
    """One page of `queryset` (pages count from 1), or PageNotFound."""
    paginator = Paginator(queryset, per_page)
    number = parse_number(raw_page or "1")
    if number is None or not 1 <= number <= paginator.num_pages:
        shown = (raw_page or "")[:20]
        raise PageNotFound(f"There is no page {shown!r}; pages run from 1 to {paginator.num_pages}.")
    return paginator.page(number)


def page_fields(page: Page) -> dict[str, int]:
    """What an API answer says about the page it holds: `count` (rows in all), `page`, `pages`."""
    return {"count": page.paginator.count, "page": page.number, "pages": page.paginator.num_pages}


@dataclass
class Capped:
    """The first `limit` rows of a list, and how many rows it has in all (`total`)."""

    items: list[Any]
    total: int
    unlisted: int = field(init=False)

    def __post_init__(self) -> None:
        self.unlisted = self.total - len(self.items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


def capped(queryset: QuerySet | Rows, limit: int) -> Capped:
    """The first `limit` rows of `queryset` in its order, and how many it has in all: one query (the
    total is a window count over the same rows), so the cost is the same whatever the data."""
    if isinstance(queryset, Rows):
        return Capped(queryset[:limit], queryset.count())
    rows = list(queryset.annotate(capped_total=Window(Count("*")))[:limit])
    if not rows:
        return Capped([], 0)
    first = rows[0]
    total = first["capped_total"] if isinstance(first, dict) else first.capped_total
    return Capped(rows, total)
