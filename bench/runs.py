"""Runs on the embedded stack: launch latency, live log latency and log throughput.

Four measurements against the real server (``python -m compose.supervisor`` with its in-process
local agent, started as a separate process on 127.0.0.1), on SQLite and, when reachable, on
PostgreSQL; each with its peer measured in the same run:

1. launch latency: wall time just before ``create_run`` until the command is running (it prints
   ``date +%s.%N``). Runs are sequential. Peer: the same command started with ``subprocess.run``
   (the floor), and the start of a bare ``python -c "import runner.worker"`` (what every run pays
   for its worker process).
2. log latency: the command prints lines that embed their own ``time.time()``, flushing each; a
   follower in this process (``ControlClient.follow_logs``, opened right after ``create_run``)
   stamps each SSE event on arrival and decodes it afterwards, so the follower's own work never
   delays the next stamp. Two variants: sparse (a line every 20 ms) and bursts (1,000 lines at
   once every 100 ms).
3. throughput: ``yard run -p P -- CMD > out`` end to end (CLI start, launch, capture, shipping,
   store, follow, print) against ``CMD > file``; median of 3 each, interleaved. The stored log
   (``read_logs`` -> ``raw_output``) and the CLI's stdout must both equal the file byte for byte.
   CMD is the venv's Python writing 1,000,000 lines of 52 bytes with ``sys.stdout.write``: a
   program that formats its output costs something per line, as real tools do (``seq`` writes
   its 6.9 MB in ~10 ms, which would measure the pipeline against nothing; it is reported as an
   extra, not judged).

4. TLS: launch and log latency (1 and 2) over TLS, against the same over plain HTTP; two SQLite
   servers run at once and the measurements alternate between them round by round. Over TLS
   everything is TLS: the follower, the agent and the run worker shipping the log.

    .venv/bin/python bench/runs.py            # the figures in docs/benchmarks.md (~3 min)
    .venv/bin/python bench/runs.py --quick    # a smoke test: few runs, 100,000 lines

PostgreSQL comes from ``--postgres URL``, ``DEVYARD_TEST_DATABASE_URL`` or the local development
server; a fresh database ``devyard_bench_runs_<pid>`` is created and dropped afterwards. When none
is reachable the case is skipped and the JSON says why. Profiles and data live in a scratch
folder (``XDG_CONFIG_HOME`` / ``XDG_DATA_HOME`` point there), so the user's own are untouched.
Progress goes to stderr, the one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable without an install
    sys.path.insert(0, str(ROOT))

from bench.common import percentile, reachable_postgres, scratch_postgres, summary  # noqa: E402
from control.wire.runs import RunOut  # noqa: E402

HOST = "127.0.0.1"
# The substrate the measured stack launches on (`--substrate docker`: every run is a container of
# `--image`) and the Python the measured commands use there (the image's, not this venv's).
SUBSTRATE_ENV: dict[str, str] = {}
USER_PYTHON = sys.executable
LOCAL_POSTGRES = "postgresql+psycopg://devyard:devyard@127.0.0.1:5432/devyard"
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 600.0
PAUSE_BETWEEN_RUNS_S = 0.2  # lets the previous worker exit, so runs never overlap
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "launch_p50_ms": 250.0,
    "log_p50_ms": 50.0,
    "log_p99_ms": 200.0,
    "throughput_ratio_max": 1.5,
    "tls_log_p50_ratio_max": 1.2,
}

LAUNCH_COMMAND = ["sh", "-c", "date +%s.%N"]

SPARSE_SCRIPT = """
import sys, time
w, f = sys.stdout.write, sys.stdout.flush
due = time.time()
for i in range({lines}):
    w("%.6f %d\\n" % (time.time(), i)); f()
    due += {interval}
    time.sleep(max(0.0, due - time.time()))
"""

BURST_SCRIPT = """
import sys, time
w, f = sys.stdout.write, sys.stdout.flush
pad = "x" * 64
due = time.time()
for b in range({bursts}):
    for i in range({per_burst}):
        w("%.6f %d.%d %s\\n" % (time.time(), b, i, pad)); f()
    due += {interval}
    time.sleep(max(0.0, due - time.time()))
"""

# 52 bytes a line: 7 digits, a space, 43 characters and the newline.
THROUGHPUT_SCRIPT = """
import sys
w = sys.stdout.write
for i in range({lines}):
    w(f"{{i:07d}} the quick brown fox jumps over the lazy dog\\n")
