"""Git state: the workspace becomes a real checkout on the local branch and commit."""

from __future__ import annotations

from pathlib import Path

import pygit2

from tests.sync.conftest import Workspace
from tests.sync.trees import checkout_branch, commit_all, repository, snapshot, write


def remote_status(workspace: Workspace) -> dict[str, object]:
    return dict(workspace.client.devserver_call(workspace.server_id, "GET", "/git/status"))


def changes(status: dict[str, object]) -> set[tuple[str, str]]:
    return {(f["path"], f["status"]) for f in status["files"]}  # type: ignore[attr-defined, index]


def test_branch_head_history_and_working_changes(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    repo = repository(root, {"a.txt": "one\n", "src/m.py": "x = 1\n"})
    write(root, {"b.txt": "bee\n"})
    commit_all(repo, "second")
    write(root, {"a.txt": "one, edited\n", "new.txt": "untracked\n"})
    report = workspace.engine(root).sync()
    assert report.git is not None and report.git.moved and report.git.branch == "main"
    status = remote_status(workspace)
    assert (status["branch"], status["head"]) == ("main", str(repo.head.target))
    assert changes(status) == {("a.txt", "modified"), ("new.txt", "untracked")}
    remote = pygit2.Repository(str(workspace.path))
    assert [c.message for c in remote.walk(remote.head.target)] == ["second", "initial"]

    # A new commit: only what it adds is sent.
    (root / "a.txt").write_text("two\n")
    head = commit_all(repo, "third")
    again = workspace.engine(root).sync()
    assert again.git is not None and again.git.moved
    assert again.git.objects == 4, "the commit, its tree and two new blobs (a.txt changed, new.txt added)"
    assert remote_status(workspace)["head"] == head and changes(remote_status(workspace)) == set()
    # Nothing to do: nothing asked beyond the refs.
    assert workspace.engine(root).sync().git.moved is False  # type: ignore[union-attr]


def test_branch_switch_with_hundreds_of_files(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    repo = repository(root, {f"src/m{i:03d}.py": f"v = {i}\n" for i in range(300)})
    workspace.engine(root).sync()
    checkout_branch(repo, "feature", create=True)
    write(root, {f"src/m{i:03d}.py": f"v = {i} * 2\n" for i in range(300)})
    for i in range(250, 300):
        (root / f"src/m{i:03d}.py").unlink()
    head = commit_all(repo, "rework")
    checkout_branch(repo, "main")
    checkout_branch(repo, "feature")  # what a developer does: switch away and back
    report = workspace.engine(root).sync()
    assert (report.files, report.deleted) == (250, 50)
    status = remote_status(workspace)
    assert (status["branch"], status["head"], status["files"]) == ("feature", head, [])
    assert snapshot(root) == snapshot(workspace.path)


def test_detached_head_and_commits_made_on_the_server(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    repo = repository(root, {"a.txt": "one\n"})
    first = str(repo.head.target)
    write(root, {"a.txt": "two\n"})
    commit_all(repo, "second")
    workspace.engine(root).sync()
    # Someone commits on the develop server; the local repository never sees that commit.
    (workspace.path / "server.txt").write_text("made there\n")
    made_there = workspace.client.devserver_call(
        workspace.server_id,
        "POST",
        "/git/commit",
        json={"message": "on the server", "paths": ["server.txt"], "author_name": "S", "author_email": "s@x"},
    )["oid"]
    repo.set_head(pygit2.Oid(hex=first))  # detach at the first commit
    repo.checkout_head(strategy=pygit2.enums.CheckoutStrategy.FORCE)  # type: ignore[no-untyped-call]
    report = workspace.engine(root).sync()
    assert report.conflicts == [] and report.left == ["server.txt"]  # made there: left there, reported
    assert (workspace.path / "server.txt").read_text() == "made there\n"
    status = remote_status(workspace)
    assert status["detached"] is True and status["head"] == first
    remote = pygit2.Repository(str(workspace.path))
    assert str(remote.references["refs/heads/main"].target) == made_there, "a detached HEAD leaves branches alone"

    # Back on main: the server's commit is kept under refs/devyard/kept/ before main moves.
    checkout_branch(repo, "main")
    back = workspace.engine(root).sync()
    assert back.git is not None and back.git.kept_ref and back.git.kept_ref.startswith("refs/devyard/kept/main-")
    assert str(remote.references[back.git.kept_ref].target) == made_there
    assert remote_status(workspace)["head"] == str(repo.head.target)


def test_a_fresh_clone_sends_its_pack_as_it_is(workspace: Workspace, tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    repo = repository(origin, {f"f{i}.txt": f"{i}\n" * 50 for i in range(40)})
    for number in range(5):
        write(origin, {f"f{number}.txt": f"changed {number}\n"})
        commit_all(repo, f"change {number}")
    clone = pygit2.clone_repository(origin.as_uri(), str(tmp_path / "clone"))  # fetched as a pack
    packs = list(Path(clone.path, "objects", "pack").glob("*.pack"))
    assert packs, "a local clone keeps its objects in a pack"
    report = workspace.engine(Path(clone.workdir)).sync()
    assert report.git is not None and report.git.moved
    status = remote_status(workspace)
    assert (status["branch"], status["head"], status["files"]) == ("main", str(clone.head.target), [])
    remote = pygit2.Repository(str(workspace.path))
    assert len(list(remote.walk(remote.head.target))) == 6
    # Byte for byte the same pack (packs are named by their checksum).
    assert {p.name for p in packs} <= {p.name for p in (workspace.path / ".git" / "objects" / "pack").glob("*.pack")}


def test_a_folder_that_is_not_a_repository(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write(root, {"a.txt": "x\n"})
    report = workspace.engine(root).sync()
    assert report.git is not None and report.git.skipped == "not a git repository"
    assert not (workspace.path / ".git").exists()
