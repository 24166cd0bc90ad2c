"""A small summary of the last sync of a tree, for the TUI's status bar and develop server view.

Every save of the sync state also writes ``status.json`` next to it: when the last sync or push
happened, for which tree and workspace, and how many conflicts and refusals it had. The TUI
reads it with :func:`local_status` every few seconds, so it is a file of a few hundred bytes,
never the whole state.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync.state import state_home

STATUS_FILE = "status.json"


def about(root: Path, server_id: int, workspace: str, api_url: str) -> dict[str, Any]:
    """What the state and summary of the sync of ``root`` to a develop server say about the pair."""
    return {
        "root": os.fspath(root),
        "server": server_id,
        "workspace": workspace,
        "project": workspace.rsplit("/", 1)[-1],
        "api_url": api_url,
    }


def write_status(directory: Path, **fields: Any) -> None:
    """Replace the summary in ``directory`` (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"last_sync_at": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
    temp = directory / f".{STATUS_FILE}.{os.getpid()}.tmp"
    temp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temp, directory / STATUS_FILE)


def git_root(start: Path) -> Path | None:
    """The working tree of the git repository around ``start``, if any."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def tree_root(start: Path) -> Path:
    """The tree ``yard sync`` mirrors from ``start``: the git repository around it, else it."""
    start = start.expanduser().resolve()
    return git_root(start) or start


def local_status(path: Path) -> dict[str, Any] | None:
    """The summary of the most recent sync of the tree around ``path`` (to any develop server),
    or None if it was never synced: ``last_sync_at``, ``project``, ``conflicts``, ``refused``."""
    root = os.fspath(tree_root(path))
    newest: tuple[float, dict[str, Any]] | None = None
    for status_file in state_home().glob(f"*/{STATUS_FILE}"):
        try:
            data = json.loads(status_file.read_text(encoding="utf-8"))
            written = status_file.stat().st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("root") == root and (newest is None or written > newest[0]):
            newest = (written, data)
    return newest[1] if newest is not None else None
