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