"""


def log(message: str) -> None:
    print(f"[bench/runs] {message}", file=sys.stderr, flush=True)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    """The embedded server process, a client for it, and the environment a CLI needs to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    cli_env: dict[str, str]
    log_path: Path
    trust: Any = None  # control.trust.Trust of a TLS stack: exactly its certificate file

    def client(self) -> Any:
        from control.client import ControlClient

        return ControlClient(self.url, self.token, trust=self.trust)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to this PID only; uvicorn shuts down gracefully
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def isolated_env(scratch: Path, source: Path) -> dict[str, str]:
    """This environment without DEVYARD_* settings, with profiles and data under ``scratch``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")}
    env.update(
        XDG_CONFIG_HOME=str(scratch / "config"),
        XDG_DATA_HOME=str(scratch / "data"),
        PYTHONUNBUFFERED="1",
    )
    if source != ROOT:  # an experimental copy wins over the editable install
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH")) if p)
    return env


def start_stack(
    data_dir: Path, database_url: str | None, scratch: Path, source: Path, tls: tuple[Path, Path] | None = None
) -> Stack:
    """``python -m compose.supervisor`` on a free port (serving TLS with ``tls``, a certificate and
    its key); returns once it answers its health check."""
    import httpx

    from control import profiles
    from control.datadir import DataDir
    from control.trust import Trust, client_context

    trust = Trust(pin_file=str(tls[0])) if tls else None
    verify = client_context(trust) if trust else False

    env = isolated_env(scratch, source)
    env.update(SUBSTRATE_ENV)
    if database_url:
        env["DEVYARD_DATABASE_URL"] = database_url
    log_path = scratch / f"server-{data_dir.name}.log"
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(data_dir), "--host", HOST, "--port", "0"]
    if tls:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(command, cwd=source, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server_file = DataDir(data_dir).server_file
    deadline = time.monotonic() + START_TIMEOUT_S
    answered = 0  # healthy on several fresh connections in a row: every API process took one
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"server exited with code {process.returncode} during start:\n{tail}")
        with suppress(OSError, ValueError, KeyError):
            info = json.loads(server_file.read_text())
            if info.get("pid") == process.pid:
                url = str(info["url"])
                try:
                    healthy = httpx.get(url + "/api/v1/health", timeout=2, verify=verify).status_code == 200
                except httpx.TransportError:
                    healthy = False
                answered = answered + 1 if healthy else 0
                if answered >= 8:
                    config = Path(env["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
                    token = profiles.load_profiles(config)[1][profiles.LOCAL].token
                    return Stack(process, url, token, env, log_path, trust)
                if healthy:
                    continue
        time.sleep(0.05)
    process.terminate()
    process.wait()
    raise RuntimeError(f"server did not become healthy within {START_TIMEOUT_S:.0f} s; see {log_path}")


# ---------------------------------------------------------------- PostgreSQL


# ---------------------------------------------------------------- following


@dataclass
class Followed:
    """What a follower saw: each chunk event's arrival time and payload, and the final run."""

    events: list[tuple[float, str]]
    run: RunOut

    def chunks(self) -> Iterator[tuple[float, bytes]]:
        for received, payload in self.events:
            yield received, base64.b64decode(json.loads(payload)["data"])

    def stdout(self) -> bytes:
        from control.logformat import raw_output

        return b"".join(raw_output(data) for _, data in self.chunks())


def follow_to_end(client: Any, run_id: int) -> Followed:
    """Follow the run's log until its ``end`` event; decoding is left for later."""
    events: list[tuple[float, str]] = []
    for event in client.follow_logs(run_id):
        received = time.time()
        if event.event == "chunk":
            events.append((received, event.data))
        elif event.event == "error":
            raise RuntimeError(f"log stream of run {run_id} failed: {event.data}")
        elif event.event == "end":
            break
    return Followed(events, client.get_run(run_id))


def check_succeeded(run: RunOut) -> None:
    if run.state != "succeeded":
        raise RuntimeError(f"run {run.id} ended {run.state} (exit {run.exit_code}): {run.error}")


# ---------------------------------------------------------------- 1. launch latency


def bare_launch_ms() -> float:
    requested = time.time()
    out = subprocess.run(LAUNCH_COMMAND, capture_output=True, check=True)
    return (float(out.stdout) - requested) * 1000


