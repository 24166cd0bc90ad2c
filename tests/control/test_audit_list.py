"""The audit list, rendered by the database (``paging.JsonList``), reads exactly like the models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, text
from sqlmodel import Session, col, select

from control.db.tables import AuditEvent
from control.wire.resources import AuditOut
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.stack import Stack, running_stack

ODD_ROWS: list[dict[str, Any]] = [
    # No fraction of a second, no target, text that needs escaping, nested JSON of every kind.
    {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "actor_id": None,
        "actor_name": 'q"uote\\back',
        "action": "odd.one",
        "target_type": "t",
        "target_id": None,
        "details": {"é": "ü\n\t</script>", "list": [1, 2.5, None, True, False], "empty": {}},
    },
    {
        "at": datetime(2026, 1, 2, 3, 4, 5, 10, tzinfo=UTC),
        "actor_id": 7,
        "actor_name": "ünïcode",
        "action": "odd.two",
        "target_type": "t",
        "target_id": "x",
        "details": {},
    },
]


def expected(stack: Stack, **where: str) -> list[dict[str, Any]]:
    """What the API showed when every row went through ``AuditOut``, newest first."""
    with Session(stack.services.engine) as session:
        statement = select(AuditEvent).order_by(col(AuditEvent.id).desc())
        for name, value in where.items():
            statement = statement.where(getattr(AuditEvent, name) == value)
        return [
            AuditOut.model_validate(row, from_attributes=True).model_dump(mode="json")
            for row in session.exec(statement)
        ]


def walk(http: httpx.Client, limit: int, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/v1/audit", params=query)  # type: ignore[arg-type]
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "application/json"
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_pages_filters_and_errors_match_the_models(stack: Stack) -> None:
    with stack.client() as admin:
        for name in ("alpha", "beta", "gamma"):
            admin.create_project(name)
        admin.create_user("viewer-1", role="viewer")
    with stack.services.engine.begin() as conn:
        conn.execute(insert(AuditEvent.__table__), ODD_ROWS)  # type: ignore[attr-defined]
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.admin_token}"}) as http:
        assert walk(http, 2) == expected(stack)
        assert walk(http, 500) == expected(stack)
        assert walk(http, 1, action="project.create") == expected(stack, action="project.create")
        assert walk(http, 3, actor="ünïcode") == expected(stack, actor_name="ünïcode")
        assert walk(http, 50, action="odd.one", actor='q"uote\\back') == expected(stack, action="odd.one")
        assert walk(http, 50, action="") == expected(stack)  # empty means no filter
        assert http.get("/api/v1/audit", params={"action": "nothing"}).json() == {"items": [], "next_cursor": None}

        bad_cursor = http.get("/api/v1/audit", params={"cursor": "abc"})
        assert bad_cursor.status_code == 422 and bad_cursor.json()["error"]["code"] == "invalid_request"
        assert http.get("/api/v1/audit", params={"limit": 501}).status_code == 422
    viewer = stack.user("viewer-2", "viewer")
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {viewer}"}) as http:
        refused = http.get("/api/v1/audit")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert httpx.get(stack.url + "/api/v1/audit").status_code == 401


def test_the_list_survives_its_database_connections_being_closed(postgres_admin_url: str, tmp_path: Path) -> None:
    """PostgreSQL restarted or failed over: the pooled connections are dead; the next page is not."""
    url = create_postgres_database(postgres_admin_url)
    try:
        with (
            running_stack(tmp_path / "data", url) as stack,
            httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.admin_token}"}) as http,
        ):
            first = http.get("/api/v1/audit", params={"limit": 5})
            assert first.status_code == 200
            name = stack.services.engine.url.database
            admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                query = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"
                assert conn.execute(text(query), {"name": name}).scalar_one() >= 1
            admin.dispose()
            again = http.get("/api/v1/audit", params={"limit": 5})
            assert again.status_code == 200, again.text
            assert again.json()["items"] == first.json()["items"]
    finally:
        drop_postgres_database(postgres_admin_url, url)
