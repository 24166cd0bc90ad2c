"""Keyset pagination: newest first, ``?limit=&cursor=``; the cursor is the last id seen.

A keyset page costs the same at row 100,000 as at row 1, unlike OFFSET.

Busy lists can be served by :class:`JsonList`: the database renders every row as a JSON object
and Python only joins them, in one hop to a small thread pool. Its output is the JSON that
``Page[...]`` of the same columns would give (UTC times with a ``Z``, JSON columns embedded).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Engine,
    Enum,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    cast,
    func,
    select,
)
from sqlalchemy import literal_column as sql
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import JSON, TypeDecorator
from sqlmodel import col

from control.api.services import Services
from control.db.readpool import ReadPool
from control.db.types import UTCDateTime
from control.wire.errors import ApiError

T = TypeVar("T")

MAX_LIMIT = 500
# Keyset queries are short; a few threads keep the GIL hand-offs and pooled connections few
# (more threads than pooled connections made the pool open and close connections under load).
PAGE_THREADS = 4


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


_executor: ThreadPoolExecutor | None = None


def _page_threads() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(PAGE_THREADS, thread_name_prefix="devyard-page")
    return _executor


class JsonList:
    """A keyset-paged list of one table's columns, rendered to JSON by the database.

    ``filters`` maps query parameter names to columns compared for equality; an empty or missing
    value means no filter. Supported column types: integers, strings, booleans, ``UTCDateTime``
    and JSON. Statements are compiled once per dialect and filter combination, and run on a
    pooled DBAPI connection without SQLAlchemy's per-row result processing.
    """

    def __init__(self, table: Table, columns: Sequence[str], filters: Mapping[str, str] | None = None) -> None:
        for name in columns:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise ValueError(f"column name {name!r} cannot be a JSON key here")
            _check_type(table.c[name])
        self.table = table
        self.columns = tuple(columns)
        self.filters = dict(filters or {})
        self._compiled: dict[tuple[Any, ...], tuple[str, SQLCompiler]] = {}

    async def respond(self, svc: Services, params: PageParams, **filters: str | None) -> Response:
        """The page as a JSON response: on PostgreSQL queried from the event loop, on SQLite
        in the list thread pool."""
        engine = svc.engine
        if engine.dialect.name == "postgresql":
            sql_text, arguments = self._query(engine, params, filters)
            rows = await read_pool(svc).fetchall(sql_text, arguments)
            body = self._body(rows, params)
        else:
            body = await asyncio.get_running_loop().run_in_executor(
                _page_threads(), partial(self.render, engine, params, filters)
            )
        return Response(body, media_type="application/json")

    def render(self, engine: Engine, params: PageParams, filters: Mapping[str, str | None]) -> bytes:
        """The page as JSON bytes (blocking: call it in a thread)."""
        sql_text, arguments = self._query(engine, params, filters)
        return self._body(_fetch(engine, sql_text, arguments), params)

    def _query(self, engine: Engine, params: PageParams, filters: Mapping[str, str | None]) -> tuple[str, Any]:
        values: dict[str, Any] = {"limit": params.limit + 1}
        if params.cursor is not None:
            values["cursor"] = params.cursor
        for name in self.filters:
            if filters.get(name):
                values[name] = filters[name]
        sql_text, compiled = self._statement(engine, frozenset(values))
        bound = {**compiled.params, **values}
        arguments: Any = tuple(bound[k] for k in compiled.positiontup or ()) if compiled.positional else bound
        return sql_text, arguments

    @staticmethod
    def _body(rows: list[Any], params: PageParams) -> bytes:
        more = len(rows) > params.limit
        rows = rows[: params.limit]
        next_cursor = f'"{rows[-1][0]}"' if more and rows else "null"
        items = ", ".join([row[1] for row in rows])
        return f'{{"items": [{items}], "next_cursor": {next_cursor}}}'.encode()

    def _statement(self, engine: Engine, present: frozenset[str]) -> tuple[str, SQLCompiler]:
        dialect = engine.dialect
        key = (dialect.name, dialect.paramstyle, present)
        found = self._compiled.get(key)
        if found is None:
            compiled = self._select(dialect.name, present).compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            found = self._compiled[key] = (compiled.string, compiled)
        return found

    def _select(self, dialect: str, present: frozenset[str]) -> Any:
        table = self.table
        pairs: list[Any] = []
        for name in self.columns:
            pairs += [sql(f"'{name}'"), _json_value(table.c[name], dialect)]
        # PostgreSQL's as text: psycopg would otherwise parse every row back into a dict.
        row = func.json_object(*pairs) if dialect == "sqlite" else cast(func.json_build_object(*pairs), Text)
        statement = select(table.c.id, row)
        if "cursor" in present:
            statement = statement.where(table.c.id < bindparam("cursor"))
        for name, column in self.filters.items():
            if name in present:
                statement = statement.where(table.c[column] == bindparam(name))
        return statement.order_by(table.c.id.desc()).limit(bindparam("limit"))


READ_POOL = "read_pool"  # key in Services.extras


def read_pool(svc: Services) -> ReadPool:
    """This process's PostgreSQL read pool for the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    pool: ReadPool | None = svc.extras.get(READ_POOL)
    if pool is None or pool.loop is not loop:
        # A new loop (tests run an app in several) cannot use connections made on another one.
        pool = svc.extras[READ_POOL] = ReadPool(svc.engine, loop)
    return pool


