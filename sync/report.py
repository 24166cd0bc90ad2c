"""What a sync reports, and whether the workspace's git state is the local one.

Kept apart from :mod:`sync.engine` and :mod:`sync.gitstate` (which import httpx and pygit2) so
the no-change check (:mod:`sync.unchanged`) and ``yard sync``'s fast start can use them with the
standard library alone; both modules re-export them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast start does without importing typing
if TYPE_CHECKING:
    from typing import Any


@dataclass
class GitReport:
    """What the git part of a sync found and did."""

    branch: str | None = None
    head: str | None = None
    detached: bool = False
    moved: bool = False
    objects: int = 0
    kept_ref: str | None = None
    skipped: str | None = None  # why nothing was done (no repository, no commit yet)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SyncReport:
    """What one sync or push did (or, with ``dry_run``, would do)."""

    kind: str  # "sync" (full, with a manifest check) or "push" (watched paths only)
    dry_run: bool = False
    files: int = 0
    bytes: int = 0
    links: int = 0
    dirs: int = 0
    deleted: int = 0
    unchanged: int = 0
    conflicts: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # only in the workspace, never synced: left there
    unreadable: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    changes: list[dict[str, str]] = field(default_factory=list)  # dry runs: what would be done
    git: GitReport | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether anything was (or would be) changed in the workspace."""
        return bool(self.files or self.links or self.dirs or self.deleted or self.conflicts or self.git_moved)

    @property
    def git_moved(self) -> bool:
        return self.git is not None and self.git.moved

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["git"] = self.git.to_json() if self.git is not None else None
        data["seconds"] = round(self.seconds, 4)
        return data


def head_in_sync(local: GitReport, refs: dict[str, Any]) -> bool:
    """Whether the workspace (its ``/git/refs`` answer) is on the local branch and commit."""
    if local.detached:
        return bool(refs["head"] == local.head)
    name = f"refs/heads/{local.branch}"
    return bool(refs["head"] == name and refs["refs"].get(name) == local.head)
