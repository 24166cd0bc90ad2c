"""Keyset pagination: newest first, ``?limit=&cursor=``; the cursor is the last id seen.

A keyset page costs the same at row 100,000 as at row 1, unlike OFFSET.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlmodel import col

from control.api.errors import ApiError

T = TypeVar("T")

MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    cursor: int | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=32, description="next_cursor of the previous page.")] = None,
) -> PageParams:
    parsed: int | None = None
    if cursor:
        try:
            parsed = int(cursor)
        except ValueError:
            raise ApiError(422, "invalid_request", "Invalid cursor: pass the next_cursor of a previous page.") from None
    return PageParams(limit=limit, cursor=parsed)


def apply(statement: Any, id_column: Any, params: PageParams) -> Any:
    """Order newest first and start after the cursor; fetch one extra row to know if more exist."""
    if params.cursor is not None:
        statement = statement.where(id_column < params.cursor)
    return statement.order_by(col(id_column).desc()).limit(params.limit + 1)


def build(rows: list[Any], params: PageParams, convert: Any) -> dict[str, Any]:
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return {
        "items": [convert(r) for r in rows],
        "next_cursor": str(rows[-1].id) if more and rows else None,
    }
