"""The local side of a sync: the tree as the develop server should see it.

Scanning reuses the develop server's own :func:`control.wire.manifest.scan`, so both ends list
entries the same way. Hashing is deferred: a scan only fills in digests the cache already
trusts, and :meth:`LocalTree.hashed` reads a file only when a comparison needs its digest (a
file the workspace lacks, or holds at a different size, is sent without being hashed first;
its digest is computed while it is sent).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

from control.wire.manifest import Entry, HashCache, Row, entry_kind, scan
from sync.ignore import IgnoreRules
from sync.state import LocalHashCache


class _TrustedOnly(HashCache):
    """A view of the local cache for scans: known digests only, nothing is read."""

    def __init__(self, hashes: LocalHashCache, prefix: str = "", whole_tree: bool = True) -> None:
        super().__init__()
        self.hashes = hashes
        self.prefix = prefix
        self.whole_tree = whole_tree

    def digest(self, path: str, full_path: str, st: os.stat_result) -> str | None:
        return self.hashes.cached(self.prefix + path, st)

    def retain(self, paths: set[str]) -> None:
        if self.whole_tree:  # a partial scan must not forget the rest of the tree
            self.hashes.retain(paths)


class LocalTree:
    """One local directory tree, filtered by its ignore rules."""

    def __init__(self, root: Path, rules: IgnoreRules, hashes: LocalHashCache) -> None:
        self.root = root
        self.rules = rules
        self.hashes = hashes
        # The stat data and the left-out paths the last scan met, for sync.snapshot.
        self.last_rows: list[Row] | None = None
        self.last_skipped: dict[str, bool] = {}

    def scan(self) -> dict[str, Entry]:
        """Every synced entry of the tree by path (digests only where already known)."""
        rows: list[Row] = []
        skipped: dict[str, bool] = {}
        entries = scan(self.root, _TrustedOnly(self.hashes), skip=self.rules.skip, rows=rows, skipped=skipped)
        self.last_rows, self.last_skipped = rows, skipped
        return {entry.path: entry for entry in entries}

    def subtree(self, path: str) -> dict[str, Entry]:
        """Every synced entry below the directory ``path`` (not including it)."""
        prefix = path + "/"
        cache = _TrustedOnly(self.hashes, prefix, whole_tree=False)
        entries = scan(self.root / path, cache, skip=lambda rel: self.rules.skip(prefix + rel))
        return {prefix + entry.path: dataclasses.replace(entry, path=prefix + entry.path) for entry in entries}

    def entry(self, path: str) -> Entry | None:
        """``path`` as it is now, or None if it is gone, ignored, not a file/dir/link, or
        reached through a symbolic link (the sync never follows one)."""
        if not self._parents_are_directories(path):
            return None
        full = os.path.join(self.root, path)
        try:
            st = os.lstat(full)
        except OSError:
            return None
        kind = entry_kind(st.st_mode)
        if kind is None or self.rules.skip(path + "/" if kind == "dir" else path):
            return None
        mode = stat.S_IMODE(st.st_mode)
        if kind == "dir":
            return Entry(path, "dir", 0, mode, st.st_mtime_ns)
        if kind == "symlink":
            try:
                target = os.readlink(full)
            except OSError:
                return None
            return Entry(path, "symlink", st.st_size, mode, st.st_mtime_ns, target=target)
        return Entry(path, "file", st.st_size, mode, st.st_mtime_ns, sha256=self.hashes.cached(path, st))

    def hashed(self, entry: Entry) -> Entry | None:
        """``entry`` with its digest (read now unless cached); None if the file cannot be read."""
        if entry.kind != "file" or entry.sha256 is not None:
            return entry
        full = os.path.join(self.root, entry.path)
        try:
            st = os.lstat(full)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        digest = self.hashes.digest(entry.path, full, st)
        if digest is None:
            return None
        return dataclasses.replace(
            entry, size=st.st_size, mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns, sha256=digest
        )

    def _parents_are_directories(self, path: str) -> bool:
        parts = path.split("/")[:-1]
        current = os.fspath(self.root)
        for part in parts:
            current = os.path.join(current, part)
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return False
            except OSError:
                return False
        return True
