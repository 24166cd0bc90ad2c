"""Path confinement at the unit level (the HTTP matrix is in test_files.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devserver.paths import BadPath, Workspace, split


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "a\x00b", "", ".", "./", "a/.."])
def test_lexically_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(BadPath):
        split(path)


def test_harmless_forms_are_normalised() -> None:
    assert split("a//b/./c/") == ["a", "b", "c"]
    assert split("back\\slash") == ["back\\slash"]
    assert split("", allow_root=True) == []


def test_resolve_refuses_symlinks_that_leave_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "inside").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    (root / "in").symlink_to("inside")
    workspace = Workspace(root)
    with pytest.raises(BadPath):
        workspace.resolve("out/x")
    assert workspace.resolve("in/x") == os.path.join(workspace.root, "inside", "x")


def test_open_parent_refuses_git_and_outside(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    workspace = Workspace(root)
    for path in (".git/config", ".git", "out/x"):
        with pytest.raises(BadPath):
            workspace.open_parent(path, create=True)
    assert not (tmp_path / "x").exists()


def test_open_parent_creates_missing_directories_only_when_asked(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    assert workspace.open_parent("a/b/c.txt", create=False) is None
    opened = workspace.open_parent("a/b/c.txt", create=True)
    assert opened is not None
    os.close(opened[0])
    assert opened[1] == "c.txt"
    assert (tmp_path / "a" / "b").is_dir()


def test_open_parent_follows_inside_links_by_descriptor(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "real" / "deep").mkdir(parents=True)
    (root / "alias").symlink_to("real")
    (root / "abs").symlink_to(root / "real" / "deep")
    workspace = Workspace(root)
    opened = workspace.open_parent_canonical("alias/deep/new/f.txt", create=True)
    assert opened is not None
    os.close(opened[0])
    assert opened[1:] == ("f.txt", "real/deep/new/f.txt")
    assert (root / "real" / "deep" / "new").is_dir() and (root / "alias").is_symlink()
    opened = workspace.open_parent_canonical("abs/x/f.txt", create=True)
    assert opened is not None
    os.close(opened[0])
    assert opened[2] == "real/deep/x/f.txt"


def test_open_parent_refuses_git_through_a_link_to_the_root(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / ".git").mkdir(parents=True)
    (root / "top").symlink_to(".")
    (root / "dotgit").symlink_to(".git")
    workspace = Workspace(root)
    for path in ("top/.git", "top/.git/hooks/post-checkout", "dotgit/config", "dotgit/hooks/x"):
        with pytest.raises(BadPath):
            workspace.open_parent(path, create=True)
    assert sorted(os.listdir(root / ".git")) == []


def test_open_parent_refuses_link_loops_files_and_long_names(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "loop").symlink_to("loop")
    (root / "file").write_text("x")
    workspace = Workspace(root)
    with pytest.raises(BadPath) as loop:
        workspace.open_parent("loop/x", create=True)
    assert loop.value.code == "bad_path"
    with pytest.raises(BadPath) as file:
        workspace.open_parent("file/x", create=True)
    assert file.value.code == "not_a_directory"
    with pytest.raises(BadPath) as long:
        workspace.open_parent("n" * 300 + "/x", create=True)
    assert long.value.code == "name_too_long"
