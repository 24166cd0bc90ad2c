"""A real control API for tests: uvicorn on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from compose.stack.sockets import bind_socket
from control.api.app import create_app
from control.api.connections import protected_protocol
from control.api.services import Services
from control.bootstrap import local_admin_token, prepare_database
from control.client import ControlClient
from control.settings import Settings, load_settings
from control.wire.runs import RunOut


@dataclass
class Stack:
    url: str
    admin_token: str
    services: Services
    settings: Settings

    def client(self, token: str | None = None) -> ControlClient:
        return ControlClient(self.url, self.admin_token if token is None else token)

    def user(self, name: str, role: str) -> str:
        """Create a user with ``role`` and return a token of theirs."""
        with self.client() as admin:
            token = admin.create_user(name, role=role).token
        assert isinstance(token, str)
        return token


@contextmanager
def running_stack(
    data_dir: Path, database_url: str, object_store_url: str | None = None, **overrides: object
) -> Iterator[Stack]:
    # The suite plays several users against one local substrate on purpose; the refusal itself is
    # tested with the setting off (tests/control/test_local_substrate.py).
    overrides.setdefault("local_multi_user", True)
    settings = load_settings(
        data_dir, database_url=database_url, object_store_url=object_store_url, host="127.0.0.1", port=0, **overrides
    )
    services = Services.from_settings(settings)
    prepare_database(services.engine)
    token = local_admin_token(services.engine, "admin", None)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    protocol = protected_protocol(settings.header_timeout_s, settings.max_connections_per_client)
    config = uvicorn.Config(create_app(services), log_level="warning", access_log=False, lifespan="on", http=protocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test control API did not start")
        time.sleep(0.005)
    try:
        yield Stack(f"http://127.0.0.1:{port}", token, services, settings)
    finally:
        server.should_exit = True
        services.events.close()
        thread.join(10)
        sock.close()
        services.engine.dispose()


@contextmanager
def running_agent(
    stack: Stack,
    base: Path,
    name: str = "test-agent",
    queue: str = "default",
    launcher: object | None = None,
    token: str | None = None,
) -> Iterator[Any]:
    """An in-process agent serving ``stack``, with the local launcher unless given another."""
    from compose.agent import Agent, AgentConfig
    from compose.local import LocalLauncher

    token = token or stack.user(name, "agent")
    config = AgentConfig(
        name=name, queue=queue, api_url=stack.url, volume=base / "volume", spool=base / "spool", poll_wait_s=0.5
    )
    agent = Agent(config, ControlClient(stack.url, token), launcher or LocalLauncher())  # type: ignore[arg-type]
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop()
        thread.join(10)
        # Workers and develop servers outlive agents by design; a test must not leave its own behind.
        for handle in list(agent.runs.values()):
            agent.launcher.stop(handle, grace_s=1)
        for server in list(agent.devservers.servers.values()):
            if server.handle:
                agent.launcher.stop(server.handle, grace_s=2)


def wait_for_run(client: ControlClient, run_id: int, timeout: float = 30, states: tuple[str, ...] = ()) -> RunOut:
    """Poll until the run is finished (or in one of ``states``)."""
    finished = ("succeeded", "failed", "cancelled", "timed_out", "lost")
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_run(run_id)
        if run.state in (states or finished):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.state} after {timeout} s")
        time.sleep(0.05)
