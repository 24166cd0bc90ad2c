"""Every route authorizes: checked against the live OpenAPI document so new routes are covered."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlmodel import select

from control.client.calls import untyped
from control.db.tables import ApiToken
from tests.stack import Stack

# Health, and single sign-on's device grant: whoever asks for a code or polls has no token yet
# (tests/control/test_sso.py covers them).
PUBLIC = {
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/auth/device"),
    ("POST", "/api/v1/auth/token"),
    # A provider's webhook delivery is proven by the project's webhook secret, not by a token:
    # its refusals (unsigned, wrongly signed, unknown project) are tested in tests/control/test_hooks.py.
    ("POST", "/api/v1/hooks/1/x"),  # {provider} is "1": the name holds "id"
}
SELF_SERVICE = {("GET", "/api/v1/me")}


def routes(stack: Stack) -> list[tuple[str, str]]:
    spec = httpx.get(stack.url + "/api/v1/openapi.json").json()
    found = []
    for path, operations in spec["paths"].items():
        for method in operations:
            concrete = re.sub(r"\{[^}]+\}", lambda m: "1" if "id" in m.group(0) or "port" in m.group(0) else "x", path)
            found.append((method.upper(), concrete))
    assert len(found) > 15, "the OpenAPI document lists too few routes"
    return found


def call(stack: Stack, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: Any = {} if method in ("POST", "PATCH", "PUT") else None
    with httpx.Client(timeout=5) as http:
        if path.endswith("/events"):
            with http.stream(method, stack.url + path, headers=headers) as response:
                return response
        return http.request(method, stack.url + path, headers=headers, json=body)


def test_every_route_but_health_needs_a_token(stack: Stack) -> None:
    for method, path in routes(stack):
        if (method, path) in PUBLIC:
            continue
        response = call(stack, method, path, None)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers.get("www-authenticate") == "Bearer"


def test_viewer_gets_403_on_every_mutating_route(stack: Stack) -> None:
    viewer = stack.user("vera", "viewer")
    mutating = [(m, p) for m, p in routes(stack) if m in ("POST", "PUT", "PATCH", "DELETE") and (m, p) not in PUBLIC]
    assert len(mutating) >= 8
    for method, path in mutating:
        response = call(stack, method, path, viewer)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "forbidden"


def test_viewer_can_read(stack: Stack) -> None:
    viewer = stack.user("vera", "viewer")
    with stack.client() as admin:
        admin.create_project("shop")
    with stack.client(viewer) as client:
        assert [p.name for p in client.list_projects().items] == ["shop"]
        assert client.list_users().items
        assert client.status().status == "ok"


def test_agent_tokens_only_reach_agent_routes(stack: Stack) -> None:
    agent = stack.user("agent-1", "agent")
    for method, path in routes(stack):
        worker_route = "/worker/" in path or (method == "PUT" and ("/logs/" in path or path.endswith("/artifacts")))
        if (method, path) in PUBLIC | SELF_SERVICE or "/agent/" in path or worker_route:
            continue
        response = call(stack, method, path, agent)
        assert response.status_code == 403, (method, path, response.text)
    with stack.client(agent) as client:
        assert client.me().role == "agent"


def test_developer_cannot_touch_other_developers_things(stack: Stack) -> None:
    alice, bob = stack.user("alice", "developer"), stack.user("bob", "developer")
    with stack.client(alice) as client:
        client.create_project("alices")
        client.create_environment("alices", "dev")
        alice_token_id = client.list_tokens().items[0].id
    with httpx.Client(base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {bob}"}) as bob_http:
        assert bob_http.patch("/projects/alices", json={"description": "mine now"}).status_code == 403
        assert bob_http.delete("/projects/alices").status_code == 403
        assert bob_http.post("/projects/alices/environments", json={"name": "x"}).status_code == 403
        assert bob_http.patch("/projects/alices/environments/dev", json={"image": "evil"}).status_code == 403
        assert bob_http.delete("/projects/alices/environments/dev").status_code == 403
        assert bob_http.delete(f"/tokens/{alice_token_id}").status_code == 404
        assert bob_http.get("/tokens", params={"user": "alice"}).status_code == 403
        assert bob_http.post("/tokens", json={"user": "alice"}).status_code == 403
        assert bob_http.post("/users", json={"name": "mallory", "role": "admin"}).status_code == 403
        assert bob_http.patch("/users/bob", json={"role": "admin"}).status_code == 403
        assert bob_http.get("/audit").status_code == 403
        # Bob's own token list does not show Alice's tokens.
        mine = bob_http.get("/tokens").json()["items"]
        assert {t["user"] for t in mine} == {"bob"}
    with stack.client() as admin:
        assert admin.get_project("alices").description == ""


def test_tokens_are_stored_hashed_and_shown_once(stack: Stack) -> None:
    with stack.client() as admin:
        issued = admin.create_token(name="ci")
        listed = admin.send(untyped("GET", "/tokens"))["items"]  # as sent: no model hides a field
    secret = issued.token
    assert secret.startswith("dy_") and len(secret) > 40
    assert listed and all("token" not in t for t in listed)
    with stack.services.engine.connect() as conn:
        hashes = [row.token_hash for row in conn.execute(select(ApiToken))]
    assert secret not in hashes and all(len(h) == 64 for h in hashes)
    dump = "\n".join(str(row) for row in hashes)
    assert secret[3:20] not in dump


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer dy_not-a-real-token", "Basic abc", "bearer x y"])
def test_bad_credentials_are_401_json(sqlite_stack: Stack, header: str) -> None:
    response = httpx.get(sqlite_stack.url + "/api/v1/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_revoked_expired_and_disabled_tokens_stop_working(stack: Stack) -> None:
    from datetime import timedelta

    from control.clock import utcnow

    dev = stack.user("dana", "developer")
    with stack.client(dev) as client:
        second = client.create_token(name="laptop")
        client.revoke_token(second.id)
    assert (
        httpx.get(stack.url + "/api/v1/me", headers={"Authorization": f"Bearer {second.token}"}).json()["error"][
            "message"
        ]
        == "The token has been revoked."
    )

    with stack.client() as admin:
        expiring = admin.create_token(name="short", user="dana", expires_in_days=1)
    with stack.services.engine.begin() as conn:
        conn.execute(
            ApiToken.__table__.update()  # type: ignore[attr-defined]
            .where(ApiToken.__table__.c.id == expiring.id)  # type: ignore[attr-defined]
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )  # type: ignore[attr-defined]
    response = httpx.get(stack.url + "/api/v1/me", headers={"Authorization": f"Bearer {expiring.token}"})
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]

    with stack.client() as admin:
        admin.update_user("dana", disabled=True)
    response = httpx.get(stack.url + "/api/v1/me", headers={"Authorization": f"Bearer {dev}"})
    assert response.status_code == 401 and "disabled" in response.json()["error"]["message"]


def test_mutations_are_audited(stack: Stack) -> None:
    dev = stack.user("erin", "developer")
    with stack.client(dev) as client:
        client.create_project("audited")
        client.create_environment("audited", "prod", secrets={"API_KEY": "hunter2-very-secret"})
        client.update_project("audited", description="changed")
    with stack.client() as admin:
        events = admin.list_audit(limit=50).items
    actions = [(e.actor_name, e.action) for e in events]
    assert ("erin", "project.create") in actions
    assert ("erin", "environment.create") in actions
    assert ("erin", "project.update") in actions
    assert ("admin", "user.create") in actions
    assert "hunter2-very-secret" not in str(events)


def test_secret_values_are_never_returned(stack: Stack) -> None:
    with stack.client() as admin:
        admin.create_project("p")
        env = admin.create_environment("p", "prod", variables={"A": "1"}, secrets={"TOKEN": "s3cr3t-value"})
        assert env.secret_names == ["TOKEN"] and "s3cr3t-value" not in str(env)
        updated = admin.update_environment("p", "prod", secrets={"TOKEN": "", "OTHER": "x"})
        assert updated.secret_names == ["OTHER"]
        assert "s3cr3t-value" not in str(admin.list_environments("p"))
