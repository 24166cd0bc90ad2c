"""Shared steps for forwarding tests: a TCP target started inside a develop server, socket counts."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from control.client import ControlClient
from tests.compose.devserver_helpers import gateway_exec, start_and_wait
from tests.stack import Stack, running_agent, running_stack
from tests.waiting import wait_until

SERVICES = Path(__file__).resolve().parents[1] / "services"
TARGET = SERVICES / "tcp_target.py"
WEB_TARGET = SERVICES / "web_target.py"


@dataclass
class Target:
    port: int
    pid: int
    state: Path

    def sent(self) -> int:
        """Bytes a ``source`` target has written so far."""
        try:
            return int((self.state / "sent").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0


@contextmanager
def target_in_devserver(
    client: ControlClient, server_id: int, mode: str, state: Path, python: str = sys.executable
) -> Iterator[Target]:
    """A :mod:`tests.services.tcp_target` started by the develop server (in its own session, so it
    outlives the exec that started it, as `nohup cmd &` does), stopped at the end."""
    with started_in_devserver(client, server_id, f"{python} {TARGET} {mode} {state}", state) as ready:
        yield Target(int(ready["port"]), int(ready["pid"]), state)


@contextmanager
def started_in_devserver(
    client: ControlClient, server_id: int, command: str, state: Path, remote_state: str | None = None
) -> Iterator[dict[str, int]]:
    """``command`` started in the background by the develop server; its ``ready.json`` (which
    names its ``pid``) once written to ``state``; the process is killed at the end.

    ``remote_state``: the same folder as the develop server sees it, when that differs (a
    container: its pid is then the container's, and it is killed from inside)."""
    state.mkdir(parents=True, exist_ok=True)
    log = f"{remote_state or state}/log"
    code, _, err = gateway_exec(client, server_id, ["sh", "-c", f"nohup {command} >{log} 2>&1 &"])
    assert code == 0, err
    ready = wait_until(lambda: _read(state / "ready.json"), timeout=30, message=f"{command} to be ready")
    try:
        yield ready
    finally:
        if remote_state is None:
            with suppress(ProcessLookupError):
                os.kill(int(ready["pid"]), signal.SIGKILL)
        else:
            gateway_exec(client, server_id, ["kill", "-9", str(ready["pid"])])


def _read(path: Path) -> dict[str, int] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def tcp_sockets(pid: int) -> int:
    """Open sockets of a process (its fds that are sockets)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def established(*, local_port: int | None = None, remote_port: int | None = None) -> int:
    """Established TCP connections on this host with that local or remote port (IPv4 and IPv6)."""
    return len(peers(local_port=local_port, remote_port=remote_port))


def peers(*, local_port: int | None = None, remote_port: int | None = None) -> list[tuple[int, int]]:
    """``(local port, remote port)`` of the established TCP connections that match."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, remote, state = fields[1], fields[2], fields[3]
                if state != "01":
                    continue
                if local_port is not None and int(local.rsplit(":", 1)[1], 16) != local_port:
                    continue
                if remote_port is not None and int(remote.rsplit(":", 1)[1], 16) != remote_port:
                    continue
                found.append((int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)))
    return found


@dataclass
class Env:
    """A stack, an agent and alice's running develop server for project demo."""

    stack: Stack
    token: str
    server_id: int
    base: Path

    def cli_env(self, token: str | None = None) -> dict[str, str]:
        """The environment of a `yard` process acting as alice (or ``token``'s user)."""
        extra = {"DEVYARD_URL": self.stack.url, "DEVYARD_TOKEN": token or self.token, "DEVYARD_PROJECT": "demo"}
        return {**os.environ, **extra}


@contextmanager
def forward_env(base: Path) -> Iterator[Env]:
    with (
        running_stack(base / "data", f"sqlite:///{base / 'devyard.db'}") as stack,
        running_agent(stack, base / "agent"),
    ):
        with stack.client() as admin:
            admin.create_project("demo")
        token = stack.user("alice", "developer")
        with stack.client(token) as client:
            server = start_and_wait(client, "demo")
        yield Env(stack, token, server.id, base)


def devserver_pid(env: Env, server_id: int) -> int:
    from sqlmodel import Session

    from control.db.tables import DevServer

    with Session(env.stack.services.engine) as session:
        row = session.get(DevServer, server_id)
        assert row is not None and row.handle
        return int(row.handle.split(":")[0])
