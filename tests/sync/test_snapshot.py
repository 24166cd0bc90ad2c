"""sync.snapshot.matches on real trees: one process below the threshold, a forked child walking
part of the tree above it, and the same answer either way."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from devserver.manifest import HashCache, Row, scan
from sync import snapshot
from sync.snapshot import matches


def skip(rel: str) -> bool:
    return rel == "build/" or rel.endswith(".log")


def make_tree(root: Path, folders: int = 6, subfolders: int = 3, files: int = 3) -> Path:
    """Folders of files, with what the rules leave out, a ``.git`` and a link."""
    for f in range(folders):
        for s in range(subfolders):
            folder = root / f"pkg{f}" / f"mod{s}"
            folder.mkdir(parents=True)
            for n in range(files):
                (folder / f"file{n}.py").write_text(f"x = {f * s * n}\n")
    (root / "README.md").write_text("# tree\n")
    (root / "pkg0" / "debug.log").write_text("left out\n")
    (root / "build" / "out").mkdir(parents=True)
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "pkg0" / "link").symlink_to("mod0")
    return root


def record(root: Path) -> tuple[dict[str, bool], list[Row]]:
    """What a sync records of the tree: the paths left out and the stat rows, in walk order."""
    rows: list[Row] = []
    skipped: dict[str, bool] = {}
    scan(root, HashCache(), skip, rows=rows, skipped=skipped)
    return skipped, rows


def children() -> dict[int, str]:
    """This process's children (live or zombie) and their state letters, from /proc."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue  # it went while /proc was read
        state, ppid = text.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid():
            found[int(entry)] = state
    return found


def children_reaped() -> int:
    """Page faults of the children reaped so far: grows whenever a forked child ran and was reaped."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


@pytest.fixture(autouse=True)
def _no_child_left() -> Iterator[None]:
    before = set(children())
    yield
    assert {pid: state for pid, state in children().items() if pid not in before} == {}


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a small tree is walked by two processes, whatever threads the test process has.

    In a full test run other modules leave threads behind (database pools, servers of
    session-wide fixtures), and matches() rightly refuses to fork next to them; the thread
    rule itself is tested on its own below. The child only makes system calls, so forking
    here is safe for the test."""
    monkeypatch.setattr(snapshot, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(snapshot, "_may_fork", lambda: True)


def test_no_fork_while_another_thread_runs() -> None:
    assert snapshot._may_fork() == (snapshot._os_threads() == 1 and threading.active_count() == 1)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not snapshot._may_fork()
    finally:
        release.set()
        other.join()


def test_threads_are_counted_by_the_kernel() -> None:
    before = snapshot._os_threads()
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert snapshot._os_threads() == before + 1
    finally:
        release.set()
        other.join()


def shares(rows: list[Row]) -> tuple[list[str], list[str]]:
    """The files this process compares and those the child compares."""
    plan = snapshot._plan(rows)
    assert plan is not None
    _, mine, theirs = plan

    def files(parts: list[snapshot.Part]) -> list[str]:
        return [row[0] for _, start, end in parts for row in rows[start:end] if stat.S_ISREG(row[1])]

    return files(mine), files(theirs)


def test_unchanged_tree_is_walked_by_two_processes(tmp_path: Path, parallel: None) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    mine, theirs = shares(rows)
    assert mine and theirs
    faults = children_reaped()
    assert matches(root, skipped, rows)
    assert children_reaped() > faults  # a child ran, and was reaped


def append(path: Path) -> None:
    with path.open("a") as file:
        file.write("# more\n")


def change_child_file(root: Path, rows: list[Row]) -> None:
    append(root / shares(rows)[1][-1])


def change_parent_file(root: Path, rows: list[Row]) -> None:
    append(root / shares(rows)[0][0])


def add_file(root: Path, rows: list[Row]) -> None:
    (root / "pkg3" / "mod2" / "new.py").write_text("")


def add_root_file(root: Path, rows: list[Row]) -> None:
    (root / "NEW.md").write_text("")


def remove_file(root: Path, rows: list[Row]) -> None:
    (root / "pkg4" / "mod1" / "file2.py").unlink()


def rename_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg2" / "mod1").rename(root / "pkg2" / "mod1b")


def rename_top_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg5").rename(root / "pkg9")


def file_to_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg2" / "mod0" / "file1.py").unlink()
    (root / "pkg2" / "mod0" / "file1.py").mkdir()


def folder_to_link(root: Path, rows: list[Row]) -> None:
    """The same files, but reached through a link: nothing below the root is followed."""
    elsewhere = root.parent / "elsewhere"
    (root / "pkg3").rename(elsewhere)
    (root / "pkg3").symlink_to(elsewhere)


def skipped_folder_to_file(root: Path, rows: list[Row]) -> None:
    shutil.rmtree(root / "build")
    (root / "build").write_text("now a file\n")


def skipped_file_to_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg0" / "debug.log").unlink()
    (root / "pkg0" / "debug.log").mkdir()


CHANGES = [
    change_child_file,
    change_parent_file,
    add_file,
    add_root_file,
    remove_file,
    rename_folder,
    rename_top_folder,
    file_to_folder,
    folder_to_link,
    skipped_folder_to_file,
    skipped_file_to_folder,
]


@pytest.mark.parametrize("change", CHANGES)
def test_any_change_is_found_by_either_process(
    tmp_path: Path, parallel: None, change: Callable[[Path, list[Row]], None]
) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    change(root, rows)
    assert not matches(root, skipped, rows)


def test_a_new_entry_in_the_git_folder_or_a_left_out_one_changes_nothing(tmp_path: Path, parallel: None) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    (root / ".git" / "index").write_text("")
    (root / "build" / "out" / "app.bin").write_text("")
    assert matches(root, skipped, rows)


def test_a_root_reached_through_a_link(tmp_path: Path, parallel: None) -> None:
    root = make_tree(tmp_path / "tree")
    (tmp_path / "link").symlink_to(root)
    skipped, rows = record(tmp_path / "link")
    assert matches(tmp_path / "link", skipped, rows)
    append(root / shares(rows)[1][0])
    assert not matches(tmp_path / "link", skipped, rows)


def test_a_folder_holding_most_of_the_tree_is_split_further(tmp_path: Path, parallel: None) -> None:
    root = make_tree(tmp_path / "tree", folders=1, subfolders=8)  # pkg0 holds nearly all rows
    skipped, rows = record(root)
    plan = snapshot._plan(rows)
    assert plan is not None
    assert [part[0] for part in plan[0]] == ["", "pkg0/"]  # listed alone; its subfolders are shared
    mine, theirs = shares(rows)
    assert mine and theirs
    assert matches(root, skipped, rows)
    append(root / theirs[0])
    assert not matches(root, skipped, rows)


def test_a_tree_below_the_threshold_is_walked_by_one_process(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    assert len(rows) < snapshot.PARALLEL_ROWS
    faults = children_reaped()
    assert matches(root, skipped, rows)
    append(root / "pkg5" / "mod2" / "file2.py")
    assert not matches(root, skipped, rows)
    assert children_reaped() == faults


def test_rows_no_walk_meets_are_refused(tmp_path: Path, parallel: None) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    assert not matches(root, skipped, rows[:-1])
    assert not matches(root, skipped, [*rows, rows[-1]])
    assert not matches(root, skipped, rows[::-1])
    assert not matches(root, skipped, [])


def test_a_killed_child_leaves_its_share_to_this_process(tmp_path: Path, parallel: None) -> None:
    """The child, killed while it walks, answers nothing: this process walks its share itself."""
    root = make_tree(tmp_path / "tree", folders=10, subfolders=10, files=20)
    skipped, rows = record(root)
    command = Path("/proc/self/cmdline").read_bytes()
    before = set(children())
    killed = 0

    def kill_the_walker(signum: int, frame: FrameType | None) -> None:
        nonlocal killed
        for pid, state in children().items():
            with contextlib.suppress(OSError):  # OSError: it went meanwhile
                if pid not in before and state in "RSD" and Path(f"/proc/{pid}/cmdline").read_bytes() == command:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1

    previous = signal.signal(signal.SIGALRM, kill_the_walker)
    try:
        started = time.perf_counter()
        assert matches(root, skipped, rows)
        walk = time.perf_counter() - started
        for attempt in range(300):  # until a few alarms came while the child walked
            signal.setitimer(signal.ITIMER_REAL, walk * (0.1 + attempt % 8 / 10))
            assert matches(root, skipped, rows)
            signal.setitimer(signal.ITIMER_REAL, 0)
            if killed >= 3:
                break
        append(root / shares(rows)[1][0])
        signal.setitimer(signal.ITIMER_REAL, walk * 0.3)
        assert not matches(root, skipped, rows)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert killed


def test_a_tree_without_folders_is_not_shared(tmp_path: Path, parallel: None) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    for n in range(50):
        (root / f"file{n}.txt").write_text(str(n))
    skipped, rows = record(root)
    faults = children_reaped()
    assert matches(root, skipped, rows)
    (root / "file7.txt").write_text("changed")
    assert not matches(root, skipped, rows)
    assert children_reaped() == faults


def test_a_folder_of_files_holding_most_rows_is_not_handed_off_whole(tmp_path: Path, parallel: None) -> None:
    """One flat folder with most of the rows cannot be split: giving it to the child would leave
    this process only waiting for it, so no child is forked."""
    root = tmp_path / "tree"
    (root / "big").mkdir(parents=True)
    (root / "small").mkdir()
    for n in range(300):
        (root / "big" / f"f{n}").write_text(str(n))
    for n in range(5):
        (root / "small" / f"f{n}").write_text(str(n))
    skipped, rows = record(root)
    assert snapshot._plan(rows) is None
    faults = children_reaped()
    assert matches(root, skipped, rows)
    assert children_reaped() == faults


def test_rows_of_the_wrong_shape_mean_changed_not_a_crash(tmp_path: Path, parallel: None) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    for broken in ([(None, 0, 0, 0, 0)] * len(rows), [("pkg0", "16877", 0, 0, 0), *rows[1:]], [[5]] * len(rows)):
        assert not matches(root, skipped, broken)  # type: ignore[arg-type]


def test_interrupted_at_any_moment_only_the_interrupt_escapes(tmp_path: Path, parallel: None) -> None:
    """Ctrl-C (or the watch's SIGTERM handler) may land anywhere, also right after the child was
    waited for: the interrupt propagates, nothing else is raised, and no child is left (checked
    by the autouse fixture)."""
    root = make_tree(tmp_path / "tree", folders=10, subfolders=6, files=20)
    skipped, rows = record(root)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Anywhere but inside the logging module: os.fork runs its at-fork hooks (Python code
        # taking and releasing logging's module lock), and an interrupt there leaves that lock
        # held, so every later test that logs from another thread hangs (seen in a CI-like run:
        # 23 tests whose servers never started). A moment later is as good a test.
        probe = frame
        while probe is not None:
            if f"{os.sep}logging{os.sep}" in probe.f_code.co_filename:
                signal.setitimer(signal.ITIMER_REAL, 0.0002)
                return
            probe = probe.f_back
        raise KeyboardInterrupt

    started = time.perf_counter()
    assert matches(root, skipped, rows)
    walk = time.perf_counter() - started
    previous = signal.signal(signal.SIGALRM, interrupt)
    outcomes: set[str] = set()
    try:
        for attempt in range(150):
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, walk * (attempt % 25) / 20)
                    outcomes.add(f"answered {matches(root, skipped, rows)}")
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                outcomes.add("interrupted")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert outcomes <= {"answered True", "interrupted"}
    assert "interrupted" in outcomes
    lock = getattr(logging, "_lock", None)
    assert lock is None or not lock._is_owned(), "an interrupt left the logging module's lock held"


@pytest.mark.parametrize("call", [1, 2, 3, 4, 5])
def test_an_interrupt_raised_by_the_mask_change_itself_leaves_the_mask_as_it_was(
    tmp_path: Path, parallel: None, monkeypatch: pytest.MonkeyPatch, call: int
) -> None:
    """``signal.pthread_sigmask`` runs pending Python handlers once the mask has changed, so a
    Ctrl-C that arrived just before can raise *out of the call that blocked everything*, its
    return value (the mask to restore) lost. A block leaked that way stays in the process and in
    every process it starts: in a CI run, Ctrl-C, run cancels and `yard down` then did nothing."""
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    real = signal.pthread_sigmask
    calls = 0

    def interrupted_after(how: int, mask: object) -> set[signal.Signals]:
        nonlocal calls
        old = real(how, mask)  # type: ignore[arg-type]
        calls += 1
        if calls == call:
            raise KeyboardInterrupt
        return old

    before = real(signal.SIG_BLOCK, ())
    monkeypatch.setattr(signal, "pthread_sigmask", interrupted_after)
    with pytest.raises(KeyboardInterrupt):
        matches(root, skipped, rows)
    monkeypatch.undo()
    assert calls >= call
    assert real(signal.SIG_BLOCK, ()) == before
