"""Planning a sync: what is sent, deleted, and kept as a conflict copy (pure functions)."""

from __future__ import annotations

from control.wire.manifest import Entry
from sync.plan import conflict_name, make_plan, needs_digest, outermost
from sync.state import Record

STAMP = "20250102T030405Z"


def file(path: str, digest: str | None = "a" * 64, size: int = 3, mode: int = 0o644) -> Entry:
    return Entry(path, "file", size, mode, 1, sha256=digest)


def folder(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", 0, mode, 1)


def link(path: str, target: str) -> Entry:
    return Entry(path, "symlink", len(target), 0o777, 1, target=target)


def by_path(*entries: Entry) -> dict[str, Entry]:
    return {entry.path: entry for entry in entries}


def nothing_known(path: str, record: Record) -> bool:
    return False


def test_local_is_the_source_of_truth() -> None:
    local = by_path(folder("src"), file("src/a.py", "1" * 64), file("src/new.py"), link("ln", "src/a.py"))
    remote = by_path(folder("src"), file("src/a.py", "2" * 64), file("old.txt"), folder("gone"), file("gone/x"))
    synced = {p: Record.of(e) for p, e in remote.items()}
    plan = make_plan(local, remote, lambda path, record: synced.get(path) == record, STAMP)
    assert plan.conflicts == []
    assert plan.deletes == ["gone", "old.txt"]  # gone/x goes with its folder
    assert [(e.path, e.kind) for e in plan.puts] == [("ln", "symlink"), ("src/a.py", "file"), ("src/new.py", "file")]
    assert plan.unchanged == 1  # the folder src


def test_a_remote_change_since_the_last_sync_is_a_conflict_kept_aside() -> None:
    local = by_path(file("notes.md", "1" * 64), file("other.txt"))
    remote = by_path(file("notes.md", "9" * 64), file("made-there.csv", "8" * 64), link("ln", "x"))
    synced = {"notes.md": Record("file", "0" * 64, 0o644)}  # what the last sync left there
    plan = make_plan(local, remote, lambda path, record: synced.get(path) == record, STAMP)
    assert [(c.path, c.kept_as) for c in plan.conflicts] == [
        ("notes.md", f"notes.md.remote-{STAMP}"),
        ("made-there.csv", f"made-there.csv.remote-{STAMP}"),
        ("ln", f"ln.remote-{STAMP}"),
    ]
    # ...and the local version still wins.
    assert plan.deletes == ["ln", "made-there.csv"]
    assert {e.path for e in plan.puts} == {"notes.md", "other.txt"}


def test_no_conflict_when_nothing_would_be_lost() -> None:
    same = file("same.txt", "5" * 64)
    remote = by_path(
        file("same.txt", "5" * 64, mode=0o600),  # only the mode differs
        folder("made-there"),  # folders hold no content of their own
        file("unreadable", None),  # the develop server could not read it: nothing to keep
    )
    plan = make_plan(by_path(same), remote, nothing_known, STAMP)
    assert plan.conflicts == []
    assert [e.path for e in plan.puts] == ["same.txt"]  # sent again for the mode


def test_kind_changes_delete_first() -> None:
    local = by_path(file("x"), folder("y"), file("y/z"))
    remote = by_path(folder("x"), file("x/inner"), file("y"))
    synced = {p: Record.of(e) for p, e in remote.items()}
    plan = make_plan(local, remote, lambda path, record: synced.get(path) == record, STAMP)
    assert plan.deletes == ["x", "y"]
    assert [(e.path, e.kind) for e in plan.puts] == [("y", "dir"), ("x", "file"), ("y/z", "file")]


def test_conflict_names_never_collide() -> None:
    taken = {f"a.txt.remote-{STAMP}", f"a.txt.remote-{STAMP}-2"}
    assert conflict_name("a.txt", STAMP, taken.__contains__) == f"a.txt.remote-{STAMP}-3"


def test_only_same_size_files_are_hashed_before_deciding() -> None:
    local = by_path(file("same-size", None, size=10), file("other-size", None, size=11), file("new", None))
    remote = by_path(file("same-size", size=10), file("other-size", size=12))
    assert needs_digest(local, remote) == ["same-size"]
    plan = make_plan(local, remote, lambda path, record: True, STAMP)
    assert {e.path for e in plan.puts} == {"same-size", "other-size", "new"}  # no digest: sent


def test_outermost_keeps_only_the_top_of_each_deleted_tree() -> None:
    assert outermost(["a/b/c", "a", "a-b", "a-b/x", "c/d", "c/e"]) == ["a", "a-b", "c/d", "c/e"]


def test_what_only_the_workspace_has_and_no_sync_put_there_is_left() -> None:
    # The local tree deleted the synced folder "gone"; a run made gone/made.db and out/ there.
    local = by_path(file("a.py"), file("clash"))
    remote = by_path(
        file("a.py"),
        folder("gone"),
        file("gone/old.py"),
        file("gone/made.db", "5" * 64),
        folder("out"),
        file("out/report.csv", "6" * 64),
        folder("clash"),
        file("clash/x", "7" * 64),
    )
    synced_paths = {"a.py", "gone", "gone/old.py"}
    synced = {p: Record.of(e) for p, e in remote.items() if p in synced_paths}
    plan = make_plan(local, remote, lambda path, record: synced.get(path) == record, STAMP, synced_paths.__contains__)
    assert plan.left == ["gone/made.db", "out"]
    assert plan.deletes == ["clash", "gone/old.py"]  # the folder holding made.db stays
    # Below a local file nothing can stay: the local tree wins and the workspace's copy is kept aside.
    assert [c.path for c in plan.conflicts] == ["clash/x"]
