"""The Docker substrate against a real engine: runs and develop servers as containers.

The image is built offline (tests/services/docker.py). Containers use the host network, so the
run worker reaches the test's control API on 127.0.0.1 like a local process would.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from compose.docker import DockerLauncher, connect
from compose.launcher import LaunchError, LaunchSpec, LaunchState
from control.db.tables import DevServer
from control.tlspin import peer_certificate
from control.trust import fingerprint_of
from tests.compose.devserver_helpers import gateway_exec, start_and_wait, wait_for_state
from tests.stack import Stack, running_agent, wait_for_run


@pytest.fixture
def launcher(docker_image: str) -> Iterator[DockerLauncher]:
    launcher = DockerLauncher(connect(), docker_image, "/opt/devyard/venv/bin/python")
    before = {c["id"] for c in launcher.labelled()}
    launcher.preexisting = before  # type: ignore[attr-defined]
    yield launcher
    # Leave no containers of ours behind, whatever the test did.
    for info in launcher.labelled():
        if info["id"] not in before:
            launcher.stop(info["id"], grace_s=1)


@pytest.fixture
def docker_stack(sqlite_stack: Stack, tmp_path: Path, launcher: DockerLauncher) -> Iterator[Stack]:
    with running_agent(sqlite_stack, tmp_path / "agent", name="docker-agent", launcher=launcher):
        with sqlite_stack.client() as admin:
            admin.create_project("demo")
        yield sqlite_stack


def containers_of(launcher: DockerLauncher, label: str, value: str) -> list[dict[str, Any]]:
    """This test's containers with that label (not ones other stacks on the engine started)."""
    old: set[str] = getattr(launcher, "preexisting", set())
    return [c for c in launcher.labelled() if c["labels"].get(label) == value and c["id"] not in old]


def test_a_run_runs_in_a_container_with_its_log_and_exit_code(
    docker_stack: Stack, launcher: DockerLauncher, tmp_path: Path
) -> None:
    script = "cat /etc/debian_version; id -u; pwd; mkdir out && echo x > out/f; echo to-stderr >&2; exit 3"
    with docker_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script])
        assert wait_for_run(client, run.id, timeout=60).state == "failed"
        final = client.get_run(run.id)
        log, _ = client.read_logs(run.id)
    from control.logformat import raw_output

    out = raw_output(log).decode()
    lines = out.splitlines()
    assert final.exit_code == 3
    assert lines[-1] == "to-stderr"  # one channel for both streams: stored in the order written
    stdout = lines[:-1]
    assert stdout[0].count(".") == 1 and stdout[0][0].isdigit()  # Debian's version file: inside the image
    assert stdout[1] == str(os.getuid())  # files on the volume belong to the agent's user
    assert stdout[2].endswith(f"/volume/runs/{run.id}")
    assert "to-stderr" in lines
    # The worker empties the run's folder (a mount point in its container), and the agent
    # removes it once the container is gone.
    folder = tmp_path / "agent" / "volume" / "runs" / str(run.id)
    deadline = time.monotonic() + 20
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists()


def test_a_run_in_a_container_keeps_its_order_and_gets_a_terminal_with_tty(docker_stack: Stack) -> None:
    order = 'for i in $(seq 1 2000); do echo "step $i"; done; echo "error: last" >&2'
    terminal = "test -t 1 && echo terminal; stty size <&1; printf 'a\\nb'"
    with docker_stack.client() as client:
        ordered = client.create_run("demo", ["sh", "-c", order])
        tty = client.create_run("demo", ["sh", "-c", terminal], tty=True, tty_cols=90, tty_rows=20)
        for run in (ordered, tty):
            assert wait_for_run(client, run.id, timeout=60).state == "succeeded"
        ordered_log, _ = client.read_logs(ordered.id)
        tty_log, _ = client.read_logs(tty.id)
    from control.logformat import raw_output

    assert raw_output(ordered_log) == "".join(f"step {i}\n" for i in range(1, 2001)).encode() + b"error: last\n"
    assert raw_output(tty_log) == b"terminal\n20 90\na\nb"  # no \\r added by the terminal


def test_containers_are_labelled_and_ended_ones_are_reaped(launcher: DockerLauncher, tmp_path: Path) -> None:
    spec = LaunchSpec(
        name="devyard-test-label",
        argv=["sh", "-c", "exit 7"],
        env={},
        cwd=tmp_path,
        labels={"devyard.run": "4242"},
        paths=(tmp_path,),
    )
    handle = launcher.start(spec)
    assert containers_of(launcher, "devyard.run", "4242")[0]["id"] == handle
    deadline = time.monotonic() + 30
    while (status := launcher.status(handle)).state is LaunchState.running:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (status.state, status.exit_code) == (LaunchState.exited, 7)
    assert containers_of(launcher, "devyard.run", "4242") == []  # status removed it once read


