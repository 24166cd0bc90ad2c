"""Develop server faults from the issue, with whole-stack processes: kill -9 of a develop server,
and kill -9 of the control API while a shell is open."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.client import ControlClient
from runner.procfs import pid_alive as _alive
from tests.compose.devserver_helpers import gateway_exec, start_and_wait
from tests.e2e.processes import Server
from tests.tui.test_cli_dev import _drive

YARD = str(Path(sys.executable).parent / "yard")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data", {})
    running.start()
    try:
        yield running
    finally:
        running.stop()
        # `yard down`/SIGTERM stops develop servers; after a kill -9 test they may still be up.
        for pid in _devserver_pids(tmp_path / "data"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _devserver_pids(data_dir: Path) -> list[int]:
    return [int(json.loads(p.read_text())["pid"]) for p in (data_dir / "devservers").glob("*/ready.json")]


def test_kill9_of_the_api_ends_the_shell_clearly_and_the_develop_server_lives_on(server: Server) -> None:
    with ControlClient(server.url, server.admin_token) as client:
        client.create_project("demo")
        started = start_and_wait(client, "demo")
        handle = client.get_devserver(started.id)
    [devserver_pid] = _devserver_pids(server.data_dir)
    env = {**os.environ, "DEVYARD_URL": server.url, "DEVYARD_TOKEN": server.admin_token}
    leader, follower = os.openpty()
    shell = subprocess.Popen(
        [YARD, "dev", "shell", "-p", "demo"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
    )
    os.close(follower)
    screen = bytearray()
    try:
        deadline = time.monotonic() + 20
        while not screen.strip():  # the remote prompt: the shell is connected
            assert time.monotonic() < deadline, bytes(screen)
            screen += _read(leader)
        # The prompt can come before the remote shell reads its input (a line typed then may be
        # dropped): ask again until one answer arrives rather than guessing how long that takes.
        while b"shell-is-up\r\n" not in bytes(screen).replace(b"echo shell-is-up", b""):
            assert time.monotonic() < deadline, bytes(screen)
            os.write(leader, b"echo shell-is-up\r")
            screen += _read(leader, quiet=1.0)
        server.kill9()
        code = shell.wait(20)
        screen += _read(leader, quiet=0.5)
    finally:
        if shell.poll() is None:
            shell.kill()
        os.close(leader)
    assert code == 255, bytes(screen)
    assert b"connection to the develop server was lost" in bytes(screen)
    assert b"Traceback" not in bytes(screen)
    assert _alive(devserver_pid), "the develop server died with the API"
    # The API comes back; its agent re-adopts the same develop server process.
    server.start()
    with ControlClient(server.url, server.admin_token) as client:
        after = client.get_devserver(started.id)
        assert after.state == "running" and after.restart_count == handle.restart_count
        code_, out, _ = gateway_exec(client, started.id, ["sh", "-c", "echo $PPID"])
        assert code_ == 0 and out.strip()
    assert _alive(devserver_pid)


def test_kill9_of_a_develop_server_restarts_it_with_its_workspace(server: Server) -> None:
    with ControlClient(server.url, server.admin_token) as client:
        client.create_project("demo")
        sid = start_and_wait(client, "demo").id
        assert gateway_exec(client, sid, ["sh", "-c", "echo precious > data.txt"])[0] == 0
        [pid] = _devserver_pids(server.data_dir)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            info = client.get_devserver(sid)
            if info.state == "running" and info.restart_count == 1:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.05)
        code, out, _ = gateway_exec(client, sid, ["cat", "data.txt"])
        assert (code, out) == (0, b"precious\n")
        code, shell_screen = _drive(
            [YARD, "--profile", "local", "dev", "shell", "-p", "demo"], [b"cat data.txt\r", b"exit\r"]
        )
        assert code == 0 and b"precious" in shell_screen


def _read(fd: int, quiet: float = 0.2) -> bytes:
    import select

    out = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], quiet)
        if not ready:
            return bytes(out)
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk
