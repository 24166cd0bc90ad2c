"""What ``yard sync`` remembers between runs, on the client and never inside the user's tree.

One directory per (control API, workspace, local tree) under
``$XDG_STATE_HOME/devyard/sync/`` holds ``state.json``:

- ``synced``: what the last sync left at each path of the workspace (kind, content digest or
  link target, mode). A workspace entry that differs from it was changed on the develop server
  since, which is how conflicts are recognised.
- ``pending``: what was sent but not confirmed (the connection broke); the workspace may hold
  either version, and neither is a conflict.
- ``hashes``: the local hash cache, by (size, mtime, inode), so an unchanged tree is never read.
- ``rules``: the stamps of the ignore-rule files the last full scan saw (see :mod:`sync.ignore`).

The workspace rather than the develop server's id is in the key: a stopped server comes back as
a new row on the same workspace, and what the workspace holds is what this state describes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from control.wire.manifest import Entry, HashCache, file_sha256

FORMAT = 1
# A file modified this recently may be modified again without its mtime moving (timestamps
# are coarse on many file systems), so its hash is not remembered (git's "racy clean" problem).
RACY_NS = 2_000_000_000
SYMLINK_MODE = 0o777


class Record(NamedTuple):
    """What one workspace path holds: enough to tell whether it changed.

    A tuple, not a dataclass: tens of thousands are made and compared per sync.
    """

    kind: str  # "file" | "symlink" | "dir"
    digest: str | None  # sha256 of a file, target of a symlink, None for a directory
    mode: int

    @classmethod
    def of(cls, entry: Entry) -> Record:
        """The record of a manifest entry (local or remote)."""
        if entry.kind == "symlink":
            return cls("symlink", entry.target, SYMLINK_MODE)  # link modes mean nothing (and differ by OS)
        return cls(entry.kind, entry.sha256 if entry.kind == "file" else None, entry.mode)

    def same_content(self, other: Record) -> bool:
        """Same kind and content (or link target), whatever the modes."""
        return self.kind == other.kind and self.digest == other.digest


class LocalHashCache(HashCache):
    """The develop server's hash cache, made persistent and safe against racily modified files."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = False

    def digest(self, path: str, full_path: str, st: os.stat_result) -> str | None:
        """The file's digest, from the cache while (size, mtime, inode) are unchanged."""
        cached = self.cached(path, st)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        digest = file_sha256(full_path)
        if digest is not None:
            self.remember(path, st, digest)
        return digest

    def cached(self, path: str, st: os.stat_result) -> str | None:
        """The remembered digest if the file is unchanged since, else None (nothing is read)."""
        entry = self._digests.get(path)
        if entry is not None and entry[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return entry[3]
        return None

    def remember(self, path: str, st: os.stat_result, digest: str) -> None:
        """Remember the digest of the file as it was at ``st`` (unless it was modified just now)."""
        if time.time_ns() - st.st_mtime_ns < RACY_NS:
            self.forget(path)
            return
        self._digests[path] = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
        self.changed = True

    def forget(self, path: str) -> None:
        """Drop the digest of ``path``."""
        if self._digests.pop(path, None) is not None:
            self.changed = True

    def retain(self, paths: set[str]) -> None:
        """Forget every path not in ``paths`` (files that disappeared)."""
        before = len(self._digests)
        super().retain(paths)
        self.changed |= len(self._digests) != before

    def to_json(self) -> dict[str, tuple[int, int, int, str]]:
        return self._digests

    def load_json(self, data: dict[str, list[Any]]) -> None:
        self._digests = {path: (v[0], v[1], v[2], v[3]) for path, v in data.items()}


def state_home() -> Path:
    """``$XDG_STATE_HOME/devyard/sync`` (``~/.local/state/devyard/sync`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "devyard" / "sync"


def state_key(api_url: str, workspace: str, root: Path) -> str:
    """The directory name for one (API, workspace, local tree)."""
    text = "\n".join((api_url.rstrip("/"), workspace, os.fspath(root)))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def state_dir(api_url: str, workspace: str, root: Path) -> Path:
    """Where the sync state of one (API, workspace, local tree) is kept."""
    return state_home() / state_key(api_url, workspace, root)


@dataclass
class SyncState:
    """The persistent memory of one (API, workspace, local tree); see the module docstring."""

    directory: Path
    synced: dict[str, Record] = field(default_factory=dict)
    pending: dict[str, Record] = field(default_factory=dict)
    hashes: LocalHashCache = field(default_factory=LocalHashCache)
    rule_stamps: dict[str, Any] = field(default_factory=dict)  # see sync.ignore.IgnoreRules.stamps
    dirty: bool = False

    @property
    def file(self) -> Path:
        return self.directory / "state.json"

    @classmethod
    def load(cls, directory: Path) -> SyncState:
        """The state in ``directory``; an empty one if there is none or it cannot be read."""
        state = cls(directory)
        try:
            data = json.loads(state.file.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                return state
            state.synced = {path: Record._make(value) for path, value in data["synced"].items()}
            state.pending = {path: Record._make(value) for path, value in data["pending"].items()}
            state.hashes.load_json(data["hashes"])
            state.rule_stamps = data.get("rules") or {}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return cls(directory)  # a damaged state only costs hashing again and safe conflict copies
        return state

    def save(self, **about: Any) -> None:
        """Write the state atomically (only if something changed)."""
        if not (self.dirty or self.hashes.changed):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            **about,
            "synced": self.synced,
            "pending": self.pending,
            "hashes": self.hashes.to_json(),
            "rules": self.rule_stamps,
        }
        temp = self.file.with_name(f".state.{os.getpid()}.tmp")
        try:
            # dumps, not dump: only dumps uses the C encoder (the state of 10,000 files: 27 ms instead of 69).
            temp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(temp, self.file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self.dirty = False
        self.hashes.changed = False

    # ------------------------------------------------------------------ updating

    def expect(self, path: str, record: Record) -> None:
        """``record`` is about to be sent to ``path``: until confirmed, either version is ours."""
        self.pending[path] = record
        self.dirty = True

    def confirm(self, path: str, record: Record | None) -> None:
        """The workspace now holds ``record`` at ``path`` (``None``: nothing, it was deleted)."""
        self.pending.pop(path, None)
        if record is None:
            self.synced.pop(path, None)
        else:
            self.synced[path] = record
        self.dirty = True

    def forget_below(self, path: str) -> None:
        """Forget ``path`` and everything under it (a directory deleted in one go)."""
        prefix = path + "/"
        for known in [p for p in self.synced if p == path or p.startswith(prefix)]:
            del self.synced[known]
        for known in [p for p in self.pending if p == path or p.startswith(prefix)]:
            del self.pending[known]
        self.dirty = True

    def put_there(self, path: str) -> bool:
        """Whether a sync ever put something at ``path`` in the workspace (and has not removed it)."""
        return path in self.synced or path in self.pending

    def knows(self, path: str, record: Record) -> bool:
        """Whether the workspace holding ``record`` at ``path`` is explained by our own syncs.

        Only content counts: a mode changed on the develop server loses nothing when replaced.
        """
        return any(
            known is not None and known.same_content(record)
            for known in (self.synced.get(path), self.pending.get(path))
        )