def test_an_agent_reaps_ended_containers_when_it_starts(
    sqlite_stack: Stack, tmp_path: Path, launcher: DockerLauncher
) -> None:
    spec = LaunchSpec(name="devyard-test-orphan", argv=["true"], env={}, cwd=tmp_path, labels={"devyard.run": "77"})
    handle = launcher.start(spec)
    launcher.client.containers.get(handle).wait(timeout=30)
    assert [c["status"] for c in containers_of(launcher, "devyard.run", "77")] == ["exited"]
    with running_agent(sqlite_stack, tmp_path / "agent", name="reaper", launcher=launcher):
        deadline = time.monotonic() + 15
        while containers_of(launcher, "devyard.run", "77"):
            assert time.monotonic() < deadline, "the agent did not remove the ended container"
            time.sleep(0.1)


def test_a_missing_image_is_one_clear_error(launcher: DockerLauncher, tmp_path: Path) -> None:
    spec = LaunchSpec(name="devyard-test-missing", argv=["true"], env={}, cwd=tmp_path, image="devyard-nope:missing")
    with pytest.raises(LaunchError) as refused:
        launcher.start(spec)
    assert str(refused.value).startswith("Docker image devyard-nope:missing is not on this host")


def test_an_environment_with_a_missing_image_fails_its_run_saying_so(docker_stack: Stack) -> None:
    with docker_stack.client() as client:
        client.create_environment("demo", "broken", image="devyard-nope:missing")
        run = client.create_run("demo", ["true"], environment="broken")
        final = wait_for_run(client, run.id, timeout=60)
    assert final.state == "failed"
    assert "Docker image devyard-nope:missing is not on this host" in str(final.error)


def test_a_run_whose_container_is_killed_fails_with_the_reason(docker_stack: Stack, launcher: DockerLauncher) -> None:
    with docker_stack.client() as client:
        run = client.create_run("demo", ["sleep", "60"])
        wait_for_run(client, run.id, timeout=60, states=("running",))
        [container] = containers_of(launcher, "devyard.run", str(run.id))
        launcher.client.containers.get(container["id"]).kill()
        final = wait_for_run(client, run.id, timeout=30)
    assert final.state == "failed"
    assert "killed" in str(final.error) and "137" in str(final.error)


def recorded_certificate(stack: Stack, server_id: int) -> str:
    """The fingerprint recorded for a running develop server, checked against what its port presents."""
    with Session(stack.services.engine) as session:
        row = session.get(DevServer, server_id)
        assert row is not None and row.endpoint and row.tls_fingerprint
        endpoint, fingerprint = row.endpoint, row.tls_fingerprint
    assert endpoint.startswith("https://")
    host, port = endpoint.removeprefix("https://").rsplit(":", 1)
    assert fingerprint_of(peer_certificate(host, int(port))) == fingerprint
    return fingerprint


def test_develop_servers_run_in_containers_and_are_restarted(docker_stack: Stack, launcher: DockerLauncher) -> None:
    alice = docker_stack.user("alice", "developer")
    with docker_stack.client(alice) as client:
        server = client.start_devserver("demo")
        server = wait_for_state(client, server.id, "running", timeout=60)
        sid = server.id
        code, out, _ = gateway_exec(
            client, sid, ["sh", "-c", "cat /etc/debian_version >/dev/null && pwd && echo kept > f.txt && ls .."]
        )
        assert code == 0
        pwd, *siblings = out.decode().split()
        assert pwd.endswith("/workspaces/alice/demo")
        assert siblings == ["demo"]  # only its own workspace of the volume is mounted
        first_pin = recorded_certificate(docker_stack, sid)  # reached over TLS, pinned
        [container] = containers_of(launcher, "devyard.devserver", str(sid))
        launcher.client.containers.get(container["id"]).kill()
        deadline = time.monotonic() + 60
        while True:
            current = client.get_devserver(sid)
            if current.state == "running" and current.restart_count >= 1:
                break
            assert time.monotonic() < deadline, current
            time.sleep(0.1)
        assert gateway_exec(client, sid, ["cat", "f.txt"])[:2] == (0, b"kept\n")
        assert recorded_certificate(docker_stack, sid) != first_pin  # a new key per start
        client.stop_devserver(sid)
        wait_for_state(client, sid, "stopped", timeout=60)
    assert containers_of(launcher, "devyard.devserver", str(sid)) == []


