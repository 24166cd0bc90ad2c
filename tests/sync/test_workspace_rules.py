"""The workspace's own ``.gitignore`` files: which are fetched, which count, and what they ignore
(the engine's use of them, against a real develop server, is in test_engine.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from control.client import ApiError
from control.wire.manifest import Entry
from sync.workspace_rules import MAX_RULE_FILE, WorkspaceRules


class FakeWorkspace:
    """Serves rule files by path and counts what was fetched."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.fetched: list[str] = []

    def download(self, path: str, target: Path) -> None:
        self.fetched.append(path)
        if path not in self.files:
            raise ApiError(404, "not_found", f"There is no file at {path!r}.")
        target.write_text(self.files[path])

    def wanted(self) -> dict[str, str]:
        return {path: hashlib.sha256(text.encode()).hexdigest() for path, text in self.files.items()}


def entry(path: str, size: int = 10, kind: str = "file") -> Entry:
    return Entry(path, kind, size, 0o644, 1, sha256="0" * 64 if kind == "file" else None)


def test_only_workspace_only_rule_files_of_sane_paths_and_sizes_are_wanted() -> None:
    remote = {
        e.path: e
        for e in [
            entry(".pytest_cache/.gitignore"),
            entry(".gitignore"),  # the local tree has it: its own rules apply
            entry("big/.gitignore", size=MAX_RULE_FILE + 1),
            entry("a/../b/.gitignore"),
            entry("not-a-rule-file.txt"),
            entry("dir/.gitignore", kind="dir"),
        ]
    }
    local = {".gitignore": entry(".gitignore")}
    assert list(WorkspaceRules.wanted(remote, local)) == [".pytest_cache/.gitignore"]


def test_rule_files_count_only_when_they_ignore_themselves(tmp_path: Path) -> None:
    workspace = FakeWorkspace(
        {
            ".pytest_cache/.gitignore": "# Created by pytest automatically.\n*\n",
            "notes/.gitignore": "*.bak\n",  # written by hand there: does not count
            # Counts only through its parent's rule, which does not count itself: neither does.
            "e/.gitignore": "f/.gitignore\n",
            "e/f/.gitignore": "*.log\n",
            "t/.gitignore": "*.tmp\n!keep.tmp\n.gitignore\n",
        }
    )
    rules = WorkspaceRules(tmp_path / "state")
    rules.update(workspace, workspace.wanted())
    assert rules.skip(".pytest_cache/v/cache/nodeids")
    assert rules.skip(".pytest_cache/.gitignore")
    assert not rules.skip(".pytest_cache/")  # the folder itself is not ignored, its contents are
    assert not rules.skip("notes/draft.bak")
    assert not rules.skip("e/f/debug.log")
    assert rules.skip("t/scratch.tmp") and not rules.skip("t/keep.tmp")
    assert not rules.skip("src/app.py")


def test_copies_are_fetched_once_and_follow_the_workspace(tmp_path: Path) -> None:
    workspace = FakeWorkspace({"cache/.gitignore": "*\n"})
    rules = WorkspaceRules(tmp_path / "state")
    rules.update(workspace, workspace.wanted())
    rules.update(workspace, workspace.wanted())
    assert workspace.fetched == ["cache/.gitignore"], "an unchanged rule file is not fetched again"
    assert rules.skip("cache/x")

    workspace.files["cache/.gitignore"] = "x\n.gitignore\n"  # changed: fetched again
    rules.update(workspace, workspace.wanted())
    assert workspace.fetched == ["cache/.gitignore"] * 2
    assert rules.skip("cache/x") and not rules.skip("cache/y")
    # Rewritten with the same size at once: libgit2 must not answer from the old one.
    workspace.files["cache/.gitignore"] = "y\n.gitignore\n"
    rules.update(workspace, workspace.wanted())
    assert rules.skip("cache/y") and not rules.skip("cache/x")
    workspace.files["cache/.gitignore"] = "x\n.gitignore\n"

    # A new engine (another process) starts from the copies an earlier one left.
    later = WorkspaceRules(tmp_path / "state")
    later.update(workspace, workspace.wanted())
    assert workspace.fetched == ["cache/.gitignore"] * 4 and later.skip("cache/x")

    del workspace.files["cache/.gitignore"]
    later.update(workspace, {})
    assert not later.skip("cache/x")
    assert not list((tmp_path / "state" / "workspace-rules").rglob(".gitignore"))


def test_a_rule_file_gone_before_it_is_fetched_is_not_used(tmp_path: Path) -> None:
    workspace = FakeWorkspace({})
    rules = WorkspaceRules(tmp_path / "state")
    rules.update(workspace, {"cache/.gitignore": "0" * 64})
    assert workspace.fetched == ["cache/.gitignore"]
    assert not rules.skip("cache/x")


def test_a_leftover_folder_where_a_copy_must_go_is_cleared(tmp_path: Path) -> None:
    # An earlier workspace had a folder named .gitignore (holding a rule file): now a file is there.
    rules = WorkspaceRules(tmp_path / "state")
    (rules.fetched / "a" / ".gitignore").mkdir(parents=True)
    (rules.fetched / "a" / ".gitignore" / ".gitignore").write_text("*\n")
    (rules.fetched / "b").parent.mkdir(parents=True, exist_ok=True)
    (rules.fetched / "b").write_text("a file where a folder must be\n")
    workspace = FakeWorkspace({"a/.gitignore": "*\n", "b/.gitignore": "*\n"})
    rules.update(workspace, workspace.wanted())
    assert rules.skip("a/x") and rules.skip("b/y")


def test_processes_take_turns_with_the_copies(tmp_path: Path) -> None:
    import threading

    first, second = WorkspaceRules(tmp_path / "state"), WorkspaceRules(tmp_path / "state")
    entered = threading.Event()
    order: list[str] = []

    def later() -> None:
        with second.locked():
            order.append("second")
        entered.set()

    with first.locked():
        thread = threading.Thread(target=later)
        thread.start()
        # A bounded check that something does not happen: a slow machine can only make it pass.
        assert not entered.wait(0.2), "the second waits while the first holds the copies"
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