def worker_start_ms(source: Path) -> float:
    """A fresh interpreter importing the run worker: the floor of starting one."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import runner.worker"], cwd=source, check=True)
    return (time.perf_counter() - began) * 1000


def launch_latencies(
    client: Any, project: str, runs: int, warmup: int
) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """Launch latencies of ``runs`` sequential runs (after ``warmup`` ones), their phases, and
    the warm-up runs' latencies."""
    total: list[float] = []
    phases: dict[str, list[float]] = {"api_call": [], "to_worker_started": [], "worker_to_command": []}
    warm: list[float] = []
    for i in range(warmup + runs):
        requested = time.time()
        created = client.create_run(project, LAUNCH_COMMAND)
        answered = time.time()
        followed = follow_to_end(client, created.id)
        check_succeeded(followed.run)
        printed = float(followed.stdout())
        latency = (printed - requested) * 1000
        if i < warmup:
            warm.append(round(latency, 1))
        else:
            total.append(latency)
            started = epoch(followed.run.started_at)
            phases["api_call"].append((answered - requested) * 1000)
            if started is not None:
                phases["to_worker_started"].append((started - requested) * 1000)
                phases["worker_to_command"].append((printed - started) * 1000)
        time.sleep(PAUSE_BETWEEN_RUNS_S)
    return total, phases, warm