def test_a_restarted_docker_agent_re_adopts_its_containers(
    sqlite_stack: Stack, tmp_path: Path, launcher: DockerLauncher
) -> None:
    token = sqlite_stack.user("docker-agent", "agent")
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
    with running_agent(sqlite_stack, tmp_path / "agent", name="box", launcher=launcher, token=token) as first:
        with sqlite_stack.client() as client:
            sid = start_and_wait(client, "demo", timeout=60).id
            run = client.create_run("demo", ["sh", "-c", "sleep 3; echo finished"])
            wait_for_run(client, run.id, timeout=60, states=("running",))
        # Stopping an agent never stops its work (the fixture would; take the servers away from it).
        first.devservers.servers.clear()
        first.runs.clear()
    [container] = containers_of(launcher, "devyard.devserver", str(sid))
    with running_agent(sqlite_stack, tmp_path / "agent", name="box", launcher=launcher, token=token) as second:
        deadline = time.monotonic() + 20
        while sid not in second.devservers.servers:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with sqlite_stack.client() as client:
            assert wait_for_run(client, run.id, timeout=60).state == "succeeded"
            assert client.get_devserver(sid).restart_count == 0
            assert client.devserver_call(sid, "GET", "/health")["ok"] is True
        assert [c["id"] for c in containers_of(launcher, "devyard.devserver", str(sid))] == [container["id"]]


def test_two_docker_agents_on_one_queue_never_launch_a_run_twice(
    sqlite_stack: Stack, tmp_path: Path, launcher: DockerLauncher
) -> None:
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
    launched: list[str] = []
    lock = threading.Lock()
    original = launcher.start

    def counting_start(spec: LaunchSpec) -> str:
        handle = original(spec)
        with lock:
            launched.append(spec.labels.get("devyard.run", "?"))
        return handle

    launcher.start = counting_start  # type: ignore[method-assign]
    with (
        running_agent(sqlite_stack, tmp_path / "a", name="box-a", launcher=launcher),
        running_agent(sqlite_stack, tmp_path / "b", name="box-b", launcher=launcher),
        sqlite_stack.client() as client,
    ):
        runs = [client.create_run("demo", ["true"]) for _ in range(8)]
        finals = [wait_for_run(client, r.id, timeout=90) for r in runs]
    assert all(f.state == "succeeded" for f in finals), finals
    assert sorted(launched) == sorted(str(r.id) for r in runs)
    assert len({f.agent_id for f in finals}) >= 1


def test_docker_unavailable_is_one_sentence() -> None:
    from compose.docker import DockerUnavailable

    with pytest.raises(DockerUnavailable) as refused:
        connect("unix:///nonexistent/docker.sock")
    assert (
        str(refused.value) == "Cannot reach the Docker engine at unix:///nonexistent/docker.sock; is dockerd running?"
    )


def test_an_unreachable_engine_is_not_mistaken_for_ended_work(tmp_path: Path) -> None:
    """While dockerd restarts nothing is known about containers: they must not be reported as
    exited (that would restart develop servers twice and fail runs that are fine)."""
    import docker

    down = DockerLauncher(
        docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41"), "devyard:test", "python3"
    )
    status = down.status("0123456789ab")
    assert (status.state, status.reason) == (LaunchState.running, "engine unreachable")
    assert down.signal("0123456789ab", 15) is False
    down.stop("0123456789ab", grace_s=0)  # no exception
    with pytest.raises(LaunchError, match="The Docker engine did not answer"):
        down.start(LaunchSpec(name="devyard-x", argv=["true"], env={}, cwd=tmp_path, image="devyard:test"))


def test_yard_up_with_the_docker_substrate_end_to_end(docker_image: str, tmp_path: Path) -> None:
    """`DEVYARD_SUBSTRATE=docker yard up`: runs and develop servers in containers, through the CLI."""
    from tests.tui.test_cli import yard

    env = {"DEVYARD_SUBSTRATE": "docker", "DEVYARD_DOCKER_IMAGE": docker_image}
    data_dir = tmp_path / "data"
    up = yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0", env=env)
    assert up.returncode == 0, up.stderr
    launcher = DockerLauncher(connect(), docker_image, "python3")
    try:
        assert yard("projects", "add", "demo").returncode == 0
        result = yard(
            "run", "-p", "demo", "--", "sh", "-c", "cat /etc/debian_version >/dev/null && echo in-a-container"
        )
        assert (result.returncode, result.stdout) == (0, "in-a-container\n"), result.stderr
        assert yard("dev", "start", "-p", "demo").returncode == 0
        [server] = [c for c in launcher.labelled() if c["labels"].get("devyard.devserver") and c["status"] == "running"]
        exec_result = yard("dev", "exec", "-p", "demo", "--", "sh", "-c", "echo $PWD")
        assert exec_result.stdout.strip().endswith(
            "/volume/workspaces/" + exec_result.stdout.strip().split("/")[-2] + "/demo"
        )
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0
    # `yard down` stops the develop server containers it started.
    assert server["id"] not in {c["id"] for c in launcher.labelled() if c["status"] == "running"}


def test_yard_up_says_when_docker_is_not_there(tmp_path: Path) -> None:
    from tests.tui.test_cli import assert_one_sentence_error, yard

    env = {"DEVYARD_SUBSTRATE": "docker", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = yard("up", "--detach", "--data-dir", str(tmp_path / "data"), "--port", "0", env=env)
    assert_one_sentence_error(result, "Cannot reach the Docker engine at unix:///nonexistent/docker.sock")
