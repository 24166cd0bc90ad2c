"""Scanning a tree with cached hashes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from control.wire.manifest import Entry, HashCache, scan


def build(root: Path) -> None:
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("print('a')\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("src/a.py")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    os.mkfifo(root / "fifo")


def test_scan_lists_files_dirs_and_symlinks_sorted_without_git(tmp_path: Path) -> None:
    build(tmp_path)
    entries = {entry.path: entry for entry in scan(tmp_path, HashCache())}
    assert list(entries) == ["link", "run.sh", "src", "src/a.py"]
    assert entries["src/a.py"].sha256 == hashlib.sha256(b"print('a')\n").hexdigest()
    assert entries["src/a.py"].size == len("print('a')\n")
    assert entries["run.sh"].mode == 0o755
    assert entries["link"] == Entry(
        "link", "symlink", len("src/a.py"), entries["link"].mode, entries["link"].mtime_ns, target="src/a.py"
    )
    assert entries["src"].kind == "dir" and entries["src"].sha256 is None
    assert Entry.from_json(entries["src/a.py"].to_json()) == entries["src/a.py"]


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    build(tmp_path)
    cache = HashCache()
    first = {e.path: e.sha256 for e in scan(tmp_path, cache)}
    target = tmp_path / "src" / "a.py"
    info = target.stat()
    # Same size, same inode, mtime put back: the cache must trust its old hash without reading.
    with open(target, "r+b") as handle:
        handle.write(b"PRINT")
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert {e.path: e.sha256 for e in scan(tmp_path, cache)} == first
    assert cache.hits == 2 and cache.misses == 2


def test_a_changed_file_gets_a_new_hash(tmp_path: Path) -> None:
    build(tmp_path)
    cache = HashCache()
    before = {e.path: e.sha256 for e in scan(tmp_path, cache)}
    (tmp_path / "src" / "a.py").write_text("print('changed')\n")
    after = {e.path: e.sha256 for e in scan(tmp_path, cache)}
    assert after["src/a.py"] == hashlib.sha256(b"print('changed')\n").hexdigest() != before["src/a.py"]
    assert after["run.sh"] == before["run.sh"]


def test_deleted_files_leave_the_cache(tmp_path: Path) -> None:
    build(tmp_path)
    cache = HashCache()
    scan(tmp_path, cache)
    (tmp_path / "run.sh").unlink()
    scan(tmp_path, cache)
    assert len(cache) == 1


def test_skip_sees_directories_with_a_trailing_slash(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.o").write_bytes(b"\0")
    seen: list[str] = []

    def skip(path: str) -> bool:
        seen.append(path)
        return path == "build/"

    paths = [e.path for e in scan(tmp_path, HashCache(), skip)]
    assert "build/" in seen and "src/" in seen and "src/a.py" in seen
    assert not any(p.startswith("build") for p in paths)


def test_rescanning_ten_thousand_cached_files_is_fast(tmp_path: Path) -> None:
    for d in range(100):
        folder = tmp_path / f"d{d:03}"
        folder.mkdir()
        for f in range(100):
            (folder / f"f{f:03}.txt").write_text(f"{d}/{f}\n")
    cache = HashCache()
    assert len(scan(tmp_path, cache)) == 10_100
    started = time.perf_counter()
    entries = scan(tmp_path, cache)
    elapsed = time.perf_counter() - started
    assert len(entries) == 10_100 and cache.misses == 10_000
    assert elapsed < 0.3, f"cached re-scan of 10,000 files took {elapsed:.3f} s"