async def close_read_pool(svc: Services) -> None:
    """Close the read pool at shutdown (if this loop made one)."""
    pool: ReadPool | None = svc.extras.pop(READ_POOL, None)
    if pool is not None and pool.loop is asyncio.get_running_loop():
        await pool.close()


def _fetch(engine: Engine, sql_text: str, arguments: Any) -> list[Any]:
    """Run one SELECT on a pooled DBAPI connection: no SQLAlchemy result processing per row."""
    connection = engine.raw_connection()
    # One SELECT needs no transaction: on PostgreSQL that saves the BEGIN and ROLLBACK round trips.
    driver = connection.driver_connection if engine.dialect.name == "postgresql" else None
    try:
        if driver is not None:
            driver.autocommit = True
        cursor = connection.cursor()
        cursor.execute(sql_text, arguments)
        rows = cursor.fetchall()
        cursor.close()
    finally:
        if driver is not None:
            try:
                driver.autocommit = False
            except Exception:  # a broken connection: never hand it back in autocommit
                connection.invalidate()
        connection.close()  # back to the pool
    return list(rows)


def _check_type(column: Column[Any]) -> None:
    kind = column.type
    if isinstance(kind, TypeDecorator) and not isinstance(kind, UTCDateTime):
        # Only decorators that hand back what the database stored (sqlmodel's AutoString).
        if type(kind).process_result_value is not TypeDecorator.process_result_value:
            raise TypeError(f"JsonList cannot render column {column.name}: {kind!r} converts its values")
        kind = kind.impl_instance
    # Enums are strings to SQLAlchemy, but they store names where the API shows values.
    if isinstance(kind, Enum) or not isinstance(kind, Integer | String | Boolean | UTCDateTime | JSON):
        raise TypeError(f"JsonList cannot render column {column.name} of type {kind!r}")


def _json_value(column: Column[Any], dialect: str) -> ColumnElement[Any]:
    """The SQL expression for one column's JSON value, matching what pydantic would write."""
    if isinstance(column.type, UTCDateTime):
        # Pydantic writes aware UTC times as ISO 8601 with "Z", and no fraction when it is zero.
        if dialect == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC)
            text = func.replace(column, sql("' '"), sql("'T'"))
        else:
            text = func.to_char(func.timezone(sql("'UTC'"), column), sql("'YYYY-MM-DD\"T\"HH24:MI:SS.US'"))
        return func.replace(text.concat(sql("'Z'")), sql("'.000000Z'"), sql("'Z'"))
    if dialect != "sqlite":
        return column  # json_build_object embeds json and booleans as they are
    if isinstance(column.type, JSON):
        return func.json(column)  # embedded as JSON, not as a string holding JSON
    if isinstance(column.type, Boolean) or (
        isinstance(column.type, TypeDecorator) and isinstance(column.type.impl_instance, Boolean)
    ):  # SQLite stores 0/1
        return func.json(case((column.is_(None), sql("'null'")), (column != 0, sql("'true'")), else_=sql("'false'")))
    return column
