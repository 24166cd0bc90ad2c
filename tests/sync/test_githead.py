"""sync.githead.read_head (HEAD from the files, for `yard sync`'s fast start) agrees with
sync.gitstate.local_head (pygit2) on repositories made by git, and gives up on every layout it
does not read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sync.githead import UnknownHead, read_head
from sync.gitstate import local_head

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def pygit2_head(root: Path) -> tuple[str | None, str | None, bool] | None:
    report = local_head(root)
    return None if report is None else (report.branch, report.head, report.detached)


def agree(root: Path) -> tuple[str | None, str | None, bool] | None:
    found = read_head(root)
    assert found == pygit2_head(root)
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    return root


def test_branch_detached_and_unborn(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    assert agree(repo) == ("main", first, False)
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    second = git(repo, "rev-parse", "HEAD")
    assert agree(repo) == ("main", second, False)
    git(repo, "checkout", "-q", "-b", "feature/deep")
    assert agree(repo) == ("feature/deep", second, False)
    git(repo, "checkout", "-q", "--detach", first)
    assert agree(repo) == (None, first, True)
    git(repo, "checkout", "-q", "--orphan", "fresh")
    assert agree(repo) == ("fresh", None, False)


def test_an_empty_repository_is_on_an_unborn_branch(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "trunk")
    assert agree(tmp_path) == ("trunk", None, False)


def test_packed_refs_and_a_loose_ref_that_overrides_them(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "-m", "annotated", "v1")  # a peeled line (^...) in packed-refs
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert agree(repo) == ("main", first, False)
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")  # a loose ref again, newer than the packed one
    second = git(repo, "rev-parse", "HEAD")
    assert "refs/heads/main" in (repo / ".git" / "packed-refs").read_text()
    assert agree(repo) == ("main", second, False)
    git(repo, "checkout", "-q", "-b", "other")
    git(repo, "pack-refs", "--all")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "other")
    assert agree(repo) == ("other", second, False)


def test_no_repository(tmp_path: Path) -> None:
    assert read_head(tmp_path) is None and local_head(tmp_path) is None


def test_layouts_it_does_not_read_are_unknown(repo: Path, tmp_path: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "-q", str(worktree))
    assert (worktree / ".git").is_file() and pygit2_head(worktree) is not None
    with pytest.raises(UnknownHead):
        read_head(worktree)

    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")  # a symbolic loose ref
    git(repo, "symbolic-ref", "HEAD", "refs/heads/alias")
    with pytest.raises(UnknownHead):
        read_head(repo)

    git(repo, "update-ref", "refs/remotes/origin/main", commit)
    git(repo, "symbolic-ref", "HEAD", "refs/remotes/origin/main")  # HEAD outside refs/heads
    with pytest.raises(UnknownHead):
        read_head(repo)

    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    assert agree(repo) == ("main", commit, False)
    (repo / ".git" / "refs" / "heads" / "main").write_text("not a commit\n")
    with pytest.raises(UnknownHead):
        read_head(repo)

    (repo / ".git" / "refs" / "heads" / "main").write_text(commit + "\n")
    assert agree(repo) == ("main", commit, False)
    (repo / ".git" / "reftable").mkdir()  # where a reftable repository (git 2.45+) keeps its refs
    with pytest.raises(UnknownHead):
        read_head(repo)
