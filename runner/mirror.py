"""One mirror per (project, repository) on the shared volume, under ``git/``.

Every change to a mirror (creating it, fetching into it) happens under an exclusive ``flock`` on
``git/<name>.lock``, so two agents fetching at once (on one machine or on several sharing the
volume) take turns instead of racing on git's own ref locks. Reading a mirror needs no lock: git
writes new objects before the refs that point at them, and a mirror is never garbage-collected
(``gc.auto=0``), so an object a checkout resolved stays readable while another fetch runs. A git
``*.lock`` file found while holding the flock was left by a fetch that was killed, and is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from control.wire.code import is_commit
from runner.gitcommand import CheckoutFailed, git

LOCK_WAIT_S = 1800.0
MIRROR_CONFIG = (
    ("gc.auto", "0"),  # nothing is ever deleted under a checkout that is reading the mirror
    ("maintenance.auto", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("core.logAllRefUpdates", "false"),
)
FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


@contextlib.contextmanager
def locked(lock_file: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the mirror's exclusive lock (waiting for another holder up to ``wait_s``)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CheckoutFailed(
                        f"The repository mirror {lock_file.with_suffix('.git').name} stayed locked by another"
                        f" fetch for {wait_s:.0f} s."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def ensure(mirror: Path, env: dict[str, str]) -> None:
    """Create the bare mirror if missing (caller holds the lock): made aside, then renamed in,
    so a crash never leaves half a repository under the mirror's name."""
    if (mirror / "HEAD").is_file():
        return
    partial = mirror.with_name(mirror.name + ".new")
    shutil.rmtree(partial, ignore_errors=True)
    if mirror.exists():
        shutil.rmtree(mirror)  # a folder without HEAD is not a repository: what a crash left
    made = git(["init", "--quiet", "--bare", str(partial)], env, 60)
    if made.returncode != 0:
        raise CheckoutFailed(f"The repository mirror could not be created on the volume: {made.stderr.strip()}.")
    for key, value in MIRROR_CONFIG:
        git(["--git-dir", str(partial), "config", key, value], env, 60)
    partial.rename(mirror)


def remove_stale_locks(mirror: Path) -> None:
    """Git's own lock files left by a fetch that was killed (caller holds the flock, so no live
    git command owns them): without this every later fetch fails on them."""
    for name in ("packed-refs.lock", "shallow.lock", "config.lock", "HEAD.lock", "FETCH_HEAD.lock"):
        (mirror / name).unlink(missing_ok=True)
    refs = mirror / "refs"
    if refs.is_dir():
        for stale in refs.rglob("*.lock"):
            stale.unlink(missing_ok=True)


def has_commit(mirror: Path, sha: str, env: dict[str, str]) -> bool:
    if not is_commit(sha) or not (mirror / "HEAD").is_file():
        return False
    return git(["--git-dir", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"], env, 60).returncode == 0


def resolve(mirror: Path, ref: str, env: dict[str, str]) -> str | None:
    """The commit ``ref`` names in the mirror: a branch first, then a tag, a full ref, a commit id."""
    candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
    if ref.startswith("refs/"):
        candidates.insert(0, ref)
    if all(c in "0123456789abcdef" for c in ref.lower()) and 7 <= len(ref) <= 40:
        candidates.append(ref.lower())
    for name in candidates:
        found = git(["--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], env, 60)
        if found.returncode == 0 and is_commit(found.stdout.strip()):
            return found.stdout.strip()
    return None
