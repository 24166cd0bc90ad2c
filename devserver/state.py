"""What one develop server process knows about itself: workspace, secret, clocks, live sessions."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from control.wire.manifest import HashCache
from devserver.changes import ChangeTracker
from devserver.listening import MARKER
from devserver.paths import Workspace
from devserver.processes import Sessions
from runner.toolpath import with_tools

# Variables that name credentials of the server's own; a command run in the workspace gets none.
_SECRET_NAME = re.compile(r"DEVYARD_.*(SECRET|TOKEN|PASSWORD|KEY)", re.IGNORECASE)


@dataclass
class ServerState:
    """Shared by every endpoint of one server."""

    workspace: Workspace
    secret: bytes
    log_file: Path | None = None
    started_at: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.time)
    sessions: Sessions = field(default_factory=Sessions)
    hash_cache: HashCache = field(default_factory=HashCache)
    # Scans share the hash cache and git operations share the repository files: one at a time.
    manifest_lock: threading.Lock = field(default_factory=threading.Lock)
    git_lock: threading.Lock = field(default_factory=threading.Lock)
    # Batch uploads write one chunk at a time (see devserver.applier): two writers at once
    # made the kernel and the GIL slower than one.
    write_turn: threading.Lock = field(default_factory=threading.Lock)
    changes: ChangeTracker = field(init=False)

    def __post_init__(self) -> None:
        self.changes = ChangeTracker(Path(self.workspace.root))

    @property
    def root(self) -> Path:
        """The workspace directory (real path)."""
        return Path(self.workspace.root)

    def touch(self) -> None:
        """Record activity (the control plane stops idle servers)."""
        self.last_activity = time.time()

    def child_environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for commands and shells: the server's own minus anything secret, plus ``extra``."""
        secret = self.secret.decode("utf-8", errors="replace")
        env = {
            name: value
            for name, value in os.environ.items()
            if not _SECRET_NAME.fullmatch(name) and secret not in value and secret not in name
        }
        env.update(extra or {})
        env[MARKER] = str(os.getpid())  # what is started here is found again (devserver.listening)
        return with_tools(env, self.root)


def iso_utc(timestamp: float) -> str:
    """``2024-01-02T03:04:05.678Z``."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def version() -> str:
    """The installed devyard version (looked up once, on first use)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("devyard")
    except PackageNotFoundError:
        return "0+unknown"
