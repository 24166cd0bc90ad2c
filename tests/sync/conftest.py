"""Two stacks: a control API with an in-process agent (SQLite) shared by a test module, with a
fresh develop server and workspace for each test, reached only through the gateway as `yard sync`
does; and a real embedded stack (`yard up --detach`) shared by the CLI tests."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from control.client import ControlClient
from control.wire.devservers import DevServerOut
from sync.engine import SyncEngine
from tests.compose.devserver_helpers import start_and_wait
from tests.stack import Stack, running_agent, running_stack
from tests.tui.test_cli import YARD

_projects = itertools.count(1)


@pytest.fixture(autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sync state of each test in its own place (never the developer's ~/.local/state)."""
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@dataclass
class AgentStack:
    stack: Stack
    base: Path

    @property
    def volume(self) -> Path:
        return self.base / "agent" / "volume"


@pytest.fixture(scope="module")
def agent_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentStack]:
    base = tmp_path_factory.mktemp("stack")
    with (
        running_stack(base / "data", f"sqlite:///{base / 'devyard.db'}") as stack,
        running_agent(stack, base / "agent"),
    ):
        yield AgentStack(stack, base)


@dataclass
class Workspace:
    """A running develop server and where its workspace is on disk (for checking only)."""

    client: ControlClient
    server: DevServerOut
    path: Path
    base: Path

    @property
    def server_id(self) -> int:
        return self.server.id

    def engine(self, root: Path) -> SyncEngine:
        return SyncEngine.open(self.client, self.server_id, str(self.server.workspace), root)

    def pid(self) -> int:
        """The develop server's process id, from the ready file its agent keeps."""
        for path in (self.base / "agent").glob(f"**/{self.server_id}/ready.json"):
            return int(json.loads(path.read_text())["pid"])
        raise AssertionError(f"no ready file for develop server {self.server_id}")


@pytest.fixture
def workspace(agent_stack: AgentStack) -> Iterator[Workspace]:
    name = f"sync{next(_projects)}"
    with agent_stack.stack.client() as client:
        client.create_project(name)
        server = start_and_wait(client, name)
        assert server.workspace is not None
        yield Workspace(client, server, agent_stack.volume / server.workspace, agent_stack.base)
        client.stop_devserver(server.id)


@dataclass
class YardStack:
    """`yard up --detach` shared by the CLI tests of this folder; each test uses its own project."""

    data_dir: Path
    env: dict[str, str]

    def yard(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The real `yard` console script, not attached to a terminal."""
        return subprocess.run(
            [YARD, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="package")
def yard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YardStack]:
    base = tmp_path_factory.mktemp("yard")
    home = {
        "HOME": str(base / "home"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_DATA_HOME": str(base / "data-home"),
        "XDG_STATE_HOME": str(base / "state"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")} | home
    data_dir = base / "data"
    up = subprocess.run(
        [YARD, "up", "--detach", "--data-dir", str(data_dir), "--port", "0"], env=env, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    profile = tomllib.loads((base / "config" / "devyard" / "config.toml").read_text())["profiles"]["local"]
    # Tests get their own config home (tests/conftest.py): the stack is named by the environment.
    env |= {"DEVYARD_URL": profile["url"], "DEVYARD_TOKEN": profile["token"]}
    try:
        yield YardStack(data_dir, env)
    finally:
        down = subprocess.run([YARD, "down", "--data-dir", str(data_dir)], env=env, capture_output=True, text=True)
        assert down.returncode == 0, down.stderr


@pytest.fixture
def project(yard_stack: YardStack) -> str:
    """A new project on the shared stack, named like the repository a test clones."""
    name = f"shop{next(_projects)}"
    created = yard_stack.yard("projects", "add", name)
    assert created.returncode == 0, created.stderr
    return name
