"""The branch and commit a repository's HEAD names, read from its files without pygit2.

Importing pygit2 costs about 77 ms, more than ``yard sync``'s whole fast start may take
(:mod:`tui.cli.quick_sync`), which only needs to compare HEAD with what the last sync recorded.
:func:`read_head` reads the plain layout a clone or ``git init`` makes and nothing else:

- ``.git`` is a folder holding ``HEAD``, ``objects`` and ``refs`` (what libgit2 requires too);
- ``HEAD`` is ``ref: refs/heads/<branch>``, resolved through the loose ref file, else through
  ``packed-refs`` (a loose ref wins, as in git); a branch found in neither is unborn;
- or ``HEAD`` is a commit id (40 or 64 hex digits): a detached HEAD.

It answers as :func:`sync.gitstate.local_head` does, as ``(branch, head, detached)``, or None
where there is no ``.git`` at all. Anything else (a ``.git`` file as in a worktree or submodule,
a symbolic loose ref, HEAD on a ref outside ``refs/heads``, the reftable format, something
unreadable or malformed) raises :class:`UnknownHead`: the caller then asks pygit2 instead.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast start does without importing typing
if TYPE_CHECKING:
    from pathlib import Path

Head = tuple[str | None, str | None, bool]  # (branch, commit, detached), as sync.snapshot records it
HEX = frozenset("0123456789abcdef")
BRANCHES = "refs/heads/"


class UnknownHead(Exception):
    """HEAD is not in a form :func:`read_head` reads; pygit2 can tell."""


def read_head(root: Path | str) -> Head | None:
    """``(branch, commit, detached)`` of the repository whose working tree is ``root`` (commit
    None on an unborn branch), None if ``root`` holds no ``.git``; raises :class:`UnknownHead`."""
    git = os.path.join(root, ".git")
    try:
        if not stat.S_ISDIR(os.lstat(git).st_mode):
            raise UnknownHead(f"{git} is not a folder")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnknownHead(str(exc)) from exc
    if not (os.path.isdir(os.path.join(git, "objects")) and os.path.isdir(os.path.join(git, "refs"))):
        raise UnknownHead(f"{git} is not a repository libgit2 opens")
    if os.path.lexists(os.path.join(git, "reftable")) or os.path.lexists(os.path.join(git, "commondir")):
        raise UnknownHead(f"{git} keeps its refs elsewhere")
    text = _read(os.path.join(git, "HEAD"))
    if text is None:
        raise UnknownHead("no HEAD")
    if not text.startswith("ref: "):
        return None, _commit(text), True
    ref = text[len("ref: ") :].strip()
    parts = ref.split("/")
    if not ref.startswith(BRANCHES) or any(part in ("", ".", "..") for part in parts):
        raise UnknownHead(f"HEAD names {ref!r}, not a branch")
    loose = _read(os.path.join(git, *parts))
    if loose is not None:
        return ref[len(BRANCHES) :], _commit(loose), False
    return ref[len(BRANCHES) :], _packed(os.path.join(git, "packed-refs"), ref), False


def _read(path: str) -> str | None:
    """The text of the regular file at ``path``, None if there is none."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise UnknownHead(f"{path} is not a file")
        with open(path, "rb") as file:
            return file.read().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnknownHead(str(exc)) from exc


def _commit(text: str) -> str:
    """The commit id a ref file holds (a symbolic ref is refused)."""
    oid = text.strip()
    if len(oid) not in (40, 64) or not HEX.issuperset(oid):
        raise UnknownHead(f"not a commit id: {oid[:80]!r}")
    return oid


def _packed(path: str, ref: str) -> str | None:
    """The commit ``ref`` has in the ``packed-refs`` file at ``path``, None if it has none."""
    text = _read(path)
    for line in (text or "").splitlines():
        if line.startswith(("#", "^")):  # the header, and the commit a tag above peels to
            continue
        oid, _, name = line.partition(" ")
        if name == ref:
            return _commit(oid)
    return None
