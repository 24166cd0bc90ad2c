"""Malformed requests get a 4xx with a JSON body and one clear message, never a 500."""

from __future__ import annotations

import re
from pathlib import Path

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
    return dict(body["error"])


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


BEYOND_64_BITS = 2**63
BEYOND_64_BITS_REQUESTS = [
    ("GET", f"/runs/{BEYOND_64_BITS}", None),
    ("GET", f"/runs/{BEYOND_64_BITS}/logs", None),
    ("GET", f"/runs/{BEYOND_64_BITS}/artifacts", None),
    ("POST", f"/runs/{BEYOND_64_BITS}/cancel", None),
    ("DELETE", f"/tokens/{BEYOND_64_BITS}", None),
    ("GET", f"/devservers/{BEYOND_64_BITS}", None),
    ("POST", f"/devservers/{BEYOND_64_BITS}/exec", {"argv": ["true"]}),
    ("GET", f"/runs?cursor={BEYOND_64_BITS}", None),
    ("GET", f"/runs?cursor=-{BEYOND_64_BITS + 1}", None),
    ("POST", "/runs/{run}/worker/finish", {"outcome": "exited", "exit_code": BEYOND_64_BITS, "log_seq": 0}),
    ("POST", "/runs/{run}/worker/finish", {"outcome": "exited", "log_seq": BEYOND_64_BITS}),
]


def test_numbers_beyond_64_bits_are_a_4xx(stack: Stack) -> None:
    """SQLite raised OverflowError (a 500) binding these; PostgreSQL refuses to store them."""
    agent = stack.user("agent-big", "agent")
    with api(stack) as http:
        assert http.post("/projects", json={"name": "demo"}).status_code == 201
        run = http.post("/runs", json={"project": "demo", "command": ["true"]}).json()
    for method, path, body in BEYOND_64_BITS_REQUESTS:
        token = agent if "/worker/" in path else stack.admin_token
        with httpx.Client(base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as http:
            response = http.request(method, path.replace("{run}", str(run["id"])), json=body)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        error = error_of(response)
        assert error["code"] in ("invalid_request", "not_found", "conflict"), (method, path, error)


BAD_ARTIFACT_PATHS = [
    ("bad\x01name.txt", "control character"),
    ("tab\tname.txt", "control character"),
    ("x" * 300, "longer than 255 bytes"),
    ("dir/" + "报" * 90, "longer than 255 bytes"),
    ("/".join(["d" * 230] * 4), "longer than 900 bytes"),
    ("../up.txt", "stay inside the run"),
]


def test_artifact_paths_a_store_cannot_hold_are_422(sqlite_stack: Stack) -> None:
    """A control character was a 500, a 300-character name a 503 blaming the store."""
    agent = sqlite_stack.user("agent-art", "agent")
    with api(sqlite_stack) as http:
        assert http.post("/projects", json={"name": "demo"}).status_code == 201
        run = http.post("/runs", json={"project": "demo", "command": ["true"]}).json()
    headers = {"Authorization": f"Bearer {agent}"}
    with httpx.Client(base_url=sqlite_stack.url + "/api/v1", headers=headers) as http:
        for path, problem in BAD_ARTIFACT_PATHS:
            refused = http.put(f"/runs/{run['id']}/artifacts", params={"path": path}, content=b"data")
            assert refused.status_code == 422, refused.text
            assert problem in error_of(refused)["message"]
        accepted = http.put(f"/runs/{run['id']}/artifacts", params={"path": "报告 🎉.txt"}, content=b"data")
        assert accepted.status_code == 201, accepted.text
    with api(sqlite_stack) as http:
        assert [a["path"] for a in http.get(f"/runs/{run['id']}/artifacts").json()] == ["报告 🎉.txt"]


def documented_codes() -> set[str]:
    """The error codes docs/api.md lists in its table of errors."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    return set(re.findall(r"^\| (?:\d{3}|any) \| `([a-z_]+)` \|", text, flags=re.MULTILINE))


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_deeply_nested_json_gets_a_documented_code(sqlite_stack: Stack, body: bytes) -> None:
    with api(sqlite_stack) as http:
        response = http.post("/projects", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert error_of(response)["code"] in documented_codes() - {"internal"}
        assert error_of(response)["code"] == "bad_request"
        assert http.get("/projects").json()["items"] == []


def test_byte_routes_declare_the_media_types_they_serve(sqlite_stack: Stack) -> None:
    spec = httpx.get(sqlite_stack.url + "/api/v1/openapi.json").json()
    paths = spec["paths"]

    def served(path: str, method: str, status: str) -> set[str]:
        return set(paths[f"/api/v1{path}"][method]["responses"][status].get("content", {}))

    logs = served("/runs/{run_id}/logs", "get", "200")
    assert logs == {"application/octet-stream", "text/event-stream", "application/x-devyard-log-frames"}
    assert served("/runs/{run_id}/artifacts/{artifact_id}/content", "get", "200") == {"application/octet-stream"}
    for path in ("/runs/{run_id}/logs/{seq}", "/runs/{run_id}/artifacts"):
        assert set(paths[f"/api/v1{path}"]["put"]["requestBody"]["content"]) == {"application/octet-stream"}
    # What the routes really answer is among what they declare.
    with api(sqlite_stack) as http:
        assert http.post("/projects", json={"name": "demo"}).status_code == 201
        run = http.post("/runs", json={"project": "demo", "command": ["true"]}).json()
        stored = http.get(f"/runs/{run['id']}/logs")
        assert stored.status_code == 200 and stored.headers["content-type"].split(";")[0] in logs
        http.post(f"/runs/{run['id']}/cancel")
        with http.stream("GET", f"/runs/{run['id']}/logs", params={"follow": "true"}) as followed:
            assert followed.headers["content-type"].split(";")[0] in logs


def test_codes_the_api_answers_are_documented() -> None:
    """Every literal error code in control/ is in docs/api.md's table."""
    root = Path(__file__).resolve().parents[2] / "control"
    used: set[str] = set()
    for source in root.rglob("*.py"):
        text = source.read_text()
        used |= set(re.findall(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"', text))
        used |= set(re.findall(r'error_body\(\s*"([a-z_]+)"', text))
        used |= set(re.findall(r'(?:_close_with|_reject)\(\s*(?:send,\s*)?\d{3},\s*"([a-z_]+)"', text))
    missing = used - documented_codes()
    assert not missing, f"codes the API answers but docs/api.md does not list: {sorted(missing)}"
