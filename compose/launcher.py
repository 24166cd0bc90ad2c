"""The Launcher protocol: how an agent starts and controls work on its substrate.

One module per substrate implements it (``compose.local`` now; Docker and Kubernetes behind
the same four methods). A *handle* is an opaque string the launcher can later resolve again,
also after the agent restarted, so running work is re-adopted rather than lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class LaunchState(StrEnum):
    running = "running"
    exited = "exited"
    unknown = "unknown"


@dataclass(frozen=True)
class LaunchStatus:
    state: LaunchState
    exit_code: int | None = None
    # Why it ended when the substrate knows more than the exit code ("OOMKilled", ...).
    reason: str | None = None


@dataclass(frozen=True)
class LaunchSpec:
    """What to start: a command line with its environment, working directory and limits."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    labels: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    image: str | None = None
    # Where stdout and stderr go (appended); None leaves them with the launcher's own.
    log_path: Path | None = None
    # Host folders the work reads and writes (run folder, spool, workspace, state files). Local
    # processes see them anyway; a container gets each bind-mounted at the same path, so every
    # path in ``argv`` and ``env`` means the same inside and out.
    paths: tuple[Path, ...] = ()


class LaunchError(Exception):
    """The substrate could not start the work; one sentence for the run's error."""


class Launcher(Protocol):
    substrate: str
    # Where a develop server listens and how the control plane reaches it: loopback on a
    # machine (local, Docker with host networking), the cluster network on Kubernetes.
    bind_host: str
    devserver_port: int

    def endpoint(self, handle: str, port: int) -> str:
        """The URL of a develop server that reported ``port`` in its ready file."""
        ...

    def start(self, spec: LaunchSpec) -> str:
        """Start the work and return its handle. Raises :class:`LaunchError`."""
        ...

    def signal(self, handle: str, signum: int) -> bool:
        """Send a signal to the work; False if it is not running."""
        ...

    def stop(self, handle: str, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; returns when it has ended."""
        ...

    def status(self, handle: str) -> LaunchStatus:
        """Whether the work is still running (and its exit code when known)."""
        ...


def command_home(volume: Path) -> Path:
    """HOME for develop servers and runs: a folder on the volume, never the agent's own HOME,
    which on the local substrate holds the operator's client profile (an admin token)."""
    home = volume / "home"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home
