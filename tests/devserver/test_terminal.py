"""``WS /pty``: a real shell in a real PTY over a real WebSocket."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.devserver.conftest import RunningServer, wait_gone
from tests.waiting import wait_until


@contextmanager
def terminal(server: RunningServer, query: str = "cols=80&rows=24") -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}/pty?{query}", additional_headers=server.auth, open_timeout=10, ssl=server.ssl) as ws:
        yield ws


def read_until(ws: ClientConnection, pattern: bytes, timeout: float = 10.0) -> bytes:
    """Terminal output up to and including the first match of ``pattern`` (a regex)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"never saw {pattern!r} in {seen!r}")
        message = ws.recv(timeout=remaining)
        if isinstance(message, bytes):
            seen += message
    return seen


def foreground_job(shell: int, argv: bytes) -> bool:
    """Whether a child of ``shell`` runs ``argv`` (NUL-separated, as in /proc) and its process
    group is the terminal's foreground group, so a signal sent to that group now reaches it."""
    try:
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    except FileNotFoundError:
        return False
    for child in children:
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() != argv:
                continue
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended meanwhile
            continue
        pgrp, tpgid = int(fields[2]), int(fields[5])  # after "(comm)": state ppid pgrp session tty_nr tpgid
        if pgrp == tpgid:
            return True
    return False


def test_echo_round_trip(server: RunningServer) -> None:
    with terminal(server) as ws:
        ws.send(b"echo round-$((40 + 2))-trip\n")
        read_until(ws, rb"round-42-trip")


def test_resize_is_visible_to_programs(server: RunningServer) -> None:
    with terminal(server, "cols=100&rows=30") as ws:
        ws.send(b"stty size\n")
        read_until(ws, rb"30 100")
        ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
        ws.send(b"stty size\n")
        read_until(ws, rb"43 132")


def test_signal_interrupts_the_foreground_job(server: RunningServer) -> None:
    with terminal(server) as ws:
        ws.send(b"echo shell:$$:\n")
        match = re.search(rb"shell:(\d+):", read_until(ws, rb"shell:\d+:"))
        assert match is not None
        shell = int(match[1])
        ws.send(b"sleep 30; echo after-$((1+1))\n")
        wait_until(lambda: foreground_job(shell, b"sleep\x0030\x00"), message="sleep 30 to be the foreground job")
        ws.send(json.dumps({"type": "signal", "name": "INT"}))
        ws.send(b"echo alive-$((2+2))\n")
        output = read_until(ws, rb"alive-4", timeout=5)
        assert b"after-2" not in output


def test_shell_exit_code_is_reported(server: RunningServer) -> None:
    with terminal(server) as ws:
        ws.send(b"exit 5\n")
        deadline = time.monotonic() + 10
        while True:
            message = ws.recv(timeout=deadline - time.monotonic())
            if isinstance(message, str):
                assert json.loads(message) == {"type": "exit", "code": 5}
                break
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_disconnect_hangs_up_the_shell_and_its_jobs(server: RunningServer) -> None:
    with terminal(server) as ws:
        ws.send(b"sleep 60 &\n")
        ws.send(b"echo pids:$$:$!:end\n")
        match = re.search(rb"pids:(\d+):(\d+):end", read_until(ws, rb"pids:\d+:\d+:end"))
        assert match is not None
        shell_pid, job_pid = int(match[1]), int(match[2])
    assert wait_gone(shell_pid) and wait_gone(job_pid)


def test_bad_size_is_refused(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as caught:
        connect(f"{server.ws_url}/pty?cols=0&rows=24", additional_headers=server.auth, open_timeout=5, ssl=server.ssl)
    assert caught.value.response.status_code == 400


def test_terminals_at_once_are_bounded_per_server(server: RunningServer) -> None:
    from devserver.terminal import MAX_TERMINALS

    with contextlib.ExitStack() as held:
        shells = [held.enter_context(terminal(server)) for _ in range(MAX_TERMINALS)]
        read_until(shells[-1], b"$")  # the last one is a working shell
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{server.ws_url}/pty", additional_headers=server.auth, open_timeout=5, ssl=server.ssl)
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body or b"{}")["error"]["code"] == "too_many_terminals"
    # Each closed terminal gave its place back.
    with terminal(server) as again:
        again.send(b"echo back-$((20+22))\n")
        read_until(again, b"back-42")
