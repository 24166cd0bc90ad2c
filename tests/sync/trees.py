"""Building local trees and repositories, and comparing a tree with a workspace."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

import pygit2

from sync.ignore import TEMP_PREFIX

SIGNATURE = pygit2.Signature("Test", "test@example.com")


def snapshot(root: Path, leave_out: Callable[[str], bool] = lambda path: False) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` (``.git`` aside) as (kind, content digest or link target, mode)."""
    entries: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        for name in [*dirs, *files]:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if rel == ".git" or rel.startswith(".git/") or TEMP_PREFIX in name or leave_out(rel):
                continue  # temporary files of a write in progress are never content
            full = os.path.join(folder, name)
            try:
                st = os.lstat(full)
            except FileNotFoundError:  # it went while being listed: the caller looks again
                entries[rel] = ("gone",)
                continue
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                try:
                    digest = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                except FileNotFoundError:
                    digest = "gone"
                entries[rel] = ("file", digest, stat.S_IMODE(st.st_mode))
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return entries


def write(root: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def repository(root: Path, files: Mapping[str, str | bytes], branch: str = "main") -> pygit2.Repository:
    """A repository at ``root`` with ``files`` committed on ``branch``."""
    repo = pygit2.init_repository(str(root), initial_head=branch)
    write(root, files)
    commit_all(repo, "initial")
    return repo


def commit_all(repo: pygit2.Repository, message: str) -> str:
    """Stage everything (like ``git add -A``) and commit; the new commit's id."""
    index = repo.index
    index.add_all()
    for path, flags in repo.status().items():
        if flags & pygit2.enums.FileStatus.WT_DELETED:
            index.remove(path)
    index.write()
    return commit_index(repo, message)


def commit_index(repo: pygit2.Repository, message: str) -> str:
    """Commit what is staged; the new commit's id."""
    tree = repo.index.write_tree()
    parents = [] if repo.head_is_unborn else [repo.head.target]
    return str(repo.create_commit("HEAD", SIGNATURE, SIGNATURE, message, tree, parents))


def checkout_branch(repo: pygit2.Repository, name: str, create: bool = False) -> None:
    """``git checkout [-b] name`` (forced: the tests' trees have no local edits to keep)."""
    if create:
        repo.branches.local.create(name, repo.head.peel(pygit2.Commit))
    branch = repo.branches.local[name]
    repo.checkout(branch, strategy=pygit2.enums.CheckoutStrategy.FORCE)
