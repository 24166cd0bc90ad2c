"""Checkouts of a run's code: a fresh tree from a warm mirror, and launch latency of a repository run.

1. checkout: a repository of 10,000 files / 200 MB (random bytes, so git cannot compress them
   away), served as a bare repository over file://. The mirror is warmed by one checkout; then,
   interleaved, ``runner.checkout.check_out`` of the commit into a new folder (what a retry or a
   run at a known commit does: no fetch) and, the peer, ``git worktree add --detach`` of the same
   commit from the same mirror into a new folder, with git's defaults and with the same
   ``checkout.workers`` our checkout uses, each removed after (not timed). A third variant
   checks out by branch name, which adds a fetch that finds nothing new. Medians, ratio ours/peer.
2. launch: the embedded server (``python -m compose.supervisor``, as bench/runs.py starts it) with
   a project whose repository is a small one (50 files) over file://, mirror warm; wall time from
   just before ``create_run`` (ref ``main``: each run fetches) to the command printing
   ``date +%s.%N`` in its checkout. Peer in the same run: the same command with ``code: none``.

    .venv/bin/python bench/checkout.py            # the figures in docs/benchmarks.md
    .venv/bin/python bench/checkout.py --quick    # a smoke test: 1,000 files / 20 MB, few runs

One JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import summary  # noqa: E402
from bench.runs import check_succeeded, follow_to_end, start_stack  # noqa: E402
from control.wire.code import CodeSpec  # noqa: E402
from runner.checkout import CHECKOUT_WORKERS, check_out  # noqa: E402

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
TARGETS = {"checkout_ratio_max": 1.0, "launch_p50_ms": 300.0}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


def make_repository(root: Path, files: int, total_bytes: int) -> tuple[Path, str]:
    """A bare repository of ``files`` random files adding up to ``total_bytes``; its commit."""
    work = root / "work"
    size = total_bytes // files
    for i in range(files):
        folder = work / f"d{i % 100:02d}" / f"e{i // 100 % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    git("init", "-q", "--initial-branch=main", str(work))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "bench", cwd=work)
    bare = root / "repo.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    shutil.rmtree(work)
    return bare, git("--git-dir", str(bare), "rev-parse", "main").strip()


def timed(action: Any) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def bench_checkout(scratch: Path, files: int, total_bytes: int, rounds: int) -> dict[str, Any]:
    log(f"checkout: making a repository of {files} files / {total_bytes // 1_000_000} MB")
    bare, commit = make_repository(scratch / "server", files, total_bytes)
    volume = scratch / "volume"
    spec = CodeSpec(source="repository", repo_url=bare.as_uri(), ref="main", mirror="1-bench")
    warm = timed(lambda: check_out(spec, {}, volume, volume / "runs/warm", scratch / "s"))
    shutil.rmtree(volume / "runs/warm")
    mirror = volume / "git" / "1-bench.git"
    ours: list[float] = []
    by_branch: list[float] = []
    peer: list[float] = []
    peer_parallel: list[float] = []
    known = spec.model_copy(update={"commit": commit})

    def worktree_add(tree: Path, *config: str) -> None:
        git("--git-dir", str(mirror), *config, "worktree", "add", "-q", "--detach", str(tree), commit)

    for i in range(rounds):
        ours.append(timed(lambda i=i: check_out(known, {}, volume, volume / f"runs/o{i}", scratch / "s")))
        shutil.rmtree(volume / f"runs/o{i}")
        for times, config in ((peer, ()), (peer_parallel, ("-c", f"checkout.workers={CHECKOUT_WORKERS}"))):
            tree = scratch / f"worktree{i}"
            times.append(timed(lambda tree=tree, config=config: worktree_add(tree, *config)))
            shutil.rmtree(tree)
            git("--git-dir", str(mirror), "worktree", "prune")
        by_branch.append(timed(lambda i=i: check_out(spec, {}, volume, volume / f"runs/b{i}", scratch / "s")))
        shutil.rmtree(volume / f"runs/b{i}")
        log(
            f"  round {i + 1}: ours {ours[-1]:.2f} s, by branch {by_branch[-1]:.2f} s, git worktree add"
            f" {peer[-1]:.2f} s, with checkout.workers={CHECKOUT_WORKERS} {peer_parallel[-1]:.2f} s"
        )
    ours_p50, peer_p50 = statistics.median(ours), statistics.median(peer)
    return {
        "files": files,
        "bytes": total_bytes,
        "first_checkout_s": round(warm, 2),
        "checkout_at_commit_s": summary(ours, 3, with_min=True),
        "checkout_by_branch_s": summary(by_branch, 3, with_min=True),
        "peer_git_worktree_add_s": summary(peer, 3, with_min=True),
        "peer_git_worktree_add_same_workers_s": summary(peer_parallel, 3, with_min=True),
        "checkout_workers": CHECKOUT_WORKERS,
        "ratio_p50": round(ours_p50 / peer_p50, 3),
        "ratio_p50_same_workers": round(ours_p50 / statistics.median(peer_parallel), 3),
    }


def bench_launch(scratch: Path, runs: int) -> dict[str, Any]:
    from control.client import ControlClient

    bare, _ = make_repository(scratch / "small", 50, 50 * 2_000)
    stack = start_stack(scratch / "data", None, scratch, ROOT)
    try:
        with ControlClient(stack.url, stack.token) as client:
            client.create_project("bench", repo_url=bare.as_uri())
            latencies: dict[str, list[float]] = {"repository": [], "none": []}
            for i in range(runs + 2):  # the first of each warms the mirror and the worker's imports
                for source in ("repository", "none"):
                    requested = time.time()
                    created = (
                        client.create_run("bench", ["sh", "-c", "date +%s.%N"], ref="main")
                        if source == "repository"
                        else client.create_run("bench", ["sh", "-c", "date +%s.%N"], code="none")
                    )
                    followed = follow_to_end(client, created.id)
                    check_succeeded(followed.run)
                    if i >= 2:
                        latencies[source].append((float(followed.stdout()) - requested) * 1000)
                    time.sleep(0.2)
    finally:
        stack.stop()
    # The agent logs each checkout's own duration: the part of the overhead that is git's.
    agent = [float(m) * 1000 for m in re.findall(r"checked out \w+ in ([0-9.]+) s", stack.log_path.read_text())]
    return {
        "agent_checkout_ms": summary(agent[2:]),
        "repository_ms": summary(latencies["repository"]),
        "peer_no_checkout_ms": summary(latencies["none"]),
        "checkout_overhead_p50_ms": round(
            statistics.median(latencies["repository"]) - statistics.median(latencies["none"]), 1
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 1,000 files / 20 MB, 2 rounds, 5 launches")
    parser.add_argument("--rounds", type=int, help="checkout rounds (default 5)")
    parser.add_argument("--runs", type=int, help="launches measured per variant (default 20)")
    parser.add_argument("--only", default="checkout,launch", help="checkout, launch or both (default)")
    args = parser.parse_args(argv)
    files, total = (1_000, 20_000_000) if args.quick else (10_000, 200_000_000)
    rounds = args.rounds or (2 if args.quick else 5)
    runs = args.runs or (5 if args.quick else 20)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="devyard-bench-checkout-"))
    metrics: dict[str, Any] = {}
    try:
        if "checkout" in args.only:
            metrics["checkout"] = bench_checkout(scratch, files, total, rounds)
        if "launch" in args.only:
            metrics["launch"] = bench_launch(scratch, runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    met = {}
    if "checkout" in metrics:
        figures = metrics["checkout"]
        met["checkout_ratio"] = (
            max(figures["ratio_p50"], figures["ratio_p50_same_workers"]) <= TARGETS["checkout_ratio_max"]
        )
    if "launch" in metrics:
        met["launch_p50"] = metrics["launch"]["repository_ms"]["p50"] <= TARGETS["launch_p50_ms"]
    print(
        json.dumps(
            {
                "name": "checkout",
                "metrics": metrics,
                "peer": {k: v for m in metrics.values() for k, v in m.items() if k.startswith("peer")},
                "targets": TARGETS,
                "met": met,
                "setup": {
                    "quick": args.quick,
                    "cores": os.cpu_count(),
                    "git": git("--version").strip(),
                    "load_average_at_start": load_at_start,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
