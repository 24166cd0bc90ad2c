"""Faults from the issue: the API or the object store going away mid-run, agents dying."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.client import ControlClient
from control.logformat import raw_output
from tests.e2e.processes import AgentProcess, Server, worker_pid
from tests.stack import wait_for_run

LINES = 3000
# Prints LINES numbered lines over about 6 seconds.
PRINTER = [
    sys.executable,
    "-u",
    "-c",
    f"import time\nfor i in range({LINES}):\n    print(f'line {{i:05d}} ' + 'x' * 40)\n    time.sleep(0.002)",
]
EXPECTED = b"".join(b"line %05d " % i + b"x" * 40 + b"\n" for i in range(LINES))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = Server(tmp_path / "data", {"DEVYARD_DATABASE_URL": database_url})
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_kill9_of_the_api_while_a_run_prints_loses_nothing(server: Server) -> None:
    with ControlClient(server.url, server.admin_token) as client:
        client.create_project("demo")
        run = client.create_run("demo", PRINTER)
        wait_for_run(client, run.id, states=("running",))
        time.sleep(1.0)
    server.kill9()
    time.sleep(2.0)  # the command keeps printing into the worker's spool meanwhile
    server.start()
    with ControlClient(server.url, server.admin_token) as client:
        final = wait_for_run(client, run.id, timeout=60)
        blob, _ = client.read_logs(run.id)
    assert final.state == "succeeded", final
    assert raw_output(blob) == EXPECTED
    assert final.log_lines == LINES


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_object_store_stopped_for_30_seconds_loses_nothing(tmp_path: Path, database_url: str, s3_env: object) -> None:
    from tests.services.seaweedfs import S3Service, seaweedfs_s3

    assert isinstance(s3_env, S3Service)
    with seaweedfs_s3(tmp_path / "weed", bucket="outage") as store:
        env = {
            "DEVYARD_DATABASE_URL": database_url,
            "DEVYARD_OBJECT_STORE_URL": f"s3://{store.bucket}/logs",
            "AWS_ENDPOINT_URL": store.endpoint,
        }
        running = Server(tmp_path / "data", env)
        running.start()
        weed = _weed_pid(tmp_path / "weed")
        try:
            with ControlClient(running.url, running.admin_token) as client:
                client.create_project("demo")
                script = "import time\nfor i in range(40):\n    print(f'tick {i}', flush=True)\n    time.sleep(1)"
                run = client.create_run("demo", [sys.executable, "-c", script])
                wait_for_run(client, run.id, states=("running",))
                time.sleep(3)
                os.kill(weed, signal.SIGSTOP)
                try:
                    time.sleep(30)
                    assert client.get_run(run.id).state == "running"
                finally:
                    os.kill(weed, signal.SIGCONT)
                final = wait_for_run(client, run.id, timeout=120)
                blob, _ = client.read_logs(run.id)
        finally:
            running.stop()
    assert final.state == "succeeded", final
    assert raw_output(blob) == b"".join(b"tick %d\n" % i for i in range(40))


def _weed_pid(workdir: Path) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"weed") and any(str(workdir).encode() in part for part in cmdline):
            return int(entry.name)
    raise AssertionError("weed process not found")


@pytest.fixture
def agentless_server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    env = {
        "DEVYARD_DATABASE_URL": database_url,
        "DEVYARD_AGENT": "false",
        "DEVYARD_RUN_LOST_AFTER_S": "3",
        "DEVYARD_HOUSEKEEPING_INTERVAL_S": "0.3",
    }
    running = Server(tmp_path / "data", env)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _agent(server: Server, tmp_path: Path, name: str) -> AgentProcess:
    with ControlClient(server.url, server.admin_token) as client:
        token = client.create_user(name, role="agent").token
        assert token is not None
    return AgentProcess(server.url, token, tmp_path / f"{name}-data", name)


def test_kill9_of_agent_and_worker_marks_the_run_lost(agentless_server: Server, tmp_path: Path) -> None:
    agent = _agent(agentless_server, tmp_path, "doomed")
    try:
        with ControlClient(agentless_server.url, agentless_server.admin_token) as client:
            client.create_project("demo")
            run = client.create_run("demo", ["sleep", "120"])
            running = wait_for_run(client, run.id, timeout=30, states=("running",))
            handle = None
            deadline = time.monotonic() + 10
            while handle is None and time.monotonic() < deadline:
                handle = _handle(agentless_server, run.id)
                time.sleep(0.05)
            assert handle, running
            agent.kill9()
            os.killpg(worker_pid(handle), signal.SIGKILL)
            final = wait_for_run(client, run.id, timeout=30)
        assert final.state == "lost"
        assert "No heartbeat" in str(final.error)
    finally:
        agent.stop()


def _handle(server: Server, run_id: int) -> str | None:
    from sqlalchemy import create_engine, text

    url = os.environ.get("DEVYARD_DATABASE_URL") or server.env.get("DEVYARD_DATABASE_URL", "")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        value = conn.execute(text("SELECT handle FROM runs WHERE id = :id"), {"id": run_id}).scalar()
    engine.dispose()
    return str(value) if value else None


def test_kill9_of_the_agent_alone_lets_the_run_finish(agentless_server: Server, tmp_path: Path) -> None:
    agent = _agent(agentless_server, tmp_path, "flaky")
    try:
        with ControlClient(agentless_server.url, agentless_server.admin_token) as client:
            client.create_project("demo")
            run = client.create_run("demo", ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 1; done"])
            wait_for_run(client, run.id, timeout=30, states=("running",))
            agent.kill9()
            final = wait_for_run(client, run.id, timeout=60)
            blob, _ = client.read_logs(run.id)
        # The worker lives in its own session and keeps heartbeating, so the run is not lost.
        assert final.state == "succeeded", final
        assert raw_output(blob) == b"1\n2\n3\n4\n5\n6\n7\n8\n"
        # With no agent left, the worker still removes the run's own folder once it has reported.
        folder = tmp_path / "flaky-data" / "volume" / "runs" / str(run.id)
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not folder.exists() and folder.parent.is_dir()
    finally:
        agent.stop()
