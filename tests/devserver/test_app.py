"""Auth, activity and the error shape, against a real server process."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.devserver.conftest import RunningServer, run


def test_health_reports_the_server(client: httpx.Client, server: RunningServer) -> None:
    body = client.get("/health").json()
    assert body["ok"] is True
    assert body["pid"] == server.process.pid
    assert body["workspace"] == str(server.workspace.resolve())
    assert body["started_at"].endswith("Z") and body["last_activity_at"].endswith("Z")
    assert body["version"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_requests_without_the_secret_get_401(server: RunningServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (("GET", "/health"), ("GET", "/files/manifest"), ("POST", "/exec")):
        response = httpx.request(method, server.url + path, headers=headers, json={"argv": ["true"]}, verify=server.ssl)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_websocket_without_the_secret_is_refused(server: RunningServer) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with pytest.raises(InvalidStatus) as caught:
            connect(server.ws_url + "/pty", additional_headers=headers, open_timeout=5, ssl=server.ssl)
        assert caught.value.response.status_code == 401


def test_secret_file_is_deleted(server: RunningServer) -> None:
    assert not server.secret_file.exists()


def test_commands_never_see_the_secret(client: httpx.Client, server: RunningServer) -> None:
    # The fixture passes the secret in an environment variable of the server on purpose.
    result = run(client, ["env"])
    assert result.code == 0
    assert b"PATH=" in result.stdout
    assert server.secret.encode() not in result.stdout
    assert server.secret.encode() not in server.log_file.read_bytes()


def test_activity_is_recorded_except_for_health(client: httpx.Client) -> None:
    before = client.get("/health").json()["last_activity_at"]
    time.sleep(0.01)  # the clock moves on: a health call that counted as activity would show
    assert client.get("/health").json()["last_activity_at"] == before
    client.get("/git/status")
    assert client.get("/health").json()["last_activity_at"] > before


def test_unknown_endpoints_and_methods_answer_json(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.get("/exec")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"argv": []}', b'{"argv": "ls"}', b'{"argv": ["ls"], "timeout_s": -1}'],
)
def test_bad_json_input_is_a_400_with_a_sentence(client: httpx.Client, body: bytes) -> None:
    response = client.post("/exec", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"]["code"] == "bad_request" and payload["error"]["message"].endswith(".")
