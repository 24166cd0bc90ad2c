"""A run's code: fetch what it needs into the project's mirror, then a fresh tree in its folder.

The run's folder gets the files of one commit and nothing else: no ``.git`` that points back
into the mirror (a command cannot write into the shared mirror through it, and in a container
the mirror is not even mounted), nothing from an earlier run (the folder is new). The commit is
resolved here, on the agent, because the control plane may not reach the git server.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from control.wire.code import CodeSpec, is_commit
from runner import mirror as mirrors
from runner.gitcommand import CheckoutFailed, Credential, base_env, fetch_failure, git, remote_env

FETCH_TIMEOUT_S = 1800.0
CHECKOUT_WORKERS = str(max(1, min(8, os.cpu_count() or 1)))


@dataclass(frozen=True)
class CheckedOut:
    commit: str
    fetched: bool
    """Whether the server was asked (False: the commit was in the mirror already)."""
    seconds: float


def _fetch(
    mirror: Path, url: str, refspecs: list[str], credential: Credential, scratch: Path, known_hosts: Path
) -> None:
    with remote_env(url, credential, scratch, known_hosts) as env:
        done = git(
            ["--git-dir", str(mirror), "fetch", "--quiet", "--prune", "--no-write-fetch-head", url, *refspecs],
            env,
            FETCH_TIMEOUT_S,
        )
    if done.returncode != 0:
        raise fetch_failure(url, credential, done.stderr)


def _missing(url: str, ref: str) -> CheckoutFailed:
    return CheckoutFailed(f"'{ref}' is not a branch, tag or commit of the repository {url}.")


def resolve_and_fetch(
    code: CodeSpec, mirror: Path, credential: Credential, scratch: Path, known_hosts: Path
) -> tuple[str, bool]:
    """The commit to check out, fetching into ``mirror`` what it needs (holding its lock)."""
    assert code.repo_url is not None
    url, ref = code.repo_url, code.commit or code.ref or "HEAD"
    env = base_env(scratch)
    if is_commit(ref) and mirrors.has_commit(mirror, ref, env):
        return ref, False  # a commit never changes: no need to ask the server (a rerun, a retry)
    with mirrors.locked(mirror.with_suffix(".lock")):
        mirrors.ensure(mirror, env)
        mirrors.remove_stale_locks(mirror)
        refspecs = list(mirrors.FETCH_REFSPECS)
        if ref.startswith("refs/") and not ref.startswith(("refs/heads/", "refs/tags/")):
            refspecs.append(f"+{ref}:{ref}")  # refs/pull/7/head and the like: asked for by name
        _fetch(mirror, url, refspecs, credential, scratch, known_hosts)
        commit = mirrors.resolve(mirror, ref, env)
        if commit is None and is_commit(ref):
            # A commit no branch or tag reaches (a pull request's): ask for it by id.
            with remote_env(url, credential, scratch, known_hosts) as remote:
                by_id = git(
                    ["--git-dir", str(mirror), "fetch", "--quiet", "--no-write-fetch-head", url, ref],
                    remote,
                    FETCH_TIMEOUT_S,
                )
            commit = ref if by_id.returncode == 0 and mirrors.has_commit(mirror, ref, env) else None
    if commit is None:
        raise _missing(url, ref)
    return commit, True


def materialize(mirror: Path, commit: str, target: Path, scratch: Path) -> None:
    """Write the files of ``commit`` into the empty folder ``target`` (read-only on the mirror:
    the index is a private file in ``scratch``, removed after)."""
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise CheckoutFailed(f"The run's folder {target} is not empty; a checkout only goes into a new folder.")
    env = base_env(scratch)
    index = scratch / "checkout.index"
    env["GIT_INDEX_FILE"] = str(index)
    try:
        done = git(
            [
                "--git-dir", str(mirror), "--work-tree", str(target),
                "-c", f"checkout.workers={CHECKOUT_WORKERS}", "-c", "core.bare=false",
                "read-tree", "--reset", "-u", commit,
            ],
            env,
            FETCH_TIMEOUT_S,
        )  # fmt: skip
    finally:
        index.unlink(missing_ok=True)
    if done.returncode != 0:
        raise CheckoutFailed(f"Commit {commit[:12]} could not be checked out: {done.stderr.strip() or 'git failed'}.")


def check_out(code: CodeSpec, secrets: dict[str, str], volume: Path, target: Path, scratch: Path) -> CheckedOut:
    """Fetch and check out the run's code into ``target``; CheckoutFailed with one sentence."""
    assert code.repo_url is not None and code.mirror is not None
    began = time.monotonic()
    name = code.credential_secret
    credential = Credential(name, secrets.get(name) if name else None)
    scratch.mkdir(parents=True, exist_ok=True)
    git_root = volume / "git"
    mirror = git_root / f"{code.mirror}.git"
    try:
        commit, fetched = resolve_and_fetch(code, mirror, credential, scratch, git_root / "known_hosts")
        materialize(mirror, commit, target, scratch)
    except CheckoutFailed as exc:
        raise CheckoutFailed(credential.scrub(str(exc))) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return CheckedOut(commit, fetched, time.monotonic() - began)
