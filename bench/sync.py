"""`yard sync` on the embedded stack, each figure next to rsync (or git) measured in the same run.

Against the real stack (``yard up --detach`` in a scratch data dir and config home, SQLite, the
in-process local agent, a real develop server), on a generated git repository of 10,000 files
and 200 MB (sizes follow a Pareto law, as source trees do: mostly small files, a few big ones):

1. initial sync into an empty workspace: the files alone (the engine, in this process, while
   the API and the develop server run in their own) and the whole ``yard sync`` command
   (process start, files and the git push). Peer: ``rsync -a`` of the same files to an rsync
   daemon on 127.0.0.1 (over loopback, like the sync), and dir to dir.
2. no-change re-sync: the engine, and the ``yard sync`` command. Peer: ``git status`` on the
   tree (and rsync's own no-change run, for reference).
3. propagation: ``yard sync --watch`` running; one file edited, the time until the workspace has
   the new content (polled on disk every 0.2 ms). Peer: rsync of the tree after a one-file edit.
4. idle CPU of ``yard sync --watch`` watching the tree (from /proc, over 20 s).

    .venv/bin/python bench/sync.py            # the figures in docs/benchmarks.md (~2 min)
    .venv/bin/python bench/sync.py --quick    # a smoke test (1,000 files, 20 MB)

Needs ``rsync`` and ``git`` on PATH. Progress goes to stderr, one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from control.client import ControlClient  # noqa: E402
from sync.engine import SyncEngine  # noqa: E402

YARD = str(Path(sys.executable).parent / "yard")
TARGETS = {
    "propagation_p50_ms": 30.0,
    "propagation_p99_ms": 100.0,
    "initial_sync_ratio_to_rsync": 1.0,
    "resync_s": 0.3,
    "resync_ratio_to_git_status": 2.0,
    "idle_cpu_percent": 1.0,
}


def log(message: str) -> None:
    print(f"[bench/sync] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 50), digits),
        "p90": round(percentile(ordered, 90), digits),
        "p99": round(percentile(ordered, 99), digits),
        "min": round(ordered[0], digits) if ordered else 0.0,
        "max": round(ordered[-1], digits) if ordered else 0.0,
        "mean": round(statistics.fmean(ordered), digits) if ordered else 0.0,
    }


def generate_tree(root: Path, files: int, total_bytes: int, seed: int = 7) -> None:
    """``files`` files in 50 x 20 folders, sizes Pareto-distributed to add up to ``total_bytes``."""
    rng = random.Random(seed)
    weights = [rng.paretovariate(1.2) for _ in range(files)]
    scale = total_bytes / sum(weights)
    block = memoryview(rng.randbytes(8 * 1024 * 1024))
    for number, weight in enumerate(weights):
        size = max(1, int(weight * scale))
        folder = root / f"pkg{number % 50:02d}" / f"mod{(number // 50) % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"file{number:05d}.txt", "wb") as out:
            start = rng.randrange(len(block))
            while size:
                piece = block[start : start + size]
                out.write(piece)
                size -= len(piece)
                start = 0


def tree_size(root: Path) -> tuple[int, int]:
    count = total = 0
    for folder, dirs, names in os.walk(root):
        if ".git" in dirs:
            dirs.remove(".git")
        for name in names:
            count += 1
            total += os.lstat(os.path.join(folder, name)).st_size
    return count, total


class Retirer:
    """Empties a target by moving its contents aside, deleting nothing until the bench ends.

    Deleting the 10,000 files of the last run just before filling the target again makes the
    next run pay for it: on ext4 without a journal (this VM's), the inode allocator skips every
    inode freed in the last minute (``recently_deleted``), and that scan cost 1-3 s of kernel
    CPU per run, at random to whichever side ran after the deletions (single-run ratios of
    0.6-2.2x). A user's first sync goes into a workspace nobody just emptied, so neither our
    sync nor rsync is measured with that cost: the old contents are renamed into a graveyard
    on the same filesystem (one rename per top-level entry) and removed with the scratch folder.

    The retired files' page cache is dropped too (``sync``, then ``POSIX_FADV_DONTNEED`` on each
    file). Kept, it grows by 200 MB a run, so every run after the first writes into memory the
    VM has never touched, and the host faults each page in: a write's copy into the page cache
    then ran at ~400 MB/s instead of GB/s (``perf``: ``copy_folio_from_iter_atomic``), adding
    0.5-0.8 s of kernel CPU, at random to either side (rsync's receiver went from 0.4 to 1.1 s).
    Dropped, the pages are reused and the first run and the tenth cost the same.
    """

    def __init__(self, graveyard: Path) -> None:
        self.graveyard = graveyard
        self.count = 0

    def empty(self, folder: Path) -> None:
        if not folder.exists():
            return
        self.count += 1
        grave = self.graveyard / str(self.count)
        grave.mkdir(parents=True)
        for child in folder.iterdir():
            child.rename(grave / child.name)
        subprocess.run(["sync"], check=True)  # clean pages can be dropped; dirty ones cannot
        for directory, _, names in os.walk(grave):
            for name in names:
                try:
                    fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue  # a symlink
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def timed(argv: list[str], **options: Any) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **options)
    return time.perf_counter() - started


class Bench:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.data_dir = scratch / "data"
        self.tree = scratch / "tree"
        self.env = {
            **os.environ,
            "HOME": str(scratch),
            "XDG_CONFIG_HOME": str(scratch / "config"),
            "XDG_DATA_HOME": str(scratch / "xdg-data"),
            "XDG_STATE_HOME": str(scratch / "state"),
        }
        for key in ("DEVYARD_URL", "DEVYARD_TOKEN", "DEVYARD_PROJECT", "DEVYARD_PROFILE"):
            self.env.pop(key, None)
        os.environ["XDG_STATE_HOME"] = self.env["XDG_STATE_HOME"]  # the engine in this process too
        self.rsyncd: subprocess.Popen[bytes] | None = None

    def yard(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [YARD, *args],
            env=self.env,
            capture_output=True,
            text=True,
            cwd=cwd or self.scratch,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"yard {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def up(self) -> None:
        self.yard("up", "--detach", "--data-dir", str(self.data_dir), "--port", "0")
        import tomllib

        config = tomllib.loads((self.scratch / "config" / "devyard" / "config.toml").read_text())
        profile = config["profiles"]["local"]
        self.url, self.token = profile["url"], profile["token"]
        self.yard("projects", "add", "tree")
        server = json.loads(self.yard("dev", "start", "-p", "tree", "--json").stdout)
        self.server_id, self.workspace_name = int(server["id"]), str(server["workspace"])
        self.workspace = self.data_dir / "volume" / self.workspace_name

    def down(self) -> None:
        subprocess.run([YARD, "down", "--data-dir", str(self.data_dir)], env=self.env, capture_output=True)
        if self.rsyncd is not None:
            self.rsyncd.terminate()
            self.rsyncd.wait(10)

    def client(self) -> ControlClient:
        return ControlClient(self.url, self.token)

    def devserver_pid(self) -> int:
        return int(json.loads(next((self.data_dir / "devservers").glob("*/ready.json")).read_text())["pid"])

    def api_pids(self) -> list[int]:
        """The embedded stack's processes (the primary and its API workers)."""
        pattern = f"compose.supervisor --data-dir {self.data_dir}"
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    def engine(self, client: ControlClient) -> SyncEngine:
        return SyncEngine.open(client, self.server_id, self.workspace_name, self.tree)

    def forget_state(self) -> None:
        shutil.rmtree(self.scratch / "state", ignore_errors=True)

    def start_rsyncd(self) -> str:
        """An rsync daemon on 127.0.0.1 writing into ``scratch/rsync-target``; its URL."""
        import socket

        target = self.scratch / "rsync-target"
        target.mkdir()
        config = self.scratch / "rsyncd.conf"
        config.write_text(
            f"use chroot = no\npid file = {self.scratch / 'rsyncd.pid'}\n"
            f"[ws]\npath = {target}\nread only = no\nuid = {os.getuid()}\ngid = {os.getgid()}\n"
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        argv = ["rsync", "--daemon", "--no-detach", f"--config={config}", f"--port={port}", "--address=127.0.0.1"]
        self.rsyncd = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the rsync daemon did not start")
            time.sleep(0.02)
        self.rsync_target = target
        return f"rsync://127.0.0.1:{port}/ws/"


def make_repository(tree: Path) -> None:
    """A git repository committing the whole tree, packed as a clone is.

    Written with ``git fast-import`` (straight into a pack) rather than ``add``, ``commit`` and
    ``repack``: a repack deletes the 10,000 loose objects, and freshly deleted inodes make the
    next minute of file creation on this filesystem slow (see :class:`Retirer`).
    """
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "gc.auto=0"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=tree, check=True)
    paths = sorted(
        os.path.relpath(os.path.join(folder, name), tree)
        for folder, dirs, names in os.walk(tree)
        if not os.path.relpath(folder, tree).startswith(".git")
        for name in names
    )
    importer = subprocess.Popen([*git, "fast-import", "--quiet"], cwd=tree, stdin=subprocess.PIPE)
    assert importer.stdin is not None
    for mark, path in enumerate(paths, 1):
        content = (tree / path).read_bytes()
        importer.stdin.write(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(content), content))
    message = b"generated tree"
    importer.stdin.write(
        b"commit refs/heads/main\ncommitter bench <bench@example.com> 1700000000 +0000\n"
        b"data %d\n%s\n" % (len(message), message)
    )
    for mark, path in enumerate(paths, 1):
        importer.stdin.write(b"M 100644 :%d %s\n" % (mark, path.encode()))
    importer.stdin.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")
    subprocess.run([*git, "reset", "-q"], cwd=tree, check=True)  # the index, with every file's stat data
    if subprocess.run(["git", "status", "--porcelain"], cwd=tree, capture_output=True, check=True).stdout:
        raise RuntimeError("the generated repository does not match its tree")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process (with ``children``: of its reaped children instead)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def own_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_initial(bench: Bench, rsync_url: str, runs: int) -> dict[str, Any]:
    """Wall time of each way to fill an empty workspace, and the CPU every process involved
    spent on it: CPU is what a shared 2-core machine runs short of, and it varies less.

    Our sync and rsync over loopback take turns going first (ABBA), so neither always runs
    right after the other's writeback; every target is emptied by :class:`Retirer`.
    """
    files_only, command, rsync_loopback, rsync_dir = [], [], [], []
    files_cpu, rsync_cpu = [], []
    rsync_files = ["rsync", "-a", "--exclude=/.git"]
    server_pids = [bench.devserver_pid(), *bench.api_pids()]
    retire = Retirer(bench.scratch / "retired")
    rsync_dir_target = bench.scratch / "rsync-dir"
    assert bench.rsyncd is not None
    rsyncd_pid = bench.rsyncd.pid

    def ours(client: ControlClient) -> None:
        retire.empty(bench.workspace)
        bench.forget_state()
        subprocess.run(["sync"], check=True)  # dirty pages of the last run are not this run's cost
        before = time.process_time() + sum(cpu_seconds(pid) for pid in server_pids)
        started = time.perf_counter()
        report = bench.engine(client).sync(with_git=False)
        files_only.append(time.perf_counter() - started)
        files_cpu.append(time.process_time() + sum(cpu_seconds(pid) for pid in server_pids) - before)
        assert report.files > 0 and not report.refused, report

    def theirs() -> None:
        retire.empty(bench.rsync_target)
        subprocess.run(["sync"], check=True)
        before = own_children_cpu() + cpu_seconds(rsyncd_pid, children=True)
        rsync_loopback.append(timed([*rsync_files, f"{bench.tree}/", rsync_url]))
        time.sleep(0.2)  # the daemon reaps its connection's process
        rsync_cpu.append(own_children_cpu() + cpu_seconds(rsyncd_pid, children=True) - before)

    with bench.client() as client:
        for number in range(runs):
            if number % 4 in (0, 3):
                ours(client)
                theirs()
            else:
                theirs()
                ours(client)

            retire.empty(bench.workspace)
            bench.forget_state()
            subprocess.run(["sync"], check=True)
            command.append(timed([YARD, "sync", "-p", "tree"], cwd=bench.tree, env=bench.env))

            if rsync_dir_target.exists():
                retire.empty(rsync_dir_target)
            subprocess.run(["sync"], check=True)
            rsync_dir.append(timed([*rsync_files, f"{bench.tree}/", f"{rsync_dir_target}/"]))
            log(
                f"initial {number + 1}/{runs}: files {files_only[-1]:.2f} s ({files_cpu[-1]:.2f} s CPU),"
                f" yard sync {command[-1]:.2f} s, rsync loopback {rsync_loopback[-1]:.2f} s"
                f" ({rsync_cpu[-1]:.2f} s CPU), rsync dir {rsync_dir[-1]:.2f} s"
            )
    files_p50 = statistics.median(files_only)
    ratios = [ours_s / theirs_s for ours_s, theirs_s in zip(files_only, rsync_loopback, strict=True)]
    return {
        "files_s": summary(files_only),
        "files_cpu_s_all_processes": summary(files_cpu),
        "yard_sync_command_s": summary(command),
        "peer_rsync_loopback_s": summary(rsync_loopback),
        "peer_rsync_loopback_cpu_s": summary(rsync_cpu),
        "peer_rsync_dir_to_dir_s": summary(rsync_dir),
        "ratio_files_to_rsync_loopback": round(files_p50 / statistics.median(rsync_loopback), 2),
        "ratio_files_to_rsync_loopback_per_run": [round(r, 2) for r in ratios],
        "ratio_files_to_rsync_dir": round(files_p50 / statistics.median(rsync_dir), 2),
        "ratio_command_to_rsync_loopback": round(statistics.median(command) / statistics.median(rsync_loopback), 2),
    }


def bench_resync(bench: Bench, rsync_url: str, runs: int) -> dict[str, Any]:
    engine_s, command, status, rsync = [], [], [], []
    with bench.client() as client:
        bench.engine(client).sync()  # warm: the develop server hashes what it received once
        for _ in range(runs):
            started = time.perf_counter()
            report = bench.engine(client).sync()
            engine_s.append(time.perf_counter() - started)
            assert not report.changed, report
            command.append(timed([YARD, "sync", "-p", "tree"], cwd=bench.tree, env=bench.env))
            status.append(timed(["git", "status", "--porcelain"], cwd=bench.tree))
            rsync.append(timed(["rsync", "-a", "--exclude=/.git", f"{bench.tree}/", rsync_url]))
    log(f"re-sync: engine {statistics.median(engine_s):.3f} s, yard sync {statistics.median(command):.3f} s")
    return {
        "engine_s": summary(engine_s),
        "yard_sync_command_s": summary(command),
        "peer_git_status_s": summary(status),
        "peer_rsync_no_change_s": summary(rsync),
        "ratio_engine_to_git_status": round(statistics.median(engine_s) / statistics.median(status), 1),
    }


def start_watch(bench: Bench) -> subprocess.Popen[str]:
    watch = subprocess.Popen(
        [YARD, "sync", "--watch", "--json", "-p", "tree"],
        cwd=bench.tree,
        env=bench.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert watch.stdout is not None
    first = json.loads(watch.stdout.readline())  # the initial full sync is done
    assert first["kind"] == "sync", first
    return watch


def bench_propagation(bench: Bench, rsync_url: str, edits: int) -> dict[str, Any]:
    latencies = []
    target = bench.tree / "pkg07" / "mod03" / "file00157.txt"
    remote = bench.workspace / "pkg07" / "mod03" / "file00157.txt"
    watch = start_watch(bench)
    try:
        for number in range(edits):
            content = f"edit {number} {time.time_ns()}\n".encode() * 20
            started = time.perf_counter()
            target.write_bytes(content)
            deadline = started + 5
            while True:
                try:
                    if remote.read_bytes() == content:
                        break
                except OSError:
                    pass
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"edit {number} did not reach the workspace within 5 s")
                time.sleep(0.0002)
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05 + random.random() * 0.05)
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(10)
    peer = []
    for number in range(5):
        target.write_bytes(f"rsync edit {number}\n".encode())
        peer.append(timed(["rsync", "-a", "--exclude=/.git", f"{bench.tree}/", rsync_url]) * 1000)
    log(f"propagation p50 {statistics.median(latencies):.1f} ms (rsync {statistics.median(peer):.0f} ms)")
    return {"one_file_edit_ms": summary(latencies, 1), "peer_rsync_after_one_edit_ms": summary(peer, 1)}


