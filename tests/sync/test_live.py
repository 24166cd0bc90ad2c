"""Live sync: a real file watcher on a local tree and a real develop server behind the gateway."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2

from sync.engine import SyncReport
from sync.live import LiveSync
from sync.remote import RemoteWorkspace
from sync.watcher import ChangeBatch, TreeWatcher, classify, slept
from tests.sync.conftest import Workspace
from tests.sync.trees import checkout_branch, commit_all, repository, snapshot, write
from tests.waiting import wait_until


class Collected:
    """What the live sync reported."""

    def __init__(self) -> None:
        self.reports: list[SyncReport] = []
        self.waits: list[str] = []
        self.reconnects = 0

    def synced(self, report: SyncReport) -> None:
        self.reports.append(report)

    def waiting(self, message: str) -> None:
        self.waits.append(message)

    def reconnected(self) -> None:
        self.reconnects += 1


@contextmanager
def live(workspace: Workspace, root: Path) -> Iterator[Collected]:
    """`yard sync --watch` in a thread of this process, stopped afterwards."""
    collected, stop = Collected(), threading.Event()
    watcher = TreeWatcher(root)
    engine = workspace.engine(root)
    session = LiveSync(engine, watcher, lambda: RemoteWorkspace(workspace.client, workspace.server_id), collected)
    thread = threading.Thread(target=session.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: bool(collected.reports), message="the first full sync")
        yield collected
    finally:
        stop.set()
        thread.join(10)
        watcher.close()
    assert not thread.is_alive()


def in_sync(root: Path, workspace: Workspace, timeout: float = 15.0) -> None:
    """Wait until the workspace equals the tree (what the tree ignores aside)."""

    def ignored(path: str) -> bool:
        return path.endswith(".log")

    wait_until(
        lambda: snapshot(root, ignored) == snapshot(workspace.path, ignored),
        timeout,
        "the workspace to equal the tree",
    )


def test_every_kind_of_edit_reaches_the_workspace(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"a.txt": "a\n", "src/m.py": "m\n", ".gitignore": "*.log\n"})
    outside = tmp_path / "outside"
    write(outside, {"secret.txt": "never synced\n"})
    with live(workspace, root) as collected:
        in_sync(root, workspace)
        (root / "a.txt").write_text("edited\n")  # an edit
        in_sync(root, workspace)
        (root / "src" / "m.py").rename(root / "src" / "renamed.py")  # a rename
        in_sync(root, workspace)
        (root / "a.txt").unlink()  # deleted and re-created at once
        (root / "a.txt").write_text("re-created\n")
        in_sync(root, workspace)
        moved_in = tmp_path / "elsewhere" / "pkg"
        write(moved_in, {"x/y.py": "y\n", "z.py": "z\n"})
        shutil.move(str(moved_in), root / "pkg")  # a whole folder appears at once
        in_sync(root, workspace)
        (root / "debug.log").write_text("ignored\n")
        (root / "link").symlink_to(outside)  # a link out of the tree: synced as a link
        in_sync(root, workspace, timeout=15.0)
        (outside / "secret.txt").write_text("changed outside\n")
        (outside / "more.txt").write_text("new outside\n")
        (root / "sentinel").write_text("after the outside changes\n")
        wait_until(lambda: (workspace.path / "sentinel").exists(), message="the sentinel")
        shutil.rmtree(root / "pkg")  # a folder deleted
        in_sync(root, workspace)
    assert os.readlink(workspace.path / "link") == str(outside)
    assert not (workspace.path / "debug.log").exists()
    remote_files = {p.name for p in workspace.path.rglob("*") if not p.is_symlink()}
    assert "secret.txt" not in remote_files and "more.txt" not in remote_files
    pushes = [r for r in collected.reports if r.kind == "push"]
    assert pushes and all(r.refused == [] for r in pushes)
    assert all(r.seconds < 5 for r in pushes)


def test_a_branch_switch_with_hundreds_of_files(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    repo = repository(root, {f"src/m{i:03d}.py": f"v = {i}\n" for i in range(300)})
    checkout_branch(repo, "feature", create=True)
    write(root, {f"src/m{i:03d}.py": f"v = -{i}\n" for i in range(300)})
    write(root, {f"docs/page{i}.md": "new\n" for i in range(100)})
    feature = commit_all(repo, "feature work")
    checkout_branch(repo, "main")
    with live(workspace, root):
        in_sync(root, workspace)
        checkout_branch(repo, "feature")
        in_sync(root, workspace)
        wait_until(lambda: _remote_head(workspace) == ("feature", feature), message="the workspace branch")
        checkout_branch(repo, "main")
        in_sync(root, workspace)
        wait_until(lambda: _remote_head(workspace) == ("main", str(repo.head.target)), message="main again")
    status = workspace.client.devserver_call(workspace.server_id, "GET", "/git/status")
    assert status["files"] == []


def _remote_head(workspace: Workspace) -> tuple[str, str] | None:
    try:
        remote = pygit2.Repository(str(workspace.path))
        return remote.head.shorthand, str(remote.head.target)
    except (pygit2.GitError, KeyError):
        return None


def test_the_develop_server_restarting_while_watching(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"a.txt": "a\n"})
    with live(workspace, root) as collected:
        in_sync(root, workspace)
        os.kill(workspace.pid(), signal.SIGKILL)
        (root / "a.txt").write_text("written while it was down\n")
        (root / "b.txt").write_text("b\n")
        in_sync(root, workspace, timeout=30.0)
        assert collected.waits and collected.reconnects >= 1
        # It carries on as before.
        (root / "c.txt").write_text("c\n")
        in_sync(root, workspace)


def test_change_batches() -> None:
    root = "/w"
    batch = classify(
        root,
        {
            (1, "/w/src/a.py"),
            (2, "/w/.git/HEAD"),
            (2, "/w/.git/objects/ab/cdef"),
            (2, "/w/.git/info/exclude"),
            (2, "/w/sub/.gitignore"),
            (1, "/w/vendor/.git/config"),
            (1, "/elsewhere/x"),
        },
    )
    assert batch == ChangeBatch(paths={"src/a.py", "sub/.gitignore"}, git=True, rules=True)
    assert slept(3600.0, 2.0) and not slept(10.0, 9.9)
