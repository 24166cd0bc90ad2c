"""Ignore files the workspace has and the local tree does not.

Tools running on the develop server mark what they write as their own with a ``.gitignore``:
pytest, mypy and ruff put one holding ``*`` in their cache folders (``python -m venv`` does the
same in a new environment), so git in the workspace ignores those folders. Such a file exists
only in the workspace, so the local rules (:mod:`sync.ignore`) cannot see it, and a full sync
used to take what it covers for work done on the develop server: after ``yard watch -- pytest``,
every ``yard sync`` copied pytest's cache into the local tree as conflict copies and deleted it
from the workspace. Git in the workspace ignores those paths, and the sync now does too: they are
neither deleted nor copied back.

A rule file never covers what the sync itself put in the workspace or what the local
repository tracks (the engine asks only about the other paths): a file deleted locally is
deleted there, even in a folder a tool has since marked.

Only a rule file that ignores itself counts (``*`` does; a ``.gitignore`` someone wrote by hand on
the develop server usually does not): any other is itself work done there, kept as a conflict copy
and removed from the workspace by this very sync, so what it ignored would be judged without it
at the next one. Which files ignore themselves depends on the others (a parent's rule can cover a
child's file), so it is settled by asking again until nothing changes.

The rule files are fetched into the sync state directory (each again only when its digest
changes, none bigger than :data:`MAX_RULE_FILE`); the ones that count are placed at their paths
in a folder that is the working directory of a private bare repository, and questions go to it,
as :class:`sync.ignore.IgnoreRules` does for the local tree: the answers are libgit2's, so the
patterns mean what they mean to git.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from control.client import ApiError
from control.wire.manifest import Entry, file_sha256

if TYPE_CHECKING:
    import pygit2

RULE_FILE = ".gitignore"
MAX_RULE_FILE = 64 * 1024  # a bigger one is not a tool's marker: it is not used


class Downloads(Protocol):
    """What the rules need of the workspace (:class:`sync.remote.RemoteWorkspace`)."""

    def download(self, path: str, target: Path) -> None: ...


class WorkspaceRules:
    """Answers "does git in the workspace ignore this path, by a rule file only it has?"."""

    def __init__(self, scratch: Path) -> None:
        self.fetched = scratch / "workspace-rules" / "fetched"  # every copy, at its workspace path
        self.tree = scratch / "workspace-rules" / "tree"  # the ones that count, likewise
        self._repo_path = scratch / "workspace-rules.git"
        self._repo: pygit2.Repository | None = None
        self._paths: set[str] = set()  # the rule files that count

    @staticmethod
    def wanted(remote: Mapping[str, Entry], local: Mapping[str, Entry]) -> dict[str, str]:
        """The rule files of the workspace manifest ``remote`` that the local tree lacks and
        that are worth copying, ``{path: sha256}``."""
        return {
            path: entry.sha256
            for path, entry in remote.items()
            if entry.kind == "file"
            and entry.sha256 is not None
            and entry.size <= MAX_RULE_FILE
            and path.rsplit("/", 1)[-1] == RULE_FILE
            and path not in local
            and _plain(path)
        }

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the copies for this process (``yard sync`` next to ``yard sync --watch`` would
        otherwise remove each other's files midway): :meth:`update` and the :meth:`skip`
        questions that follow belong inside."""
        self.fetched.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.fetched.parent / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def update(self, workspace: Downloads, wanted: Mapping[str, str]) -> None:
        """Fetch the rule files ``wanted`` (``{path: sha256}``) and settle which of them count.

        A file that cannot be fetched (gone since the manifest was made, or a name this file
        system refuses) is simply not used. Raises what ``download`` raises when the develop
        server cannot be reached.
        """
        for path in _files(self.fetched) - wanted.keys():  # this process's or an earlier one's
            (self.fetched / path).unlink(missing_ok=True)
        present: set[str] = set()
        for path, digest in wanted.items():
            copy = self.fetched / path
            if file_sha256(str(copy)) != digest:
                try:
                    _clear_way(self.fetched, path)
                    workspace.download(path, copy)
                except (ApiError, OSError):
                    with contextlib.suppress(OSError):
                        copy.unlink(missing_ok=True)
                    continue
            present.add(path)
        counting = present
        while True:
            self._place(counting)
            if not counting:
                return
            ignoring_themselves = {path for path in counting if self._rules().path_is_ignored(path)}
            if ignoring_themselves == counting:
                return
            counting = ignoring_themselves

    def _place(self, paths: set[str]) -> None:
        """Make the working tree of the private repository hold exactly the copies of ``paths``."""
        for path in _files(self.tree) - paths:
            (self.tree / path).unlink(missing_ok=True)
        placed_all: set[str] = set()
        for path in paths:
            placed = self.tree / path
            if file_sha256(str(placed)) != file_sha256(str(self.fetched / path)):
                # A new file, not one rewritten in place: libgit2 notices a changed rule file
                # by its stat data, which a rewrite of the same size in the same second keeps.
                try:
                    _clear_way(self.tree, path)
                    temp = placed.with_name(f"{placed.name}.{os.getpid()}.new")
                    shutil.copyfile(self.fetched / path, temp)
                    os.replace(temp, placed)
                except OSError:
                    continue
            placed_all.add(path)
        self._paths = placed_all

    def skip(self, path: str) -> bool:
        """True if a workspace-only rule file ignores ``path`` (directories end with ``/``)."""
        if not self._paths:
            return False
        return bool(self._rules().path_is_ignored(path))

    def _rules(self) -> pygit2.Repository:
        if self._repo is None:
            import pygit2

            if (self._repo_path / "HEAD").exists():
                self._repo = pygit2.Repository(str(self._repo_path))
            else:
                self._repo_path.parent.mkdir(parents=True, exist_ok=True)
                self._repo = pygit2.init_repository(str(self._repo_path), bare=True)
            self.tree.mkdir(parents=True, exist_ok=True)
            self._repo.workdir = str(self.tree)  # in memory only, as in sync.ignore
        return self._repo


def _plain(path: str) -> bool:
    """A relative path of plain names (the copy must land inside the copies' folder)."""
    parts = path.split("/")
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def _clear_way(root: Path, path: str) -> None:
    """Make room for the file ``path`` under ``root`` (our own folder): a file where a folder
    must be, or a folder where the file must be, is what an earlier workspace left; it goes."""
    parts = path.split("/")
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            current.unlink()
    current.mkdir(parents=True, exist_ok=True)
    target = current / parts[-1]
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)


def _files(folder: Path) -> set[str]:
    """The files in ``folder``, by path relative to it."""
    found: set[str] = set()
    for directory, _, names in os.walk(folder):
        for name in names:
            found.add(os.path.relpath(os.path.join(directory, name), folder).replace(os.sep, "/"))
    return found
