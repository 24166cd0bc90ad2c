"""Throughput and latency of the control API under 50 concurrent clients.

Measures ``GET /api/v1/health`` and ``GET /api/v1/audit?limit=50`` (the admin-only, keyset-paginated
audit log) over 100,000 seeded rows, on SQLite and on PostgreSQL, with a bare Starlette "hello"
route on the same uvicorn set-up measured in the same run as the peer.

The real server (``python -m compose.supervisor``) runs as a separate process on 127.0.0.1, so the
load generator never shares its interpreter. The generator is ``wrk`` when it is installed (a Lua
script draws a random cursor per request, so pages are spread over all rows, not only the first),
otherwise an asyncio client with 50 keep-alive connections in this process.

    .venv/bin/python bench/api.py            # ~10 s per case, the figures in docs/benchmarks.md
    .venv/bin/python bench/api.py --quick    # ~2 s per case and 10,000 rows: a smoke test

PostgreSQL comes from ``--postgres URL``, ``DEVYARD_TEST_DATABASE_URL`` or the local development
server; a fresh database ``devyard_bench_<pid>`` is created and dropped afterwards. When none is
reachable the case is skipped and the JSON says why. Progress goes to stderr, the one JSON object
to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable without an install
    sys.path.insert(0, str(ROOT))

from bench.common import percentile, reachable_postgres, scratch_postgres  # noqa: E402

HOST = "127.0.0.1"
HEALTH = "/api/v1/health"
LIST = "/api/v1/audit"
PAGE = 50
TARGET_LIST_P99_MS = 50.0
LOCAL_POSTGRES = "postgresql+psycopg://devyard:devyard@127.0.0.1:5432/devyard"
START_TIMEOUT_S = 60.0
ACTIONS = ("project.create", "environment.update", "token.create", "user.update", "run.start", "devserver.stop")
ACTORS = ("alice", "bob", "carol", "dave", "system")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench/api] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- load generation


@dataclass(frozen=True)
class Case:
    """One endpoint to hammer: a fixed path, or ``path&cursor=<random id in cursors>``."""

    path: str
    token: str | None = None
    cursors: tuple[int, int] | None = None


@dataclass(frozen=True)
class Result:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    generator_cpu_percent: float
    server_cpu_s: float
    load_average: float = 0.0  # 1-minute load average when the case ended
    samples: tuple[Result, ...] = ()

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_cpu_percent(self) -> float:
        return 100 * self.server_cpu_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_cpu_s_per_1000(self) -> float:
        """Server CPU seconds (all its processes) per 1,000 answered requests: robust to other load."""
        return 1000 * self.server_cpu_s / self.requests if self.requests else 0.0

    @classmethod
    def median(cls, results: list[Result]) -> Result:
        """Each figure's median over repeated runs (the runs themselves kept as samples)."""
        if len(results) == 1:
            return results[0]

        def mid(values: list[float]) -> float:
            ordered = sorted(values)
            n = len(ordered)
            return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2

        duration = mid([r.duration_s for r in results])
        requests = round(mid([r.requests_per_s for r in results]) * duration)
        return cls(
            requests=requests,
            duration_s=duration,
            p50_ms=mid([r.p50_ms for r in results]),
            p90_ms=mid([r.p90_ms for r in results]),
            p99_ms=mid([r.p99_ms for r in results]),
            max_ms=mid([r.max_ms for r in results]),
            errors=sum(r.errors for r in results),
            generator_cpu_percent=mid([r.generator_cpu_percent for r in results]),
            server_cpu_s=mid([r.server_cpu_s_per_1000 for r in results]) * requests / 1000,
            load_average=mid([r.load_average for r in results]),
            samples=tuple(results),
        )

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "requests_per_s": round(self.requests_per_s, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "requests": self.requests,
            "errors": self.errors,
            "duration_s": round(self.duration_s, 2),
            "server_cpu_percent": round(self.server_cpu_percent, 1),
            "server_cpu_s_per_1000_requests": round(self.server_cpu_s_per_1000, 3),
            "generator_cpu_percent": round(self.generator_cpu_percent, 1),
            "load_average_1m": round(self.load_average, 2),
        }
        if self.samples:
            figures["runs"] = [
                {
                    "requests_per_s": round(r.requests_per_s, 1),
                    "p50_ms": round(r.p50_ms, 2),
                    "p99_ms": round(r.p99_ms, 2),
                    "server_cpu_s_per_1000_requests": round(r.server_cpu_s_per_1000, 3),
                    "load_average_1m": round(r.load_average, 2),
                }
                for r in self.samples
            ]
        return figures


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (the server's API worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def tree_cpu_s(pids: list[int]) -> float:
    return sum(process_cpu_s(p) for p in pids)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


WRK_SCRIPT = """
local token = %(token)s
local low, high = %(low)d, %(high)d
local base = %(base)s
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
end

function request()
  if high > 0 then
    return wrk.format("GET", base .. "&cursor=" .. math.random(low, high))
  end
  return wrk.format("GET", base)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%.0f, "duration_us": %%.0f, "p50_us": %%.1f, "p90_us": %%.1f, "p99_us": %%.1f, ' ..
    '"max_us": %%.1f, "errors": %%.0f}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal of ASCII text is a valid Lua string literal


class WrkGenerator:
    """``wrk`` with a Lua script: C, epoll, a fraction of a core for 50 connections."""

    def __init__(self, binary: str, threads: int) -> None:
        self.binary = binary
        self.threads = threads
        self.workdir = Path(tempfile.mkdtemp(prefix="devyard-bench-wrk-"))

    @property
    def name(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True, check=False)
        first = (out.stdout + out.stderr).strip().splitlines()
        version = first[0].split()[1] if first and len(first[0].split()) > 1 else "?"
        return f"wrk {version} ({self.threads} thread(s), --latency, Lua script for random cursors)"

    def run(self, base_url: str, case: Case, seconds: float, connections: int, server_pid: int) -> Result:
        low, high = case.cursors or (0, 0)
        script = self.workdir / "case.lua"
        script.write_text(
            WRK_SCRIPT
            % {
                "token": lua_string(case.token or ""),
                "low": low,
                "high": high,
                "base": lua_string(case.path),
            }
        )
        command = [
            self.binary,
            f"-t{self.threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            base_url + case.path,
        ]
        pids = process_tree(server_pid)
        cpu_gen, cpu_server = children_cpu_s(), tree_cpu_s(pids)
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        cpu_gen, cpu_server = children_cpu_s() - cpu_gen, tree_cpu_s(pids) - cpu_server
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed (exit {out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
        data = json.loads(line[len("BENCH ") :])
        duration = data["duration_us"] / 1e6
        return Result(
            requests=int(data["requests"]),
            duration_s=duration,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            errors=int(data["errors"]),
            generator_cpu_percent=100 * cpu_gen / duration,
            server_cpu_s=cpu_server,
            load_average=os.getloadavg()[0],
        )

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class PythonGenerator:
    """Fallback: one asyncio task per client on a raw keep-alive socket (no HTTP library overhead)."""

    name = "python asyncio raw sockets (keep-alive, one task per client)"

    def run(self, base_url: str, case: Case, seconds: float, connections: int, server_pid: int) -> Result:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        pids = process_tree(server_pid)
        cpu_gen, cpu_server = time.process_time(), tree_cpu_s(pids)
        started = time.perf_counter()
        latencies, errors = asyncio.run(self._drive(host, int(port), case, seconds, connections))
        duration = time.perf_counter() - started
        cpu_gen, cpu_server = time.process_time() - cpu_gen, tree_cpu_s(pids) - cpu_server
        latencies.sort()
        return Result(
            requests=len(latencies),
            duration_s=duration,
            p50_ms=percentile(latencies, 50),
            p90_ms=percentile(latencies, 90),
            p99_ms=percentile(latencies, 99),
            max_ms=latencies[-1] if latencies else 0.0,
            errors=errors,
            generator_cpu_percent=100 * cpu_gen / duration,
            server_cpu_s=cpu_server,
            load_average=os.getloadavg()[0],
        )

    async def _drive(
        self, host: str, port: int, case: Case, seconds: float, connections: int
    ) -> tuple[list[float], int]:
        stop_at = time.perf_counter() + seconds
        latencies: list[float] = []
        errors = [0]
        auth = f"Authorization: Bearer {case.token}\r\n" if case.token else ""
        rng = random.Random(os.getpid())

        def next_request() -> bytes:
            path = case.path
            if case.cursors is not None:
                path += f"&cursor={rng.randint(*case.cursors)}"
            return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode()

        async def client() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                while time.perf_counter() < stop_at:
                    began = time.perf_counter()
                    writer.write(next_request())
                    status = (await reader.readline()).split(b" ", 2)
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if length:
                        await reader.readexactly(length)
                    latencies.append((time.perf_counter() - began) * 1000)
                    if len(status) < 2 or not status[1].startswith(b"2"):
                        errors[0] += 1
            finally:
                writer.close()

        outcomes = await asyncio.gather(*(client() for _ in range(connections)), return_exceptions=True)
        errors[0] += sum(1 for o in outcomes if isinstance(o, BaseException))
        return latencies, errors[0]

    def close(self) -> None:
        pass


Generator = WrkGenerator | PythonGenerator


def measure(
    generator: Generator, base_url: str, case: Case, args: argparse.Namespace, server_pid: int, label: str
) -> Result:
    """One warm-up, then ``--repeat`` measured runs; their medians."""
    generator.run(base_url, case, args.warmup, args.connections, server_pid)
    runs = []
    for _ in range(args.repeat):
        result = generator.run(base_url, case, args.duration, args.connections, server_pid)
        log(
            f"{label}: {result.requests_per_s:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
            f"errors {result.errors}, server CPU {result.server_cpu_percent:.0f}% "
            f"({result.server_cpu_s_per_1000:.2f} s per 1,000 requests), load {result.load_average:.2f}"
        )
        runs.append(result)
    return Result.median(runs)


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to this PID only; uvicorn shuts down gracefully
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_healthy(process: subprocess.Popen[bytes], url_of: Callable[[], str | None], path: str, log_path: Path) -> str:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"server exited with code {process.returncode} during start:\n{tail}")
        url = url_of()
        if url:
            with suppress(httpx.TransportError):
                if httpx.get(url + path, timeout=2).status_code == 200:
                    return url
        time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"server did not answer {path} within {START_TIMEOUT_S:.0f} s; see {log_path}")


def start_devyard(
    data_dir: Path, database_url: str | None, scratch: Path, source: Path, workers: int | None = None
) -> Server:
    """``python -m compose.supervisor`` on a free port: migrates (a no-op here) and serves.

    ``workers``: API processes (``DEVYARD_API_WORKERS``); None leaves the server's default.
    """
    from control.datadir import DataDir

    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")}
    env.update(XDG_CONFIG_HOME=str(scratch / "config"), PYTHONUNBUFFERED="1")  # keep the user's profiles untouched
    if database_url:
        env["DEVYARD_DATABASE_URL"] = database_url
    if workers is not None:
        env["DEVYARD_API_WORKERS"] = str(workers)
    log_path = scratch / f"server-{data_dir.name}.log"
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(data_dir), "--host", HOST, "--port", "0"]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(command, cwd=source, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server_file = DataDir(data_dir).server_file

    def url_of() -> str | None:
        try:
            info = json.loads(server_file.read_text())
        except (OSError, ValueError):
            return None
        return str(info["url"]) if info.get("pid") == process.pid else None

    return Server(process, wait_healthy(process, url_of, HEALTH, log_path), log_path)


def start_peer(scratch: Path) -> Server:
    """The bare Starlette app on uvicorn (same loop/HTTP parser defaults as the real server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    log_path = scratch / "peer.log"
    try:
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve-peer", str(sock.fileno())],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                pass_fds=[sock.fileno()],
            )
    finally:
        sock.close()
    return Server(process, wait_healthy(process, lambda: url, "/hello", log_path), log_path)


def serve_peer(fd: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def hello_sync(_: Request) -> JSONResponse:  # a plain function: Starlette runs it in the thread pool
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/hello", hello), Route("/hello-sync", hello_sync)])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


# ---------------------------------------------------------------- databases


def seed(database_url: str, rows: int) -> tuple[str, tuple[int, int]]:
    """Migrate, bootstrap an admin token, bulk-insert ``rows`` audit events; (token, cursor range)."""
    from sqlalchemy import func, insert, select, text
    from sqlmodel import SQLModel

    from control.bootstrap import local_admin_token, prepare_database
    from control.db.engine import make_engine

    engine = make_engine(database_url, pool=False)
    try:
        prepare_database(engine)
        token = local_admin_token(engine, "bench-admin", None)
        table = SQLModel.metadata.tables["audit_events"]
        start = datetime.now(UTC) - timedelta(seconds=rows)
        rng = random.Random(42)
        began = time.perf_counter()
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for i in range(rows):
                actor = rng.choice(ACTORS)
                batch.append(
                    {
                        "at": start + timedelta(seconds=i),
                        "actor_id": None if actor == "system" else ACTORS.index(actor) + 1,
                        "actor_name": actor,
                        "action": rng.choice(ACTIONS),
                        "target_type": "project",
                        "target_id": str(rng.randrange(1, 5000)),
                        "details": {"name": f"item-{i}", "via": "bench"},
                    }
                )
                if len(batch) == 10_000:
                    conn.execute(insert(table), batch)
                    batch.clear()
            if batch:
                conn.execute(insert(table), batch)
            low, high = conn.execute(select(func.min(table.c.id), func.max(table.c.id))).one()
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        log(f"seeded {rows:,} audit events in {time.perf_counter() - began:.1f} s ({engine.dialect.name})")
    finally:
        engine.dispose()
    # Every cursor leaves a full page below it: ids in [low + PAGE, high + 1].
    return token, (int(low) + PAGE, int(high) + 1)


def bench_backend(
    label: str, database_url: str, generator: Generator, args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    data_dir = (scratch / label).resolve()
    data_dir.mkdir()
    token, cursors = seed(database_url, args.rows)
    server = start_devyard(data_dir, None if label == "sqlite" else database_url, scratch, args.source, args.workers)
    time.sleep(args.settle)  # API worker processes start next to the primary; let them get ready
    processes = len(process_tree(server.process.pid))
    log(f"{label}: devyard server pid {server.process.pid} at {server.url}, {processes} process(es)")
    try:
        health = measure(generator, server.url, Case(HEALTH), args, server.process.pid, f"{label} health")
        page = measure(
            generator,
            server.url,
            Case(f"{LIST}?limit={PAGE}", token, cursors),
            args,
            server.process.pid,
            f"{label} list",
        )
    finally:
        server.stop()
    return {
        "server_pid": server.process.pid,
        "server_processes": processes,
        "health": health.as_json(),
        "list": {
            **page.as_json(),
            "endpoint": f"GET {LIST}?limit={PAGE}&cursor=<random id in {cursors[0]}..{cursors[1]}>",
        },
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    generator: Generator = WrkGenerator(wrk, args.threads) if wrk and args.generator != "python" else PythonGenerator()
    if args.generator == "wrk" and not wrk:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    load_at_start = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews the figures
    scratch = Path(tempfile.mkdtemp(prefix="devyard-bench-api-"))
    metrics: dict[str, Any] = {}
    peer: dict[str, Any] = {
        "what": "bare Starlette routes on uvicorn in their own process, same defaults as the devyard server "
        "(uvloop, httptools, one worker): 'hello' is async, 'hello_sync' is a plain function run in "
        "the thread pool like devyard's endpoints; the health endpoint is the peer of the list endpoint",
    }
    try:
        log(
            f"generator: {generator.name}; {args.connections} clients; {args.duration:g} s per case after "
            f"{args.warmup:g} s warm-up; {args.rows:,} rows"
        )
        if not args.no_peer:
            server = start_peer(scratch)
            try:
                peer["hello"] = measure(
                    generator, server.url, Case("/hello"), args, server.process.pid, "peer hello"
                ).as_json()
                peer["hello_sync"] = measure(
                    generator, server.url, Case("/hello-sync"), args, server.process.pid, "peer hello-sync"
                ).as_json()
            finally:
                server.stop()

        metrics["sqlite"] = bench_backend(
            "sqlite", f"sqlite:///{(scratch / 'sqlite').resolve() / 'devyard.db'}", generator, args, scratch
        )

        if args.no_postgres:
            metrics["postgresql"] = {"skipped": "--no-postgres"}
        else:
            candidates = [(u, 30.0) for u in (args.postgres, os.environ.get("DEVYARD_TEST_DATABASE_URL")) if u]
            candidates.append((LOCAL_POSTGRES, 5.0))
            url, why = reachable_postgres(candidates)
            if url is None:
                log(f"PostgreSQL skipped: {why}")
                metrics["postgresql"] = {"skipped": f"no reachable PostgreSQL ({why})"}
            else:
                with scratch_postgres(url) as bench_url:
                    metrics["postgresql"] = bench_backend("postgresql", bench_url, generator, args, scratch)
    finally:
        generator.close()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    measured = {k: v for k, v in metrics.items() if "list" in v}
    for backend, figures in measured.items():
        if "hello" not in peer:
            break
        peer.setdefault("ratios", {})[backend] = {
            "health_rps_vs_hello": ratio(figures["health"]["requests_per_s"], peer["hello"]["requests_per_s"]),
            "health_rps_vs_hello_sync": ratio(
                figures["health"]["requests_per_s"], peer["hello_sync"]["requests_per_s"]
            ),
            "list_rps_vs_health": ratio(figures["list"]["requests_per_s"], figures["health"]["requests_per_s"]),
        }
    met = bool(measured) and all(
        v["list"]["requests"] > 0
        and v["list"]["p99_ms"] <= TARGET_LIST_P99_MS
        and v["list"]["errors"] == 0
        and v["health"]["errors"] == 0
        for v in measured.values()
    )
    return {
        "name": "api",
        "metrics": metrics,
        "peer": peer,
        "target": {"list_p99_ms": TARGET_LIST_P99_MS},
        "met": met,
        "setup": {
            "generator": generator.name,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rows": args.rows,
            "page": PAGE,
            "repeat": args.repeat,
            "api_workers": args.workers if args.workers is not None else "server default",
            "cores": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "quick": args.quick,
            "python": sys.version.split()[0],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 s per case, 10,000 rows")
    parser.add_argument("--duration", type=float, help="seconds measured per case (default 10, quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per case (default 3, quick 1)")
    parser.add_argument("--rows", type=int, help="audit events to seed (default 100,000, quick 10,000)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads (default 1: leaves the cores to the server)"
    )
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL URL of a role with CREATEDB")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="project tree to seed with and serve (default: this one; to compare an experimental copy)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measured runs per case; medians are reported")
    parser.add_argument(
        "--workers", type=int, help="API processes of the devyard server (default: the server's own default)"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds between the server's first answer and the first case"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the bare Starlette peer")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (server logs)")
    parser.add_argument("--serve-peer", type=int, metavar="FD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_peer is not None:
        serve_peer(args.serve_peer)
        return 0
    args.source = args.source.resolve()
    if args.source != ROOT:
        sys.path.insert(0, str(args.source))  # before the first import of control
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.rows = args.rows or (10_000 if args.quick else 100_000)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
