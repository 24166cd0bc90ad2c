"""Listing a tree with content hashes: the manifest both ends of ``yard sync`` compare.

Hashing is the only expensive part, so hashes are cached by (path, size, mtime_ns, inode): an
unchanged tree re-manifests with one ``lstat`` per entry and no reads. Symlinks are listed as
links (never followed) and the top-level ``.git`` is left out (git state syncs separately).
Nothing here knows about HTTP; the sync client uses the same :func:`scan` on its side.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HASH_CHUNK = 1024 * 1024
GIT_DIR = ".git"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file, symlink or directory in a manifest."""

    path: str
    kind: str  # "file" | "symlink" | "dir"
    size: int
    mode: int  # permission bits only
    mtime_ns: int
    sha256: str | None = None  # files only; None if the file could not be read
    target: str | None = None  # symlinks only

    def to_json(self) -> dict[str, Any]:
        """The manifest JSON object for this entry."""
        return {
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "mode": self.mode,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """The inverse of :meth:`to_json` (for the client reading the server's manifest)."""
        return cls(
            path=data["path"],
            kind=data["kind"],
            size=data["size"],
            mode=data["mode"],
            mtime_ns=data["mtime_ns"],
            sha256=data.get("sha256"),
            target=data.get("target"),
        )


class HashCache:
    """SHA-256 digests by path, trusted while the file's size, mtime and inode are unchanged.

    Inode is part of the key because files are replaced by rename: new content at the same size
    and mtime (which a sync applies on purpose) still gets a new inode.
    """

    def __init__(self) -> None:
        self._digests: dict[str, tuple[int, int, int, str]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._digests)

    def digest(self, path: str, full_path: str, st: os.stat_result) -> str | None:
        """The digest of the file at ``full_path`` (stat ``st``), from the cache when still valid."""
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._digests.get(path)
        if cached is not None and cached[:3] == key:
            self.hits += 1
            return cached[3]
        self.misses += 1
        digest = file_sha256(full_path)
        if digest is not None:
            self._digests[path] = (*key, digest)
        return digest

    def seed(self, path: str, st: os.stat_result, digest: str) -> None:
        """Remember the digest of content just written at ``path`` (``st``: its stat after writing)."""
        self._digests[path] = (st.st_size, st.st_mtime_ns, st.st_ino, digest)

    def retain(self, paths: set[str]) -> None:
        """Forget every path not in ``paths`` (files that disappeared)."""
        for gone in self._digests.keys() - paths:
            self._digests.pop(gone, None)


def file_sha256(path: str) -> str | None:
    """The hex SHA-256 of a file's content, or ``None`` if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as source:
            while chunk := source.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


Row = tuple[str, int, int, int, int]  # (path, st_mode, size, mtime_ns, inode); zeros for directories


def scan(
    root: Path,
    cache: HashCache,
    skip: Callable[[str], bool] | None = None,
    *,
    on_dir: Callable[[str], None] | None = None,
    rows: list[Row] | None = None,
    skipped: dict[str, bool] | None = None,
) -> list[Entry]:
    """Every file, symlink and directory under ``root``, sorted by path.

    ``skip`` gets each relative POSIX path, with a trailing ``/`` for directories (so gitignore
    directory patterns work), and returns True to leave it out; a skipped directory is not
    descended into. Other file types (sockets, FIFOs, devices) are left out. Entries that vanish
    during the scan are simply not listed.

    ``on_dir`` is told every directory's full path before it is listed. ``rows`` receives the
    stat data of every listed entry in the order the walk met them, and ``skipped`` every path
    left out (whether it is a directory): what a later walk compares to see nothing changed.
    """
    entries: list[Entry] = []
    seen_files: set[str] = set()
    pending: list[tuple[str, str]] = [(os.fspath(root), "")]
    while pending:
        directory, prefix = pending.pop()
        if on_dir is not None:
            on_dir(directory)
        try:
            listing = list(os.scandir(directory))
        except OSError:
            continue  # vanished or unreadable: nothing below it can be listed
        for item in listing:
            rel = prefix + item.name
            if not prefix and item.name == GIT_DIR:
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = entry_kind(st.st_mode)
            if kind is None or (skip is not None and skip(rel + "/" if kind == "dir" else rel)):
                if skipped is not None:
                    skipped[rel] = kind == "dir"
                continue
            mode = stat.S_IMODE(st.st_mode)
            if rows is not None:
                rows.append(
                    (rel, st.st_mode, 0, 0, 0)
                    if kind == "dir"
                    else (rel, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
                )
            if kind == "dir":
                entries.append(Entry(rel, "dir", 0, mode, st.st_mtime_ns))
                pending.append((item.path, rel + "/"))
            elif kind == "symlink":
                try:
                    target = os.readlink(item.path)
                except OSError:
                    continue
                entries.append(Entry(rel, "symlink", st.st_size, mode, st.st_mtime_ns, target=target))
            else:
                seen_files.add(rel)
                digest = cache.digest(rel, item.path, st)
                entries.append(Entry(rel, "file", st.st_size, mode, st.st_mtime_ns, sha256=digest))
    cache.retain(seen_files)
    entries.sort(key=lambda entry: entry.path)
    return entries


def entry_kind(mode: int) -> str | None:
    """The manifest kind of a file mode: file, dir or symlink; None for anything else."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return None
