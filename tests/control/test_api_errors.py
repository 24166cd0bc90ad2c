"""Malformed requests get a 4xx with a JSON body and one clear message, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.stack import Stack, running_stack


def api(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {stack.admin_token}"}, timeout=10
    )


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"].endswith("."), body
    return body["error"]


def test_unknown_route_is_json_404(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        response = http.get("/nope")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_unknown_project_names_it(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        response = http.get("/projects/ghost")
    assert response.status_code == 404
    assert error_of(response)["message"] == "Project ghost does not exist."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"name": "../etc"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "ok", "unknown": 1}, "unknown"),
        ({"name": 5}, "name"),
        ({}, "name"),
    ],
)
def test_invalid_project_bodies_are_422(sqlite_stack: Stack, body: dict[str, object], field: str) -> None:
    with api(sqlite_stack) as http:
        response = http.post("/projects", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert field in error["message"]


def test_malformed_json_is_422(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        response = http.post("/projects", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    error_of(response)


def test_name_pattern_message_is_readable(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        message = error_of(http.post("/users", json={"name": "Bad_Name"}))["message"]
    assert "lowercase letters" in message and "^" not in message


def test_duplicate_names_are_409(stack: Stack) -> None:
    with api(stack) as http:
        assert http.post("/projects", json={"name": "dup"}).status_code == 201
        response = http.post("/projects", json={"name": "dup"})
        assert response.status_code == 409
        assert error_of(response)["message"] == "Project dup already exists."
        assert http.post("/users", json={"name": "admin"}).status_code == 409


def test_oversized_bodies_are_413(tmp_path: object) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    with (
        running_stack(base / "data", f"sqlite:///{base / 'db.sqlite'}", max_request_bytes=1024) as stack,
        api(stack) as http,
    ):
        big = {"name": "p", "description": "x" * 5000}
        response = http.post("/projects", json=big)
        assert response.status_code == 413
        assert error_of(response)["code"] == "too_large"

        def chunks() -> object:
            yield b'{"name": "p", "description": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        # No Content-Length: the limit is enforced while the body streams in.
        response = http.post("/projects", content=chunks(), headers={"content-type": "application/json"})  # type: ignore[arg-type]
        assert response.status_code == 413
        assert http.get("/projects").json()["items"] == []


def test_bad_cursor_and_limit_are_422(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        assert http.get("/users", params={"cursor": "abc"}).status_code == 422
        assert http.get("/users", params={"limit": 0}).status_code == 422
        assert http.get("/users", params={"limit": 100000}).status_code == 422
        assert http.delete("/tokens/not-a-number").status_code == 422


def test_keyset_pages_cover_every_row_once(stack: Stack) -> None:
    with api(stack) as http:
        for i in range(23):
            assert http.post("/projects", json={"name": f"p{i:02d}"}).status_code == 201
        seen: list[str] = []
        cursor = None
        while True:
            page = http.get("/projects", params={"limit": 5, **({"cursor": cursor} if cursor else {})}).json()
            seen += [p["name"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [f"p{i:02d}" for i in reversed(range(23))]


def test_cannot_demote_yourself(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        response = http.patch("/users/admin", json={"role": "viewer"})
    assert response.status_code == 409


def test_openapi_document_is_served(sqlite_stack: Stack) -> None:
    spec = httpx.get(sqlite_stack.url + "/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "devyard control API"
    assert "/api/v1/projects" in spec["paths"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/projects/p/environments/e", {"variables": None}),
        ("/projects/p/environments/e", {"resources": None}),
        ("/projects/p/environments/e", {"agent_queue": None}),
        ("/projects/p", {"description": None}),
        ("/users/admin", {"role": None}),
        ("/users/admin", {"disabled": None}),
    ],
)
def test_null_for_a_required_field_is_422_and_changes_nothing(stack: Stack, path: str, body: dict[str, object]) -> None:
    with api(stack) as http:
        assert http.post("/projects", json={"name": "p"}).status_code == 201
        assert http.post("/projects/p/environments", json={"name": "e"}).status_code == 201
        response = http.patch(path, json=body)
        assert response.status_code == 422, response.text
        assert "cannot be null" in error_of(response)["message"]
        assert http.get("/projects/p/environments/e").status_code == 200
        assert http.get("/projects/p").status_code == 200


def test_null_clears_nullable_fields(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        http.post("/projects", json={"name": "p", "repo_url": "git@example.com:p.git"})
        assert http.patch("/projects/p", json={"repo_url": None}).json()["repo_url"] is None


def test_wrong_method_is_a_sentence(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        response = http.put("/projects")
    assert response.status_code == 405
    assert error_of(response)["message"] == "This method is not allowed on this route."


def test_sqlite_never_reuses_ids(sqlite_stack: Stack) -> None:
    with api(sqlite_stack) as http:
        first = http.post("/projects", json={"name": "one"}).json()["id"]
        http.delete("/projects/one")
        assert http.post("/projects", json={"name": "two"}).json()["id"] > first
