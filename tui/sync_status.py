"""The sync state of a local directory, for the status bar and the develop server view.

``yard sync`` keeps its client-side state under ``$XDG_STATE_HOME/devyard/sync/``. This adapter
asks the ``sync`` package for it (imported lazily, so the TUI starts without it) through one
function, ``sync.status.local_status(path) -> mapping or object`` with any of ``last_sync_at``
(datetime or ISO string), ``pending_changes`` (int), ``conflicts`` and ``refused`` (int or
list), ``project``, ``syncing`` (bool) and ``error`` (str), or None for a tree never synced.
Without that function the state is "unknown", never an error. "Sync now" runs ``yard sync PATH --project P --json``, the public command.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control.profiles import Profile
from tui.child_env import yard_environment


@dataclass(frozen=True)
class SyncStatus:
    """What the TUI shows about a directory's sync."""

    state: str
    """unknown, never, synced, pending, syncing, conflicts or error."""
    project: str | None = None
    last_sync_at: datetime | None = None
    pending_changes: int | None = None
    conflicts: int | None = None
    detail: str = ""
    """One sentence about the state, for the develop server view."""


UNKNOWN = SyncStatus("unknown", detail="The sync state is not available in this version.")


def tree_root(start: Path) -> Path:
    """The tree ``yard sync`` mirrors from ``start``: the git repository around it, else it."""
    from sync.status import tree_root as root_of  # imported when a view needs it, not at start

    return root_of(start)


def local_status(path: Path) -> SyncStatus:
    """The sync state of the tree around ``path`` (blocking: call it from a thread worker)."""
    sync_status: Any
    try:
        sync_status = importlib.import_module("sync.status")
    except ImportError:
        sync_status = None
    reader = getattr(sync_status, "local_status", None)
    if reader is None:
        return UNKNOWN
    try:
        raw = reader(path)
    except Exception as exc:  # the sync package's own problems must not take the TUI down
        return SyncStatus("error", detail=f"Could not read the sync state: {exc}")
    if raw is None:
        return SyncStatus("never", detail="This directory has never been synced (`yard sync`).")
    return _from_raw(raw)


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _from_raw(raw: Any) -> SyncStatus:
    last = _field(raw, "last_sync_at")
    if isinstance(last, str):
        try:
            last = datetime.fromisoformat(last.replace("Z", "+00:00"))
        except ValueError:
            last = None
    if isinstance(last, datetime) and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    pending = _field(raw, "pending_changes")
    conflicts = _field(raw, "conflicts")
    if isinstance(conflicts, list | tuple | set):
        conflicts = len(conflicts)
    error = _field(raw, "error")
    refused = _field(raw, "refused")
    if isinstance(refused, list | tuple | set):
        refused = len(refused)
    if error:
        state, detail = "error", str(error)
    elif refused:
        state, detail = "error", f"The develop server refused {refused} path(s) in the last sync."
    elif conflicts:
        state, detail = "conflicts", f"{conflicts} file(s) changed on both sides."
    elif _field(raw, "syncing"):
        state, detail = "syncing", "A sync is running."
    elif pending:
        state, detail = "pending", f"{pending} local change(s) not synced yet."
    elif last is None:
        state, detail = "never", "This directory has never been synced (`yard sync`)."
    else:
        state, detail = "synced", "Everything is synced."
    return SyncStatus(
        state,
        project=_field(raw, "project"),
        last_sync_at=last if isinstance(last, datetime) else None,
        pending_changes=pending if isinstance(pending, int) else None,
        conflicts=conflicts if isinstance(conflicts, int) else None,
        detail=detail,
    )


async def sync_now(path: Path, project: str, profile: Profile) -> str:
    """Run ``yard sync PATH --project P --json`` once against the TUI's API; returns a sentence,
    raises RuntimeError with one."""
    yard = str(Path(sys.executable).parent / "yard")
    env = yard_environment(profile, NO_COLOR="1")
    process = await asyncio.create_subprocess_exec(
        yard,
        "sync",
        str(path),
        "--project",
        project,
        "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(path),
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        reason = lines[-1] if lines else f"`yard sync` exited with {process.returncode}."
        raise RuntimeError(reason.removeprefix("error: "))
    try:
        report = json.loads(out or b"null")
    except ValueError:
        report = None
    if isinstance(report, dict) and isinstance(report.get("files"), int):
        conflicts = report.get("conflicts") or []
        extra = f", {len(conflicts)} conflict(s) kept as copies" if conflicts else ""
        return f"Synced {path}: {report['files']} file(s) sent, {report.get('deleted', 0)} deleted{extra}."
    return f"Synced {path}."
