"""kill -9 of a Docker agent process: its containers keep going, a restarted agent re-adopts them
(no duplicate develop server, the run finishes once)."""

from __future__ import annotations

import time
from pathlib import Path

from compose.docker import DockerLauncher, connect
from tests.compose.devserver_helpers import start_and_wait
from tests.e2e.processes import AgentProcess
from tests.stack import Stack, wait_for_run


def test_kill9_of_a_docker_agent_loses_nothing(sqlite_stack: Stack, docker_image: str, tmp_path: Path) -> None:
    launcher = DockerLauncher(connect(), docker_image, "python3")
    before = {c["id"] for c in launcher.labelled()}
    token = sqlite_stack.user("box", "agent")
    env = {"DEVYARD_DOCKER_IMAGE": docker_image}
    data_dir = tmp_path / "agent-data"
    agent = AgentProcess(sqlite_stack.url, token, data_dir, "box", substrate="docker", env=env)
    try:
        with sqlite_stack.client() as client:
            client.create_project("demo")
            sid = start_and_wait(client, "demo", timeout=60).id
            run = client.create_run("demo", ["sh", "-c", "sleep 4; echo done"])
            wait_for_run(client, run.id, timeout=60, states=("running",))
            agent.kill9()
            agent = AgentProcess(sqlite_stack.url, token, data_dir, "box", substrate="docker", env=env)
            assert wait_for_run(client, run.id, timeout=60).state == "succeeded"
            deadline = time.monotonic() + 20
            while client.get_devserver(sid).state != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert client.devserver_call(sid, "GET", "/health")["ok"] is True
            assert client.get_devserver(sid).restart_count == 0
        servers = [c for c in launcher.labelled() if c["labels"].get("devyard.devserver") and c["id"] not in before]
        assert len(servers) == 1 and servers[0]["status"] == "running"  # re-adopted, not started twice
    finally:
        agent.stop()
        for info in launcher.labelled():
            if info["id"] not in before:
                launcher.stop(info["id"], grace_s=1)
