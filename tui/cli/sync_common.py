"""What `yard sync` (:mod:`tui.cli.sync`) and its fast start (:mod:`tui.cli.quick_sync`) share:
which tree a sync mirrors, and the words it ends with. Only the standard library."""

from __future__ import annotations

import os
from pathlib import Path

from sync.status import git_root as git_root  # re-exported for tui.cli.sync

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms of every call
if TYPE_CHECKING:
    from typing import Any

    from sync.report import SyncReport


def find_tree(path: Path | None) -> Path | str:
    """The local tree to mirror: PATH, else the git repository around the current directory,
    else it; or, as a string, the sentence saying why PATH cannot be synced."""
    start = (path or Path.cwd()).expanduser().resolve()
    if not start.is_dir():
        return f"{path} is not a directory; give the folder to sync (default: the git repository you are in)."
    repository = git_root(start)
    if path is None:
        return repository or start
    if repository is not None and repository != start:
        return (
            f"{path} is inside the git repository at {repository}; sync the whole repository"
            f" (`yard sync {repository}`) so the workspace stays a checkout of it."
        )
    return start


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"


def describe(report: SyncReport) -> str:
    """One line saying what a sync did (or would do)."""
    verb = "would send" if report.dry_run else "sent"
    parts = []
    if report.files:
        parts.append(f"{report.files:,} file{'s' * (report.files != 1)} ({human_bytes(report.bytes)}) {verb}")
    if report.links:
        parts.append(f"{report.links:,} link{'s' * (report.links != 1)}")
    if report.dirs:
        parts.append(f"{report.dirs:,} folder{'s' * (report.dirs != 1)}")
    if report.deleted:
        parts.append(f"{report.deleted:,} {'to delete' if report.dry_run else 'deleted'}")
    if report.kind == "sync":
        parts.append(f"{report.unchanged:,} unchanged")
    git = report.git
    if git is not None and git.head and git.skipped is None:
        where = git.branch or "detached HEAD"
        if git.moved:
            moved = "would move" if report.dry_run else "moved"
            parts.append(f"git: {where} {moved} to {git.head[:10]} ({git.objects:,} objects)")
        else:
            parts.append(f"git: {where} at {git.head[:10]}")
    return ", ".join(parts) + f" in {report.seconds:.2f} s"


def synced_line(report: SyncReport, root: Path, server_id: Any) -> str:
    """What `yard sync` prints after a sync (not a dry run)."""
    return f"Synced {root} → develop server {server_id}: {describe(report)}."


def document(report: SyncReport, root: Path, project: str, server_id: Any) -> dict[str, Any]:
    """What `yard sync --json` prints."""
    return {**report.to_json(), "root": os.fspath(root), "project": project, "server": server_id}