def bench_idle(bench: Bench, seconds: float) -> dict[str, Any]:
    watch = start_watch(bench)
    try:
        time.sleep(1)
        before, started = cpu_seconds(watch.pid), time.monotonic()
        time.sleep(seconds)
        used, elapsed = cpu_seconds(watch.pid) - before, time.monotonic() - started
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(10)
    percent = used / elapsed * 100
    log(f"idle watch: {percent:.2f} % of a core")
    return {"idle_cpu_percent": round(percent, 2), "over_s": round(elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 files / 20 MB, few repetitions: a smoke test")
    args = parser.parse_args()
    files, total = (1_000, 20 * 1024 * 1024) if args.quick else (10_000, 200 * 1024 * 1024)
    runs, edits, idle_s = (2, 30, 3.0) if args.quick else (5, 200, 20.0)
    for tool in ("rsync", "git"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/sync.py needs {tool} on PATH (apt-get install -y {tool}).")
    with tempfile.TemporaryDirectory(prefix="devyard-bench-sync-") as tmp:
        bench = Bench(Path(tmp))
        bench.tree.mkdir()
        generate_tree(bench.tree, files, total)
        make_repository(bench.tree)
        count, size = tree_size(bench.tree)
        log(f"tree: {count:,} files, {size / 1e6:.0f} MB")
        bench.up()
        try:
            rsync_url = bench.start_rsyncd()
            metrics: dict[str, Any] = {"initial_sync": bench_initial(bench, rsync_url, runs)}
            metrics["resync"] = bench_resync(bench, rsync_url, runs * 2)
            metrics["propagation"] = bench_propagation(bench, rsync_url, edits)
            metrics["idle_watch"] = bench_idle(bench, idle_s)
        finally:
            bench.down()
    initial, resync, propagation = metrics["initial_sync"], metrics["resync"], metrics["propagation"]
    met = {
        "propagation_p50": propagation["one_file_edit_ms"]["p50"] <= TARGETS["propagation_p50_ms"],
        "propagation_p99": propagation["one_file_edit_ms"]["p99"] <= TARGETS["propagation_p99_ms"],
        "initial_sync_vs_rsync_loopback": initial["ratio_files_to_rsync_loopback"]
        <= TARGETS["initial_sync_ratio_to_rsync"],
        "resync_engine": resync["engine_s"]["p50"] <= TARGETS["resync_s"],
        "resync_vs_git_status": resync["ratio_engine_to_git_status"] <= TARGETS["resync_ratio_to_git_status"],
        "idle_cpu": metrics["idle_watch"]["idle_cpu_percent"] <= TARGETS["idle_cpu_percent"],
    }
    peer = {
        "rsync_loopback_initial_s": initial["peer_rsync_loopback_s"],
        "rsync_dir_to_dir_initial_s": initial["peer_rsync_dir_to_dir_s"],
        "git_status_s": resync["peer_git_status_s"],
        "rsync_no_change_s": resync["peer_rsync_no_change_s"],
        "rsync_after_one_edit_ms": propagation["peer_rsync_after_one_edit_ms"],
    }
    result = {
        "name": "sync",
        "quick": args.quick,
        "tree": {"files": count, "bytes": size},
        "targets": TARGETS,
        "met": met,
        "metrics": metrics,
        "peer": peer,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
