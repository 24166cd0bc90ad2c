"""Walk the API's keyset pages for listings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from control.wire.resources import Page

T = TypeVar("T")


def collect(fetch: Callable[..., Page[T]], limit: int | None, **kwargs: Any) -> list[T]:
    """Items from successive pages until ``limit`` (None: all) or the end."""
    items: list[T] = []
    cursor = None
    while True:
        want = 500 if limit is None else min(500, limit - len(items))
        page = fetch(limit=want, cursor=cursor, **kwargs)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None or (limit is not None and len(items) >= limit):
            return items