def bench_launch(
    client: Any, project: str, runs: int, warmup: int, source: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    total, phases, warm = launch_latencies(client, project, runs, warmup)
    bare = [bare_launch_ms() for _ in range(runs)]
    worker = [worker_start_ms(source) for _ in range(5)]
    launch, bare_launch = summary(total), summary(bare, 2)
    phases_p50 = {k: round(percentile(sorted(v), 50), 1) for k, v in phases.items()}
    metrics = {
        "command": " ".join(LAUNCH_COMMAND[:2]) + f" '{LAUNCH_COMMAND[2]}'",
        "latency_ms": launch,
        "warmup_runs_ms": warm,
        "phases_p50_ms": phases_p50,
    }
    peer = {"bare_subprocess_ms": bare_launch, "python_import_runner_worker_ms": summary(worker)}
    log(
        f"launch: p50 {launch['p50']} ms, p99 {launch['p99']} ms (phases p50 {phases_p50}); "
        f"bare subprocess p50 {bare_launch['p50']} ms"
    )
    return metrics, peer


# ---------------------------------------------------------------- 2. log latency


def log_latencies(client: Any, project: str, script: str) -> tuple[list[float], list[float], int]:
    """Per line: from its print to its arrival at the follower, and to its capture by the worker;
    and the number of chunk events."""
    created = client.create_run(project, [USER_PYTHON, "-c", script])
    followed = follow_to_end(client, created.id)
    check_succeeded(followed.run)
    from control.logformat import decode

    end_to_end: list[float] = []
    capture: list[float] = []
    for received, data in followed.chunks():
        for record in decode(data):
            if record.stream not in ("m", "o") or not record.complete:
                continue
            printed = float(record.text.split(b" ", 1)[0])
            end_to_end.append((received - printed) * 1000)
            capture.append(record.ts_ms - printed * 1000)
    time.sleep(PAUSE_BETWEEN_RUNS_S)
    return end_to_end, capture, len(followed.events)


def bench_log_variant(client: Any, project: str, script: str) -> dict[str, Any]:
    end_to_end, capture, chunks = log_latencies(client, project, script)
    return {
        "lines": len(end_to_end),
        "chunks": chunks,
        "latency_ms": summary(end_to_end),
        # When the worker read the line (its record stamp, 1 ms resolution), and from there on.
        "capture_p50_ms": round(percentile(sorted(capture), 50), 1),
        "capture_p99_ms": round(percentile(sorted(capture), 99), 1),
    }


def bench_log_latency(client: Any, project: str, args: argparse.Namespace) -> dict[str, Any]:
    sparse = SPARSE_SCRIPT.format(lines=args.sparse_lines, interval=0.02)
    bursts = BURST_SCRIPT.format(bursts=args.bursts, per_burst=1000, interval=0.1)
    result = {
        "sparse": {
            "what": f"{args.sparse_lines} lines, one every 20 ms, flushed each",
            **bench_log_variant(client, project, sparse),
        },
        "bursts": {
            "what": f"{args.bursts} bursts of 1,000 lines of ~90 bytes, one burst every 100 ms, flushed each line",
            **bench_log_variant(client, project, bursts),
        },
    }
    for name, figures in result.items():
        log(f"log latency {name}: {figures['latency_ms']} over {figures['chunks']} chunks")
    return result


# ---------------------------------------------------------------- 3. throughput


def timed_to_file(command: list[str], target: Path, env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Run ``command > target``; wall seconds, CPU seconds of the child, exit code."""
    cpu = children_cpu_s()
    with open(target, "wb") as out:
        began = time.perf_counter()
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, env=env, check=False)
        wall = time.perf_counter() - began
    if done.returncode != 0:
        log(f"{command[0]} exited {done.returncode}: {done.stderr.decode(errors='replace').strip()[:500]}")
    return wall, children_cpu_s() - cpu, done.returncode


def timed_on_pty(command: list[str], target: Path) -> float:
    """Run the command on a bare pseudo-terminal (output processing off, as a run's) and copy
    what it writes to ``target``: the floor of any capture through a terminal. Wall seconds."""
    import termios

    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~(termios.OPOST | termios.ONLCR)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    with open(target, "wb") as out:
        while True:
            try:
                piece = os.read(master, 1 << 18)
            except OSError:  # EIO: every holder of the terminal closed it
                break
            if not piece:
                break
            out.write(piece)
    child.wait()
    os.close(master)
    return time.perf_counter() - began


def bench_throughput(
    stack: Stack,
    client: Any,
    project: str,
    command: list[str],
    repeats: int,
    scratch: Path,
    source: Path,
    tty: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tty``: `yard run --tty`; the peer also gets the command on a bare terminal."""
    from control.logformat import raw_output

    yard = str(Path(sys.executable).parent / "yard")
    reference: bytes | None = None
    direct: list[float] = []
    direct_cpu: list[float] = []
    cli: list[float] = []
    cli_cpu: list[float] = []
    in_run: list[float] = []
    server_cpu: list[float] = []
    chunks: list[int] = []
    on_pty: list[float] = []
    identical_stored, identical_stdout, identical_direct = True, True, True
    for i in range(repeats):
        path = scratch / f"direct-{i}.out"
        wall, cpu, code = timed_to_file(command, path)
        if code != 0:
            raise RuntimeError(f"direct command failed with exit code {code}")
        data = path.read_bytes()
        path.unlink()
        reference = reference if reference is not None else data
        identical_direct &= data == reference
        direct.append(wall)
        direct_cpu.append(cpu)
        if tty:
            path = scratch / f"pty-{i}.out"
            on_pty.append(timed_on_pty(command, path))
            identical_direct &= path.read_bytes() == reference
            path.unlink()

        path = scratch / f"yard-{i}.out"
        server_before = process_cpu_s(stack.process.pid)
        tty_flag = ["--tty"] if tty else []
        wall, cpu, code = timed_to_file([yard, "run", "-p", project, *tty_flag, "--", *command], path, stack.cli_env)
        server_cpu.append(process_cpu_s(stack.process.pid) - server_before)
        if code != 0:
            raise RuntimeError(f"yard run failed with exit code {code}")
        cli.append(wall)
        cli_cpu.append(cpu)
        identical_stdout &= path.read_bytes() == reference
        path.unlink()
        run = client.list_runs(limit=1, project=project).items[0]
        check_succeeded(run)
        blob, last_seq = client.read_logs(run.id)
        identical_stored &= raw_output(blob) == reference
        chunks.append(last_seq)
        started, finished = epoch(run.started_at), epoch(run.finished_at)
        if started is not None and finished is not None:
            in_run.append(finished - started)
        del blob
        time.sleep(PAUSE_BETWEEN_RUNS_S)
    assert reference is not None
    # The CLI's fixed cost: importing its modules, and a whole `yard --help` (main() imports more).
    cli_import, cli_help = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tui.cli.main"], cwd=source, env=stack.cli_env, check=True)
        cli_import.append(time.perf_counter() - began)
        began = time.perf_counter()
        subprocess.run([yard, "--help"], stdout=subprocess.DEVNULL, env=stack.cli_env, check=True)
        cli_help.append(time.perf_counter() - began)
    yard_s, direct_s = statistics.median(cli), statistics.median(direct)
    metrics = {
        "yard_run_s": round(yard_s, 3),
        "yard_run_all_s": [round(x, 3) for x in cli],
        "yard_cli_cpu_s": round(statistics.median(cli_cpu), 3),
        "server_cpu_s": round(statistics.median(server_cpu), 3),
        "worker_started_to_finished_s": round(statistics.median(in_run), 3) if in_run else None,
        "chunks": statistics.median(chunks),
        "ratio": round(yard_s / direct_s, 2),
        "bytes": len(reference),
        "lines": reference.count(b"\n"),
        "stored_log_identical": identical_stored,
        "stdout_identical": identical_stdout,
    }
    peer = {
        "direct_to_file_s": round(direct_s, 3),
        "direct_to_file_all_s": [round(x, 3) for x in direct],
        "direct_cpu_s": round(statistics.median(direct_cpu), 3),
        "direct_outputs_identical": identical_direct,
        "python_import_cli_s": round(statistics.median(cli_import), 3),
        "yard_help_s": round(statistics.median(cli_help), 3),
    }
    if tty:
        pty_s = statistics.median(on_pty)
        peer["direct_on_pty_s"] = round(pty_s, 3)
        peer["direct_on_pty_all_s"] = [round(x, 3) for x in on_pty]
        metrics["ratio_to_pty"] = round(yard_s / pty_s, 2)
    log(
        f"throughput: yard run {yard_s:.2f} s vs direct {direct_s:.2f} s (x{metrics['ratio']}), "
        f"stored identical {identical_stored}, stdout identical {identical_stdout}"
    )
    return metrics, peer


# ---------------------------------------------------------------- 4. TLS against plain HTTP


def bench_tls(args: argparse.Namespace, scratch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Launch and log latency over TLS (the CLI's client, the agent, the run worker all on TLS,
    a self-signed certificate pinned as the embedded stack pins its own) against the same on
    plain HTTP, SQLite both. Both servers run at once and the measurements alternate between
    them round by round (who goes first alternating too), so load on the machine falls on both."""
    from compose.stack.tls import self_signed

    cert, key = self_signed(scratch / "tls-files", HOST)
    stacks = {
        "plain": start_stack((scratch / "plain-peer").resolve(), None, scratch, args.source),
        "tls": start_stack((scratch / "tls").resolve(), None, scratch, args.source, tls=(cert, key)),
    }
    launch: dict[str, list[float]] = {name: [] for name in stacks}
    logs: dict[str, dict[str, list[float]]] = {name: {"sparse": [], "bursts": []} for name in stacks}
    capture: dict[str, dict[str, list[float]]] = {name: {"sparse": [], "bursts": []} for name in stacks}
    # p50 of each round, TLS over plain: how much of a ratio is the machine's noise.
    round_ratios: dict[str, list[float]] = {"sparse": [], "bursts": []}
    scripts = {
        "sparse": SPARSE_SCRIPT.format(lines=args.sparse_lines, interval=0.02),
        "bursts": BURST_SCRIPT.format(bursts=args.bursts, per_burst=1000, interval=0.1),
    }
    clients = {name: stack.client() for name, stack in stacks.items()}
    try:
        for name, stack in stacks.items():
            log(f"tls: {name} server pid {stack.process.pid} at {stack.url}")
            clients[name].create_project("bench")
        rounds = args.tls_rounds
        for round_ in range(rounds):
            order = ["plain", "tls"] if round_ % 2 == 0 else ["tls", "plain"]
            this_round: dict[str, dict[str, float]] = {}
            for name in order:
                total, _, _ = launch_latencies(clients[name], "bench", max(1, args.runs // rounds), 1)
                launch[name] += total
                for variant, script in scripts.items():
                    end_to_end, captured, _ = log_latencies(clients[name], "bench", script)
                    logs[name][variant] += end_to_end
                    capture[name][variant] += captured
                    this_round.setdefault(variant, {})[name] = percentile(sorted(end_to_end), 50)
            for variant, p50 in this_round.items():
                round_ratios[variant].append(round(p50["tls"] / p50["plain"], 2))
    finally:
        for client in clients.values():
            client.close()
        for stack in stacks.values():
            stack.stop()
    metrics: dict[str, Any] = {
        "what": "the same launches and log scripts over TLS and over plain HTTP, alternating, SQLite",
        "rounds": args.tls_rounds,
        "launch_latency_ms": summary(launch["tls"]),
        "log_latency_ms": {variant: summary(logs["tls"][variant]) for variant in scripts},
        "capture_p50_ms": {variant: round(percentile(sorted(capture["tls"][variant]), 50), 1) for variant in scripts},
        "log_p50_ratio_per_round": round_ratios,
    }
    peer: dict[str, Any] = {
        "launch_latency_ms": summary(launch["plain"]),
        "log_latency_ms": {variant: summary(logs["plain"][variant]) for variant in scripts},
        "capture_p50_ms": {
            variant: round(percentile(sorted(capture["plain"][variant]), 50), 1) for variant in scripts
        },
    }
    metrics["ratio_p50"] = {
        "launch": round(metrics["launch_latency_ms"]["p50"] / peer["launch_latency_ms"]["p50"], 2),
        **{
            f"log_{variant}": round(
                metrics["log_latency_ms"][variant]["p50"] / peer["log_latency_ms"][variant]["p50"], 2
            )
            for variant in scripts
        },
    }
    log(f"tls: p50 ratios over plain HTTP {metrics['ratio_p50']}")
    return metrics, peer


# ---------------------------------------------------------------- the run


def bench_backend(
    label: str, database_url: str | None, args: argparse.Namespace, scratch: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    from control.client import ControlClient

    data_dir = (scratch / label).resolve()
    data_dir.mkdir()
    stack = start_stack(data_dir, database_url, scratch, args.source)
    log(f"{label}: devyard server pid {stack.process.pid} at {stack.url}")
    metrics: dict[str, Any] = {"server_pid": stack.process.pid}
    peer: dict[str, Any] = {}
    try:
        with ControlClient(stack.url, stack.token) as client:
            client.create_project("bench")
            if "launch" in args.only:
                metrics["launch"], peer["launch"] = bench_launch(client, "bench", args.runs, args.warmup, args.source)
            if "logs" in args.only:
                metrics["log_latency"] = bench_log_latency(client, "bench", args)
            if "throughput" in args.only:
                python_lines = [USER_PYTHON, "-c", THROUGHPUT_SCRIPT.format(lines=args.lines)]
                metrics["throughput"], peer["throughput"] = bench_throughput(
                    stack, client, "bench", python_lines, args.repeats, scratch, args.source
                )
                metrics["throughput"]["command"] = f"python -c <sys.stdout.write of {args.lines:,} lines of 52 bytes>"
                seq = ["seq", str(args.lines)]
                extra, extra_peer = bench_throughput(stack, client, "bench", seq, args.repeats, scratch, args.source)
                metrics["throughput_seq_extra"] = {
                    **extra,
                    "command": " ".join(seq),
                    "direct_to_file_s": extra_peer["direct_to_file_s"],
                }
                # --tty: the same command on a pseudo-terminal, where Python line-buffers stdout
                # (one write per line); also against the command on a bare terminal.
                metrics["throughput_tty"], peer["throughput_tty"] = bench_throughput(
                    stack, client, "bench", python_lines, args.repeats, scratch, args.source, tty=True
                )
                metrics["throughput_tty"]["command"] = metrics["throughput"]["command"] + " under --tty"
    finally:
        stack.stop()
    return metrics, peer


def judge(figures: dict[str, Any]) -> dict[str, bool]:
    met = {}
    if "launch" in figures:
        met["launch_p50"] = figures["launch"]["latency_ms"]["p50"] <= TARGETS["launch_p50_ms"]
    for variant, values in figures.get("log_latency", {}).items():
        met[f"log_{variant}_p50"] = values["latency_ms"]["p50"] <= TARGETS["log_p50_ms"]
        met[f"log_{variant}_p99"] = values["latency_ms"]["p99"] <= TARGETS["log_p99_ms"]
    if "throughput" in figures:
        throughput = figures["throughput"]
        met["throughput_ratio"] = throughput["ratio"] <= TARGETS["throughput_ratio_max"]
        met["throughput_byte_identical"] = throughput["stored_log_identical"] and throughput["stdout_identical"]
    if "throughput_tty" in figures:
        tty = figures["throughput_tty"]
        met["throughput_tty_ratio"] = tty["ratio"] <= TARGETS["throughput_ratio_max"]
        met["throughput_tty_byte_identical"] = tty["stored_log_identical"] and tty["stdout_identical"]
    return met


def bench_backends(args: argparse.Namespace, scratch: Path, metrics: dict[str, Any], peer: dict[str, Any]) -> None:
    """Parts 1 to 3 on SQLite and, when reachable, PostgreSQL."""
    metrics["sqlite"], peer["sqlite"] = bench_backend("sqlite", None, args, scratch)
    if args.no_postgres:
        metrics["postgresql"] = {"skipped": "--no-postgres"}
        return
    candidates = [(u, 30.0) for u in (args.postgres, os.environ.get("DEVYARD_TEST_DATABASE_URL")) if u]
    candidates.append((LOCAL_POSTGRES, 5.0))
    url, why = reachable_postgres(candidates)
    if url is None:
        log(f"PostgreSQL skipped: {why}")
        metrics["postgresql"] = {"skipped": f"no reachable PostgreSQL ({why})"}
        return
    with scratch_postgres(url, "devyard_bench_runs") as bench_url:
        metrics["postgresql"], peer["postgresql"] = bench_backend("postgresql", bench_url, args, scratch)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews the figures
    scratch = Path(tempfile.mkdtemp(prefix="devyard-bench-runs-"))
    metrics: dict[str, Any] = {}
    peer: dict[str, Any] = {}
    met: dict[str, Any] = {}
    try:
        if args.only & {"launch", "logs", "throughput"}:  # not for --only tls
            bench_backends(args, scratch, metrics, peer)
        if "tls" in args.only:
            metrics["tls"], peer["tls"] = bench_tls(args, scratch)
    finally:
        if args.keep:
            log(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    for backend, figures in metrics.items():
        if "server_pid" in figures:
            met[backend] = judge(figures)
    if "ratio_p50" in metrics.get("tls", {}):
        ratios = metrics["tls"]["ratio_p50"]
        limit = TARGETS["tls_log_p50_ratio_max"]
        met["tls"] = {f"{name}_p50_ratio": ratios[name] <= limit for name in ("log_sparse", "log_bursts")}
    met["all"] = bool(met) and all(all(v.values()) for v in met.values())
    return {
        "name": "runs",
        "metrics": metrics,
        "peer": peer,
        "targets": TARGETS,
        "met": met,
        "setup": {
            "launch_runs": args.runs,
            "launch_warmup_runs": args.warmup,
            "sparse_lines": args.sparse_lines,
            "bursts": args.bursts,
            "throughput_lines": args.lines,
            "throughput_repeats": args.repeats,
            "cores": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "quick": args.quick,
            "substrate": args.substrate,
            "python": sys.version.split()[0],
            "source": str(args.source),
            "parts": sorted(args.only),
            "tls_rounds": args.tls_rounds,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 5 launches, 100,000 lines, 1 repeat")
    parser.add_argument("--runs", type=int, help="launches measured (default 30, quick 5)")
    parser.add_argument("--lines", type=int, help="lines of the throughput command (default 1,000,000, quick 100,000)")
    parser.add_argument("--repeats", type=int, help="throughput repetitions, median taken (default 3, quick 1)")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL URL of a role with CREATEDB")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="project tree to serve and run (default: this one; to compare an experimental copy)",
    )
    parser.add_argument(
        "--only",
        default="launch,logs,throughput,tls",
        help="comma-separated parts to measure: launch, logs, throughput, tls (default: all four)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (server logs)")
    parser.add_argument("--substrate", choices=["local", "docker"], default="local", help="where runs are launched")
    parser.add_argument("--image", default="devyard:test", help="docker substrate: the image runs use")
    args = parser.parse_args(argv)
    if args.substrate == "docker":
        global USER_PYTHON
        SUBSTRATE_ENV.update(DEVYARD_SUBSTRATE="docker", DEVYARD_DOCKER_IMAGE=args.image)
        USER_PYTHON = "python3"
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = args.only - {"launch", "logs", "throughput", "tls"}
    if unknown:
        parser.error(f"--only takes launch, logs, throughput and tls, not {', '.join(sorted(unknown))}")
    args.source = args.source.resolve()
    if args.source != ROOT:
        sys.path.insert(0, str(args.source))  # before the first import of control
    args.runs = args.runs or (5 if args.quick else 30)
    args.warmup = 1 if args.quick else 2
    args.lines = args.lines or (100_000 if args.quick else 1_000_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.sparse_lines = 50 if args.quick else 400
    args.bursts = 5 if args.quick else 50
    args.tls_rounds = 1 if args.quick else 6
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
