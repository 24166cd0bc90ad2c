"""`yard sync --fetch PATH`: copy what only the workspace has into the local tree.

A sync leaves workspace-only entries where they are (see :mod:`sync.plan`); fetching one makes
both sides hold the same content, so the next sync records it as synced and sends nothing. An
entry that already exists locally is refused rather than overwritten: the local tree is the
user's work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from control.wire.manifest import Entry
from sync.remote import RemoteWorkspace


class FetchRefused(Exception):
    """The path cannot be fetched; the message is one sentence."""


@dataclass
class Fetched:
    """What one fetch wrote into the local tree."""

    path: str
    files: int = 0
    bytes: int = 0
    links: int = 0
    dirs: int = 0


def clean_path(path: str) -> str:
    """``path`` as a manifest names it (relative, ``/``-separated); refuses one leaving the tree."""
    pure = PurePosixPath(path.replace(os.sep, "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts[0] == ".git":
        raise FetchRefused(f"{path} is not a path inside the workspace; give it relative to the tree's top folder.")
    return "/".join(part for part in pure.parts if part != ".")


def fetch(root: Path, remote: RemoteWorkspace, path: str, manifest: dict[str, Entry] | None = None) -> Fetched:
    """Copy the workspace's ``path`` (a file, a link, or a folder with everything in it) to the
    same place under ``root``; nothing that exists locally is overwritten."""
    wanted = clean_path(path)
    entries = manifest if manifest is not None else remote.manifest()
    below = sorted(
        (entry for name, entry in entries.items() if name == wanted or name.startswith(wanted + "/")),
        key=lambda entry: entry.path,
    )
    if not below:
        raise FetchRefused(f"The workspace has no {wanted}.")
    top = root / wanted
    if os.path.lexists(top):
        raise FetchRefused(f"{wanted} already exists in {root}; move it away first, nothing was overwritten.")
    for parent in top.parents:
        if parent == root:
            break
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            raise FetchRefused(f"{parent.relative_to(root)} is not a folder here, so {wanted} cannot be put below it.")
    done = Fetched(wanted)
    top.parent.mkdir(parents=True, exist_ok=True)
    for entry in below:  # parents sort before their contents
        target = root / entry.path
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
            done.dirs += 1
        elif entry.kind == "symlink":
            assert entry.target is not None
            os.symlink(entry.target, target)
            done.links += 1
        else:
            remote.download(entry.path, target)
            os.chmod(target, entry.mode & 0o777)
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
            done.files += 1
            done.bytes += entry.size
    return done
