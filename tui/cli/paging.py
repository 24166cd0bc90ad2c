"""Walk the API's keyset pages for listings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def collect(fetch: Callable[..., Any], limit: int | None, **kwargs: Any) -> list[dict[str, Any]]:
    """Items from successive pages until ``limit`` (None: all) or the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        want = 500 if limit is None else min(500, limit - len(items))
        page = fetch(limit=want, cursor=cursor, **kwargs)
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if cursor is None or (limit is not None and len(items) >= limit):
            return items
