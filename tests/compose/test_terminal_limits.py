"""Terminals through the gateway (issue 15 item 11): how many one user and one develop server
may hold, and shells ending promptly when their client goes away."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.compose.devserver_helpers import pid_of, start_and_wait
from tests.compose.test_devservers import handle_of
from tests.stack import Stack, running_agent, running_stack

DROPPED = 12
PER_USER = 6
BURST = 40


@pytest.fixture
def terminal_stack(tmp_path: Path) -> Iterator[Stack]:
    database = f"sqlite:///{tmp_path / 'devyard.db'}"
    with (
        running_stack(tmp_path / "data", database, max_terminals_per_user=PER_USER) as stack,
        running_agent(stack, tmp_path / "agent"),
    ):
        with stack.client() as admin:
            admin.create_project("demo")
        yield stack


def open_terminal(stack: Stack, server_id: int, token: str) -> ClientConnection:
    url = stack.url.replace("http://", "ws://") + f"/api/v1/devservers/{server_id}/pty"
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10)


def shell_pid(terminal: ClientConnection) -> int:
    """The pid of the shell behind ``terminal`` (it prints its own)."""
    terminal.send(b"echo SHELL-PID=$$\n")
    seen = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = terminal.recv(timeout=10)
        seen += message if isinstance(message, bytes) else message.encode()
        found = re.search(rb"SHELL-PID=(\d+)", seen)
        if found:
            return int(found.group(1))
    raise AssertionError(f"no pid in {seen!r}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def wait_until(condition: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def shells_of(server_pid: int) -> set[int]:
    """The live processes whose parent is the develop server (its terminals' shells)."""
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server_pid and fields[0] != b"Z":
            children.add(int(entry))
    return children


def vanish(terminal: ClientConnection) -> None:
    """The client process dies: no close frame, just the socket gone."""
    terminal.socket.shutdown(socket.SHUT_RDWR)
    terminal.socket.close()


def test_a_burst_of_terminals_is_bounded_per_user_and_ends_with_its_clients(terminal_stack: Stack) -> None:
    alice, bob = terminal_stack.user("alice", "developer"), terminal_stack.user("bob", "developer")
    with terminal_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
    with terminal_stack.client(bob) as client:
        bobs = start_and_wait(client, "demo")
    server_pid = pid_of(handle_of(terminal_stack, server.id))
    opened: list[ClientConnection] = []
    refused: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            terminal = open_terminal(terminal_stack, server.id, alice)
        except InvalidStatus as exc:
            with lock:
                refused.append((exc.response.status_code, bytes(exc.response.body or b"")))
        else:
            with lock:
                opened.append(terminal)

    threads = [threading.Thread(target=attempt) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert len(opened) == PER_USER and len(refused) == BURST - PER_USER, (len(opened), refused[:2])
        assert {status for status, _ in refused} == {429}
        assert all(json.loads(body)["error"]["code"] == "too_many_terminals" for _, body in refused)
        wait_until(lambda: len(shells_of(server_pid)) == PER_USER, 10, f"{PER_USER} shells running")
        with open_terminal(terminal_stack, bobs.id, bob) as other:  # the limit is alice's alone
            assert shell_pid(other) > 0
    finally:
        for terminal in opened:
            vanish(terminal)
    took = wait_until(lambda: not shells_of(server_pid), 5, "every shell of a vanished client gone")
    print(f"{PER_USER} shells gone {took:.2f} s after their clients")
    # The count went down with them: alice may open terminals again.
    with open_terminal(terminal_stack, server.id, alice) as again:
        assert shell_pid(again) > 0


def test_shells_end_promptly_when_their_clients_vanish(terminal_stack: Stack) -> None:
    alice = terminal_stack.user("alice", "developer")
    with terminal_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
    terminals = [open_terminal(terminal_stack, server.id, alice) for _ in range(PER_USER)]
    pids = [shell_pid(terminal) for terminal in terminals]
    assert all(alive(pid) for pid in pids)
    for terminal in terminals:
        vanish(terminal)
    took = wait_until(lambda: not any(alive(pid) for pid in pids), 5, "every shell of a vanished client gone")
    print(f"{PER_USER} shells gone {took:.2f} s after their clients")
