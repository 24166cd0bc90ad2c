"""Deciding what a sync does: pure functions from the two trees and the last sync to a plan.

The local tree is the source of truth: whatever differs is sent, whatever the workspace has in
addition is deleted. The one exception protects work done on the develop server: a workspace
entry whose content is not what the last sync left there (changed or created on the develop
server since) is a **conflict**. Its content is first kept as ``<name>.remote-<timestamp>`` in
the local tree (and so synced back), then the local version wins as usual.

Entries only the workspace has and no sync ever put there (a warehouse file a command wrote,
dbt's ``.user.yml``) are neither: they are **left** where they are and reported, and
``yard sync --fetch PATH`` copies one into the local tree. Deleting a folder locally then deletes
what the syncs put in it, not what was made in the workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from control.wire.manifest import Entry
from sync.state import Record


@dataclass(frozen=True, slots=True)
class Conflict:
    """A workspace entry changed on the develop server, kept locally as ``kept_as``."""

    path: str
    kept_as: str
    remote: Entry


@dataclass
class Plan:
    """What to send, in order: deletions first (so kinds can change), then directories
    (parents first), then links and files."""

    deletes: list[str] = field(default_factory=list)
    puts: list[Entry] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    """Outermost workspace-only entries no sync put there: kept in the workspace, reported."""
    unchanged: int = 0

    @property
    def files(self) -> list[Entry]:
        return [entry for entry in self.puts if entry.kind == "file"]

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.puts if entry.kind == "file")

    @property
    def empty(self) -> bool:
        return not (self.deletes or self.puts or self.conflicts)


def needs_digest(local: Mapping[str, Entry], remote: Mapping[str, Entry]) -> list[str]:
    """Local files whose digest decides whether they are sent: the workspace has a file of the
    same size there. (A different size, or no file, means sending without reading twice.)"""
    wanted = []
    for path, entry in local.items():
        if entry.kind != "file" or entry.sha256 is not None:
            continue
        other = remote.get(path)
        if other is not None and other.kind == "file" and other.size == entry.size:
            wanted.append(path)
    return wanted


def same(local: Entry, remote: Entry) -> bool:
    """Whether the workspace entry already is the local one (content, target and mode)."""
    if local.kind != remote.kind:
        return False
    if local.kind == "file":
        return local.sha256 is not None and local.sha256 == remote.sha256 and local.mode == remote.mode
    if local.kind == "symlink":
        return local.target == remote.target
    return local.mode == remote.mode


def same_content(local: Entry | None, remote: Entry) -> bool:
    """Whether replacing ``remote`` with ``local`` loses nothing (modes aside)."""
    if local is None or local.kind != remote.kind:
        return False
    if local.kind == "file":
        return local.sha256 is not None and local.sha256 == remote.sha256
    return local.kind == "dir" or local.target == remote.target


def conflict_name(path: str, stamp: str, taken: Callable[[str], bool]) -> str:
    """``<path>.remote-<stamp>``, with ``-2``, ``-3``... if that name is taken."""
    base = f"{path}.remote-{stamp}"
    name, number = base, 1
    while taken(name):
        number += 1
        name = f"{base}-{number}"
    return name


def make_plan(
    local: Mapping[str, Entry],
    remote: Mapping[str, Entry],
    known: Callable[[str, Record], bool],
    stamp: str,
    synced: Callable[[str], bool] = lambda path: True,
) -> Plan:
    """The plan that makes the workspace (``remote``) equal to ``local``, but for what only the
    workspace has and no sync put there (``synced(path)`` false): that is left alone.

    ``known(path, record)`` says whether the workspace holding ``record`` at ``path`` is the
    result of our own syncs; anything else is a conflict. ``stamp`` names conflict copies.
    Local files without a digest are sent (see :func:`needs_digest`).
    """
    plan = Plan()
    copies: set[str] = set()
    # Left only where it can stay: below a local file (the local tree wins the kind) it cannot.
    left = {
        path
        for path in remote
        if path not in local
        and not synced(path)
        and all(local[parent].kind == "dir" for parent in parents(path) if parent in local)
    }

    def taken(name: str) -> bool:
        return name in local or name in remote or name in copies

    for path, theirs in remote.items():
        ours = local.get(path)
        if theirs.kind == "dir" or path in left or same_content(ours, theirs):
            continue
        if theirs.kind == "file" and theirs.sha256 is None:
            continue  # unreadable on the develop server: nothing could be kept anyway
        if known(path, Record.of(theirs)):
            continue
        kept_as = conflict_name(path, stamp, taken)
        copies.add(kept_as)
        plan.conflicts.append(Conflict(path, kept_as, theirs))

    # A folder holding something left stays; what the syncs put in it is deleted one by one.
    holding = {parent for path in left for parent in parents(path)}
    deleted: list[str] = []
    for path, theirs in remote.items():
        mine = local.get(path)
        if (mine is None or mine.kind != theirs.kind) and path not in left and path not in holding:
            deleted.append(path)
    plan.deletes = outermost(deleted)
    plan.left = outermost(sorted(left))

    dirs: list[Entry] = []
    others: list[Entry] = []
    for path, entry in local.items():
        counterpart = remote.get(path)
        if counterpart is not None and same(entry, counterpart):
            plan.unchanged += 1
        else:
            (dirs if entry.kind == "dir" else others).append(entry)
    dirs.sort(key=lambda entry: entry.path)
    others.sort(key=lambda entry: entry.path)
    plan.puts = dirs + others
    return plan


def parents(path: str) -> list[str]:
    """``a/b/c`` → ``a``, ``a/b``."""
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def outermost(paths: list[str]) -> list[str]:
    """``paths`` without those below another one (deleting a directory deletes its contents)."""
    kept: set[str] = set()
    for path in sorted(paths, key=lambda p: p.count("/")):  # parents before their contents
        parts = path.split("/")
        if not any("/".join(parts[:depth]) in kept for depth in range(1, len(parts))):
            kept.add(path)
    return sorted(kept)
