"""Which paths of a local tree ``yard sync`` leaves alone: git's ignore rules plus ``.yardignore``.

libgit2 answers the questions, so the rules are exactly git's: every nested ``.gitignore``,
``.git/info/exclude`` and the global excludes file. ``.yardignore`` (gitignore syntax, at the
root of the tree) is added on top. Because libgit2 has no call to add rules without writing them
into a repository, the rules are evaluated by a private bare repository kept in the sync state
directory whose working directory is set (in memory only) to the tree: its ``info/exclude``
holds the repository's own excludes followed by ``.yardignore``. Nothing is ever written into the
user's tree or repository, and trees that are not git repositories get the same rules.

As in git, a file that is tracked is never ignored, whatever the patterns say. ``.git``
directories (at any depth) and the develop server's temporary files are always left out.

Asking libgit2 costs about 5 µs a path, half the time of scanning an unchanged tree. So a path
the last sync sent is taken as still included without asking, as long as no rule file changed:
:meth:`IgnoreRules.stamps` records every rule file (the ``.gitignore`` files the scan met, the
excludes files, the git configuration naming them), and a scan that finds any of them changed
is done again asking about every path.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pygit2

YARDIGNORE = ".yardignore"
GIT_DIR = ".git"
# The develop server writes uploads to such temporary names and never lists them, so a local
# file with this prefix could never be seen as synced: it would be sent again on every sync.
TEMP_PREFIX = ".devyard-tmp-"
RULE_FILES = frozenset({".gitignore", YARDIGNORE})  # a change to one can change what is ignored


class IgnoreRules:
    """Answers "is this path left out of the sync?" for one local tree."""

    def __init__(self, root: Path, scratch: Path) -> None:

        self.root = root
        self._scratch = scratch
        self._user_repo: pygit2.Repository | None = _open_user_repo(root)
        self._tracked: set[str] | None = None
        self._tracked_dirs: set[str] = set()
        self._sources: tuple[tuple[str, int, int], ...] = ()
        self._included: Collection[str] | None = None  # taken as not ignored without asking
        self._seen: dict[str, list[int]] = {}  # .gitignore files met by skip(), with their stamps
        self._tracked_exception = False  # a path was ignored by a pattern but kept as tracked
        self._rules = self._open_rules_repo()
        self.refresh()

    def _open_rules_repo(self) -> pygit2.Repository:
        import pygit2

        path = self._scratch / "rules.git"
        if (path / "HEAD").exists():
            repo = pygit2.Repository(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            repo = pygit2.init_repository(str(path), bare=True)
        repo.workdir = str(self.root)  # in memory only: no gitlink, no core.worktree written
        return repo

    def _source_files(self) -> list[Path]:
        """The files whose content becomes the private repository's ``info/exclude``."""
        sources: list[Path] = []
        if self._user_repo is not None:
            sources.append(Path(self._user_repo.path) / "info" / "exclude")
            # A repository-level core.excludesFile is invisible to the private repository.
            local = _config_value(self._user_repo, "core.excludesFile")
            if local:
                sources.append(Path(os.path.expanduser(local)))
        sources.append(self.root / YARDIGNORE)
        return sources

    def refresh(self) -> bool:
        """Re-read ``.git/info/exclude`` and ``.yardignore`` if they changed; True if they did.

        Nested ``.gitignore`` files need nothing: libgit2 re-reads them when they change.
        """
        sources = self._source_files()
        stamps = tuple(_stamp(path) for path in sources)
        self._tracked = None  # git add/rm may have changed what is tracked
        if stamps == self._sources:
            return False
        self._sources = stamps
        text = "".join(_read(path) + "\n" for path in sources)
        exclude = Path(self._rules.path) / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        if not exclude.exists() or exclude.read_text(encoding="utf-8", errors="surrogateescape") != text:
            temp = exclude.with_name(f".exclude.{os.getpid()}")
            temp.write_text(text, encoding="utf-8", errors="surrogateescape")
            os.replace(temp, exclude)
        return True

    def skip(self, path: str) -> bool:
        """True if ``path`` (relative, POSIX; directories end with ``/``) is left out of the sync."""
        bare = path[:-1] if path.endswith("/") else path
        name = bare.rsplit("/", 1)[-1]
        if name == GIT_DIR or name.startswith(TEMP_PREFIX):
            return True
        if name == ".gitignore":
            self._seen[bare] = list(_stamp(self.root / bare)[1:])
        if self._included is not None and bare in self._included:
            return False
        if not self._rules.path_is_ignored(path):
            return False
        if self._is_tracked(path):
            self._tracked_exception = True
            return False
        return True

    # ------------------------------------------------------------------ trusting the last sync

    def trust(self, included: Collection[str], stamps: dict[str, Any]) -> None:
        """Before a scan: take ``included`` paths as not ignored if the rule files outside the
        tree are as ``stamps`` (from :meth:`stamps`) recorded; :meth:`scan_trusted` says
        afterwards whether the ones inside the tree were too."""
        self._seen = {}
        usable = bool(stamps) and stamps.get("sources") == self._source_stamps()
        self._included = included if usable else None

    def scan_trusted(self, stamps: dict[str, Any]) -> bool:
        """After a scan: whether its shortcuts held (no ``.gitignore`` changed, appeared or went)."""
        return self._included is None or self._seen == stamps.get("tree")

    def distrust(self) -> None:
        """Ask libgit2 about every path from now on (the scan is about to be done again)."""
        self._included = None
        self._seen = {}

    def stamps(self) -> dict[str, Any]:
        """The rule files as they are now, for the next :meth:`trust`."""
        return {"sources": self._source_stamps(), "tree": dict(self._seen)}

    def _source_stamps(self) -> list[list[Any]]:
        home = Path.home()
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        files = [*self._source_files(), home / ".gitconfig", config / "git" / "config", config / "git" / "ignore"]
        configured = _config_value(self._rules, "core.excludesFile")
        if configured:
            files.append(Path(os.path.expanduser(configured)))
        if self._user_repo is not None and self._tracked_exception:
            # Some synced path matches a pattern and is kept only because it is tracked: a
            # change of what is tracked can change the answer.
            files.append(Path(self._user_repo.path) / "index")
        return [list(_stamp(path)) for path in files]

    def is_tracked(self, path: str) -> bool:
        """Whether the local repository tracks ``path`` (a directory, ending with ``/``: holds a tracked file)."""
        return self._is_tracked(path)

    def _is_tracked(self, path: str) -> bool:
        """A tracked file is synced even if a pattern matches it, and so is a directory holding one."""
        import pygit2

        if self._user_repo is None:
            return False
        if self._tracked is None:
            # Built only once something is ignored, which most trees hit rarely.
            self._tracked = set()
            self._tracked_dirs = set()
            try:
                self._user_repo.index.read(False)
                for entry in self._user_repo.index:
                    self._tracked.add(entry.path)
                    parts = entry.path.split("/")
                    for depth in range(1, len(parts)):
                        self._tracked_dirs.add("/".join(parts[:depth]) + "/")
            except (OSError, pygit2.GitError):  # an unreadable index: the patterns alone decide
                self._tracked = set()
        if path.endswith("/"):
            return path in self._tracked_dirs
        return path in self._tracked


def _open_user_repo(root: Path) -> pygit2.Repository | None:
    """The repository whose working tree is ``root`` (not one found further up)."""
    import pygit2
    from pygit2.enums import RepositoryOpenFlag

    if not (root / GIT_DIR).exists():
        return None
    try:
        return pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError:
        return None


def _config_value(repo: pygit2.Repository, name: str) -> str | None:
    import pygit2

    try:
        return str(repo.config[name])
    except (KeyError, pygit2.GitError):
        return None


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_size, st.st_mtime_ns)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return ""
