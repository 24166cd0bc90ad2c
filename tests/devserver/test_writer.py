"""The batch writer and the change tracker at the unit level (the HTTP side is in test_files.py)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from control.wire.batch import BatchDecoder, PutFile, encode_entry
from control.wire.manifest import HashCache, scan
from devserver import writer as writer_module
from devserver.changes import ChangeTracker
from devserver.paths import BadPath, Workspace
from devserver.writer import TEMP_PREFIX, WorkspaceWriter, remove_stale_temporaries, temp_name

MTIME = 1_600_000_000_123_456_789


def apply(root: Path, files: dict[str, bytes], hashes: HashCache | None = None) -> WorkspaceWriter:
    writer = WorkspaceWriter(Workspace(root), hashes)
    try:
        body = b"".join(encode_entry(PutFile(path, 0o644, MTIME, len(data)), data) for path, data in files.items())
        writer.feed(BatchDecoder(), body)
    finally:
        writer.close()
    return writer


def test_written_files_seed_the_hash_cache(tmp_path: Path) -> None:
    files = {f"pkg/mod{i % 3}/f{i}.txt": f"content {i}\n".encode() * (i + 1) for i in range(30)}
    cache = HashCache()
    apply(tmp_path, files, cache)
    entries = {entry.path: entry for entry in scan(tmp_path, cache)}
    assert cache.misses == 0, "the first manifest after an upload must not read the files again"
    for path, data in files.items():
        assert entries[path].sha256 == hashlib.sha256(data).hexdigest()
        assert entries[path].mtime_ns == MTIME
    (tmp_path / "pkg/mod0/f0.txt").write_bytes(b"changed on the server\n")
    changed = {entry.path: entry for entry in scan(tmp_path, cache)}
    assert changed["pkg/mod0/f0.txt"].sha256 == hashlib.sha256(b"changed on the server\n").hexdigest()


def test_new_and_replaced_files_leave_no_temporary_names(tmp_path: Path) -> None:
    apply(tmp_path, {"a/new.txt": b"one\n", "a/other.txt": b"two\n"})
    (tmp_path / "a" / "link").symlink_to("new.txt")
    apply(tmp_path, {"a/new.txt": b"three\n", "a/link": b"a file now\n"})
    assert (tmp_path / "a" / "new.txt").read_bytes() == b"three\n"
    assert not (tmp_path / "a" / "link").is_symlink()
    assert sorted(os.listdir(tmp_path / "a")) == ["link", "new.txt", "other.txt"]


def test_a_folder_swapped_for_a_symlink_between_batches_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    apply(root, {"a/b/one.txt": b"1\n"})
    os.rename(root / "a", root / "moved")
    (root / "a").symlink_to(outside)
    with pytest.raises(BadPath):
        apply(root, {"a/b/two.txt": b"2\n"})
    assert list(outside.iterdir()) == []


def test_a_symlinked_folder_inside_the_workspace_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to("real")
    apply(tmp_path, {"alias/x.txt": b"x\n", "alias/deeper/y.txt": b"y\n"})
    assert (tmp_path / "real" / "x.txt").read_bytes() == b"x\n"
    assert (tmp_path / "real" / "deeper" / "y.txt").read_bytes() == b"y\n"


def test_many_folders_in_one_batch_stay_within_the_descriptor_limit(tmp_path: Path) -> None:
    files = {f"d{i:03d}/sub/f.txt": b"x" for i in range(300)}
    before = len(os.listdir("/proc/self/fd"))
    writer = WorkspaceWriter(Workspace(tmp_path))
    body = b"".join(encode_entry(PutFile(path, 0o644, MTIME, 1), b"x") for path in files)
    writer.feed(BatchDecoder(), body)
    assert len(os.listdir("/proc/self/fd")) - before <= writer.directories.LIMIT + 2
    writer.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert all((tmp_path / path).read_bytes() == b"x" for path in files)


def test_stale_temporary_files_are_removed_but_not_our_own(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    stale = [tmp_path / f"{TEMP_PREFIX}0badc0de-1234", tmp_path / "sub" / f"{TEMP_PREFIX}old"]
    for path in stale:
        path.write_text("half a file")
    ours = tmp_path / "sub" / temp_name()
    ours.write_text("being written")
    (tmp_path / ".git" / f"{TEMP_PREFIX}x").write_text("git's business")
    (tmp_path / "keep.txt").write_text("content")
    assert remove_stale_temporaries(tmp_path) == 2
    assert not any(path.exists() for path in stale)
    assert ours.exists() and (tmp_path / "keep.txt").exists() and (tmp_path / ".git" / f"{TEMP_PREFIX}x").exists()


def tracked_scan(tracker: ChangeTracker, root: Path) -> str | None:
    started = tracker.begin_scan()
    scan(root, HashCache(), on_dir=tracker.watch)
    return tracker.end_scan(started)


def test_the_change_tracker_sees_every_kind_of_change(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("1")
    tracker = ChangeTracker(tmp_path)
    if not tracker.usable:
        pytest.skip("inotify is not available here")
    changes = [
        lambda: (tmp_path / "a" / "b" / "f.txt").write_text("2"),  # in place, deep down
        lambda: os.utime(tmp_path / "a" / "b" / "f.txt", ns=(1, 1)),
        lambda: os.chmod(tmp_path / "a" / "b" / "f.txt", 0o600),
        lambda: (tmp_path / "new.txt").write_text("new"),
        lambda: (tmp_path / "a" / "b" / "f.txt").unlink(),
        lambda: (tmp_path / "a" / "c").mkdir(),
        lambda: (tmp_path / "a" / "c" / "inside-new-folder.txt").write_text("x"),
        lambda: os.rename(tmp_path / "a" / "c", tmp_path / "c"),
        tracker.bump,  # a write through the server
    ]
    for change in changes:
        token = tracked_scan(tracker, tmp_path)
        assert token is not None and tracker.unchanged_since(token)
        change()
        assert not tracker.unchanged_since(token)


def test_a_change_during_the_scan_gives_no_token(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    tracker = ChangeTracker(tmp_path)
    if not tracker.usable:
        pytest.skip("inotify is not available here")
    started = tracker.begin_scan()
    scan(tmp_path, HashCache(), on_dir=tracker.watch)
    (tmp_path / "a" / "late.txt").write_text("x")
    assert tracker.end_scan(started) is None
    assert not tracker.unchanged_since(tracker.token(started))


def test_git_writes_do_not_count(tmp_path: Path) -> None:
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    tracker = ChangeTracker(tmp_path)
    if not tracker.usable:
        pytest.skip("inotify is not available here")
    token = tracked_scan(tracker, tmp_path)
    assert token is not None
    (tmp_path / ".git" / "objects" / "pack").write_text("x")
    # inotify queues the event within the write itself, and unchanged_since reads the queue first.
    assert tracker.unchanged_since(token)


def _default_acl(folder: Path, other: int) -> bool:
    """Give ``folder`` a default ACL (owner rwx, group r-x, others ``other``); False if the
    file system cannot."""
    import struct

    entries = [(0x01, 7), (0x04, 5), (0x20, other)]  # ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in entries)
    try:
        os.setxattr(folder, "system.posix_acl_default", value)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.parametrize("tmpfile", [True, False])
@pytest.mark.parametrize("acl", [False, True])
def test_files_get_their_mode_whatever_the_umask_or_acl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int, tmpfile: bool, acl: bool
) -> None:
    # An unnamed file is created with its mode and chmod-ed only if the umask or a default ACL
    # took bits away; a named temporary file always is. The result is the same either way, and
    # never a setuid, setgid or sticky bit.
    if acl and not _default_acl(tmp_path, 0):
        pytest.skip("this file system has no POSIX ACLs")
    monkeypatch.setattr(writer_module._IncomingFile, "use_tmpfile", tmpfile)
    modes = {"plain.txt": 0o644, "group.txt": 0o664, "run.sh": 0o755, "private": 0o600, "setuid": 0o4755, "none": 0}
    previous = os.umask(umask)
    try:
        writer = WorkspaceWriter(Workspace(tmp_path))
        try:
            body = b"".join(encode_entry(PutFile(name, mode, MTIME, 3), b"abc") for name, mode in modes.items())
            writer.feed(BatchDecoder(), body)
        finally:
            writer.close()
    finally:
        os.umask(previous)
    for name, mode in modes.items():
        assert stat.S_IMODE(os.lstat(tmp_path / name).st_mode) == mode & 0o777, name
        assert os.lstat(tmp_path / name).st_mtime_ns == MTIME, name
    assert sorted(os.listdir(tmp_path)) == sorted(modes), "no temporary names left"
