"""Develop servers end to end: the API, the in-process agent, real `python -m devserver` processes,
and every call through the gateway — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from compose.agent import Agent, AgentConfig
from control.client import Conflict, ControlClient, Forbidden, NotFound
from control.client.calls import untyped
from control.clock import utcnow
from control.db.tables import DevServer
from control.schedules.scheduler import Scheduler
from control.tlspin import peer_certificate, pinned_context
from control.trust import fingerprint_of
from runner.procfs import pid_alive
from tests.compose.devserver_helpers import gateway_exec, pid_of, start_and_wait, wait_for_state
from tests.devserver.conftest import running_server
from tests.stack import Stack, wait_for_run


def handle_of(stack: Stack, server_id: int) -> str:
    with Session(stack.services.engine) as session:
        server = session.get(DevServer, server_id)
        assert server is not None and server.handle
        return server.handle


def test_start_is_idempotent_and_the_workspace_is_on_the_volume(run_stack: Stack, tmp_path: Path) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        first = client.start_devserver("demo")
        again = client.start_devserver("demo")
        assert again.id == first.id
        server = wait_for_state(client, first.id, "running")
        assert client.start_devserver("demo").state == "running"
        assert [s.id for s in client.list_devservers()] == [first.id]
        assert server.workspace == "workspaces/alice/demo" and server.user == "alice"
        sent = client.send(untyped("GET", f"/devservers/{server.id}"))  # as sent: no model hides a field
        assert sent["id"] == server.id and "secret" not in sent and "endpoint" not in sent
        health = client.devserver_call(server.id, "GET", "/health")
        assert health["ok"] is True
        code, out, _ = gateway_exec(client, server.id, ["sh", "-c", "pwd; echo hi > made-here.txt"])
    workspace = tmp_path / "agent" / "volume" / "workspaces" / "alice" / "demo"
    assert code == 0 and out.decode().strip() == str(workspace)
    assert (workspace / "made-here.txt").read_text() == "hi\n"


def test_only_the_owner_or_an_admin_gets_through(run_stack: Stack) -> None:
    alice, bob = run_stack.user("alice", "developer"), run_stack.user("bob", "developer")
    viewer = run_stack.user("vera", "viewer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
    sid = server.id
    with run_stack.client(bob) as client:
        assert client.list_devservers() == []
        with pytest.raises(NotFound):
            client.get_devserver(sid)
        with pytest.raises(NotFound):
            client.stop_devserver(sid)
        attempts: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/health", {}),
            ("GET", "/files/manifest", {}),
            ("POST", "/exec", {"json": {"argv": ["true"]}}),
            ("GET", "/git/status", {}),
        ]
        for method, path, options in attempts:
            with pytest.raises(NotFound):
                client.devserver_call(sid, method, path, **options)
    with run_stack.client(viewer) as client:
        with pytest.raises(Forbidden):
            client.start_devserver("demo")
        with pytest.raises(Forbidden):
            client.devserver_call(sid, "POST", "/exec", json={"argv": ["true"]})
        assert client.list_devservers() == []
    # WebSocket (the shell) is checked the same way.
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = run_stack.url.replace("http://", "ws://") + f"/api/v1/devservers/{sid}/pty"
    for token, status in ((bob, 404), (viewer, 403), ("dy_nonsense", 401), (None, 401)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=5)
        assert refused.value.response.status_code == status
    # Admins see and reach everyone's.
    with run_stack.client() as admin:
        assert [s.id for s in admin.list_devservers(all_users=True)] == [sid]
        assert admin.list_devservers() == []
        assert admin.devserver_call(sid, "GET", "/health")["ok"] is True


def test_the_develop_server_refuses_anyone_without_its_secret(run_stack: Stack) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
    with Session(run_stack.services.engine) as session:
        row = session.get(DevServer, server.id)
        assert row is not None and row.endpoint is not None
        endpoint = row.endpoint
        assert row.tls_fingerprint is not None
        verify = pinned_context(row.tls_fingerprint)
    assert endpoint.startswith("https://127.0.0.1:")
    # Even a valid API token is useless directly against the develop server.
    for headers in ({}, {"Authorization": f"Bearer {alice}"}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(endpoint + "/exec", json={"argv": ["true"]}, headers=headers, verify=verify)
        assert response.status_code == 401


def test_the_gateway_accepts_only_the_certificate_the_agent_reported(run_stack: Stack, tmp_path: Path) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
    with Session(run_stack.services.engine) as session:
        row = session.get(DevServer, server.id)
        assert row is not None and row.endpoint and row.secret and row.tls_fingerprint
        endpoint, secret, fingerprint = row.endpoint, row.secret, row.tls_fingerprint
    host, port = endpoint.removeprefix("https://").rsplit(":", 1)
    assert fingerprint_of(peer_certificate(host, int(port))) == fingerprint  # what the agent reported
    api = f"{run_stack.url}/api/v1/devservers/{server.id}"
    auth = {"Authorization": f"Bearer {alice}"}
    assert httpx.get(f"{api}/health", headers=auth, timeout=20).status_code == 200

    def point_at(url: str) -> None:
        with Session(run_stack.services.engine) as session:
            row = session.get(DevServer, server.id)
            assert row is not None
            row.endpoint = url
            session.add(row)
            session.commit()

    # An impostor on another port that knows the secret (the worst case): it would answer.
    with running_server(tmp_path / "impostor", secret=secret) as impostor:
        assert httpx.get(impostor.url + "/health", headers=impostor.auth, verify=impostor.ssl).status_code == 200
        point_at(impostor.url)
        try:
            for method, path in (("GET", "/health"), ("GET", "/files/manifest"), ("POST", "/exec")):
                refused = httpx.request(method, f"{api}{path}", headers=auth, json={"argv": ["true"]}, timeout=20)
                assert refused.status_code == 502
                error = refused.json()["error"]
                assert error["code"] == "devserver_certificate_mismatch"
                assert error["message"].count(". ") == 0 and "certificate" in error["message"]
                assert secret not in refused.text
            ws_api = api.replace("http://", "ws://")
            for path in ("/pty", f"/tunnel/{impostor.port}"):
                with pytest.raises(InvalidStatus) as denied:
                    connect(ws_api + path, additional_headers=auth, open_timeout=10)
                assert denied.value.response.status_code == 502
                assert b"devserver_certificate_mismatch" in (denied.value.response.body or b"")
        finally:
            point_at(endpoint)
    assert httpx.get(f"{api}/health", headers=auth, timeout=20).status_code == 200


def test_paths_outside_the_workspace_are_refused_through_the_gateway(run_stack: Stack, tmp_path: Path) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
        sid = server.id
        for path in ("../secret.txt", "/etc/passwd", "a/../../../x", "a\x00b"):
            with pytest.raises(Exception) as refused:
                client.devserver_call(sid, "GET", "/files/read", params={"path": path})
            assert getattr(refused.value, "status", None) == 400, refused.value
            assert "Traceback" not in str(refused.value)


def test_stop_then_start_again_resumes_the_same_workspace(run_stack: Stack) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
        sid = server.id
        assert gateway_exec(client, sid, ["sh", "-c", "echo kept > notes.txt"])[0] == 0
        pid = pid_of(handle_of(run_stack, sid))
        stopping = client.stop_devserver(sid)
        assert stopping.state in ("stopping", "stopped")
        stopped = wait_for_state(client, sid, "stopped")
        assert stopped.stopped_at is not None
        deadline = time.monotonic() + 10
        while pid_alive(pid):
            assert time.monotonic() < deadline, "the develop server process outlived its stop"
            time.sleep(0.05)
        with pytest.raises(Conflict) as not_running:
            client.devserver_call(sid, "GET", "/health")
        assert "stopped" in not_running.value.message
        again = start_and_wait(client, "demo")
        assert again.id == sid
        code, out, _ = gateway_exec(client, sid, ["cat", "notes.txt"])
        assert (code, out) == (0, b"kept\n")
    with run_stack.client() as admin:
        actions = [e.action for e in admin.list_audit(limit=50).items]
    assert actions.count("devserver.start") == 2 and actions.count("devserver.stop") == 1


def test_a_crashed_develop_server_is_restarted_with_its_workspace(run_stack: Stack) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
        sid = server.id
        assert gateway_exec(client, sid, ["sh", "-c", "echo survived > state.txt"])[0] == 0
        first_handle = handle_of(run_stack, sid)
        os.kill(pid_of(first_handle), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            current = client.get_devserver(sid)
            if current.state == "running" and current.restart_count >= 1:
                break
            assert time.monotonic() < deadline, current
            time.sleep(0.05)
        assert handle_of(run_stack, sid) != first_handle
        assert "exited" in (current.error or "") or current.error is None
        code, out, _ = gateway_exec(client, sid, ["cat", "state.txt"])
        assert (code, out) == (0, b"survived\n")


def test_idle_develop_servers_are_stopped_by_the_scheduler_cleanup(run_stack: Stack) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo", idle_timeout_s=60)
        sid = server.id
        # Recent use through the gateway counts as activity.
        client.devserver_call(sid, "GET", "/git/status")
    scheduler = Scheduler(run_stack.services.engine, run_stack.services.store, run_stack.settings)
    _, report = scheduler.clean(utcnow())
    assert report.devservers_stopped == []
    with Session(run_stack.services.engine) as session:
        row = session.get(DevServer, sid)
        assert row is not None
        row.last_activity_at = utcnow() - timedelta(minutes=5)
        session.add(row)
        session.commit()
    _, report = scheduler.clean(utcnow())
    assert report.devservers_stopped == [sid]
    run_stack.services.hub.publish("work")  # the scheduler runs in-process in `yard up`, which wakes agents
    with run_stack.client(alice) as client:
        assert wait_for_state(client, sid, "stopped").state == "stopped"


def test_runs_run_in_the_develop_server_workspace(run_stack: Stack, tmp_path: Path) -> None:
    alice = run_stack.user("alice", "developer")
    with run_stack.client(alice) as client:
        # Alice does not own project demo; without a develop server she cannot run in it.
        with pytest.raises(Forbidden):
            client.create_run("demo", ["true"])
        with pytest.raises(Conflict) as none_running:
            client.create_run("demo", ["true"], in_devserver=True)
        assert "yard dev start" in none_running.value.message
        server = start_and_wait(client, "demo")
        assert gateway_exec(client, server.id, ["sh", "-c", "echo from-workspace > input.txt"])[0] == 0
        run = client.create_run("demo", ["sh", "-c", "pwd; cat input.txt"])
        assert run.devserver_id == server.id
        assert wait_for_run(client, run.id).state == "succeeded"
        log, _ = client.read_logs(run.id)
    workspace = tmp_path / "agent" / "volume" / "workspaces" / "alice" / "demo"
    assert str(workspace).encode() in log and b"from-workspace" in log
    with run_stack.client() as admin:  # the owner of demo
        outside = admin.create_run("demo", ["pwd"], in_devserver=False)
        assert outside.devserver_id is None
        assert wait_for_run(admin, outside.id).state == "succeeded"
        log, _ = admin.read_logs(outside.id)
    assert f"runs/{outside.id}".encode() in log


def _agent(stack: Stack, base: Path, token: str) -> tuple[Agent, threading.Thread]:
    from compose.local import LocalLauncher

    config = AgentConfig(
        name="laptop", queue="default", api_url=stack.url, volume=base / "volume", spool=base / "spool", poll_wait_s=0.5
    )
    agent = Agent(config, ControlClient(stack.url, token), LocalLauncher())
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    return agent, thread


def test_a_restarted_agent_re_adopts_its_develop_servers(sqlite_stack: Stack, tmp_path: Path) -> None:
    token = sqlite_stack.user("agent-laptop", "agent")
    alice = sqlite_stack.user("alice", "developer")
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
    first, thread = _agent(sqlite_stack, tmp_path, token)
    try:
        with sqlite_stack.client(alice) as client:
            server = start_and_wait(client, "demo")
        sid = server.id
        handle = handle_of(sqlite_stack, sid)
    finally:
        first.stop()  # like the agent process ending: its develop servers keep running
        thread.join(10)
    assert pid_alive(pid_of(handle))
    second, thread = _agent(sqlite_stack, tmp_path, token)
    try:
        with sqlite_stack.client(alice) as client:
            deadline = time.monotonic() + 10
            while sid not in second.devservers.servers:
                assert time.monotonic() < deadline, "the new agent did not adopt the develop server"
                time.sleep(0.05)
            assert handle_of(sqlite_stack, sid) == handle
            assert client.devserver_call(sid, "GET", "/health")["ok"] is True
            # Adopted servers are watched like its own: a crash is restarted by the new agent.
            os.kill(pid_of(handle), signal.SIGKILL)
            deadline = time.monotonic() + 20
            while handle_of(sqlite_stack, sid) == handle or client.get_devserver(sid).state != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert client.devserver_call(sid, "GET", "/health")["ok"] is True
    finally:
        second.stop()
        thread.join(10)
        for managed in list(second.devservers.servers.values()):
            if managed.handle:
                second.launcher.stop(managed.handle, grace_s=2)


def test_a_run_in_the_workspace_keeps_its_develop_server_from_the_idle_stop(run_stack: Stack) -> None:
    """The real idle stopper (the scheduler's cleanup) with a real run going in the workspace."""
    alice = run_stack.user("alice", "developer")
    scheduler = Scheduler(run_stack.services.engine, run_stack.services.store, run_stack.settings)

    def idle_for_five_minutes(sid: int) -> None:
        with Session(run_stack.services.engine) as session:
            row = session.get(DevServer, sid)
            assert row is not None
            row.last_activity_at = utcnow() - timedelta(minutes=5)
            session.add(row)
            session.commit()

    with run_stack.client(alice) as client:
        sid = start_and_wait(client, "demo", idle_timeout_s=60).id
        run = client.create_run("demo", ["sh", "-c", "while [ ! -f go-on ]; do sleep 0.05; done; echo done"])
        assert run.devserver_id == sid
        wait_for_run(client, run.id, states=("running",))
        idle_for_five_minutes(sid)
        _, report = scheduler.clean(utcnow())
        assert report.devservers_stopped == []  # the run is activity
        assert client.get_devserver(sid).state == "running"
        assert gateway_exec(client, sid, ["touch", "go-on"])[0] == 0
        assert wait_for_run(client, run.id).state == "succeeded"
        idle_for_five_minutes(sid)
        _, report = scheduler.clean(utcnow())
        assert report.devservers_stopped == [sid]  # idle again once the run is over
