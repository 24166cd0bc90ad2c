"""The TUI against the real stack: dashboard start-up, a million-line log, a fast follow.

Against ``python -m compose.supervisor`` (API, scheduler and local agent in one process, SQLite,
a scratch data dir), each figure with a peer measured in the same run:

1. dashboard: 10,000 runs in the database; ``yard`` started in a real terminal (tmux, 160x45)
   until the newest run's row is on the screen (``tmux capture-pane`` polled every 5 ms), from
   the moment tmux spawns it. Peer: a hello-world Textual app painted in the same tmux. Also the
   app alone (headless, already imported): mount → first paint with data.
2. run view on a 1,000,000-line log (a real run of the local agent: 96 MB of stored records):
   headless, in a fresh process, the time to open the run (tail painted), to load the rest in the
   background, to jump to the end (``G``), to search for a line near the top (``s``, a needle,
   ``enter``: the search wraps around the whole log), and to filter; the process's resident
   memory after all that.
3. follow: a run printing 10,000 lines/s for 20 s, followed by the run view; every 250 ms the lag
   between the newest line's timestamp (when the run worker read it) and the wall clock, for the
   newest line received and for the line at the bottom of the screen. "Keeps up" means the lag in the last quarter is no
   larger than in the first quarter (plus 100 ms of noise). Peer: a bare SDK follower (binary
   frames, no screen) in another process, sampled the same way at the same time.
   Steps 1 and 2 time each step from the call a key press makes to the end of the frame that
   shows it (a probe on the widgets' ``render_line``), not through the pilot's own pauses.

    .venv/bin/python bench/tui.py            # the figures in docs/benchmarks.md (~3 min)
    .venv/bin/python bench/tui.py --quick    # a smoke test (~40 s)

Progress goes to stderr, one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import percentile, summary  # noqa: E402

YARD = str(Path(sys.executable).parent / "yard")
TARGETS = {
    "dashboard_first_paint_ms": 500.0,
    "run_view_open_ms": 200.0,
    "run_view_jump_end_ms": 200.0,
    "run_view_search_ms": 200.0,
    "run_view_rss_mb": 300.0,
}
# What `yard` runs once tui/cli/entry.py hands TUI invocations to tui.launch (no Typer import).
FAST_PATH = [sys.executable, "-c", "import sys; from tui.launch import main; sys.exit(main([]))"]
HELLO_APP = """
from textual.app import App
from textual.widgets import Static
class Hello(App):
    def compose(self):
        yield Static("hello-peer-painted")
Hello().run()
"""


def log(message: str) -> None:
    print(f"[bench/tui] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    url: str
    token: str
    data_dir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # this PID only; the supervisor stops its agent and scheduler
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_stack(scratch: Path) -> Stack:
    import httpx

    from control.bootstrap import local_admin_token, prepare_database
    from control.datadir import DataDir
    from control.db.engine import make_engine

    data_dir = scratch / "data"
    data_dir.mkdir(parents=True)
    engine = make_engine(f"sqlite:///{data_dir / 'devyard.db'}", pool=False)
    prepare_database(engine)
    token = local_admin_token(engine, "bench-admin", None)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")}
    env.update(XDG_CONFIG_HOME=str(scratch / "config"), PYTHONUNBUFFERED="1")
    log_path = scratch / "server.log"
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [*command, "--port", "0"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    server_file = DataDir(data_dir).server_file
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited during start; see {log_path}")
        with suppress(OSError, ValueError, KeyError):
            info = json.loads(server_file.read_text())
            if info.get("pid") == process.pid:
                with suppress(httpx.TransportError):
                    if httpx.get(info["url"] + "/api/v1/health", timeout=2).status_code == 200:
                        return Stack(process, str(info["url"]), token, data_dir)
        time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"the stack did not start within 60 s; see {log_path}")


def seed_runs(stack: Stack, count: int) -> str:
    """``count`` finished runs in project ``bench`` straight into the database; the newest run's command."""
    from sqlalchemy import insert, select
    from sqlmodel import SQLModel

    import control.db.tables  # noqa: F401  (the tables' metadata)
    from control.client import Conflict, ControlClient
    from control.db.engine import make_engine

    with ControlClient(stack.url, stack.token) as client, suppress(Conflict):
        client.create_project("bench")
    engine = make_engine(f"sqlite:///{stack.data_dir / 'devyard.db'}", pool=False)
    tables = SQLModel.metadata.tables
    states = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")
    start = datetime.now(UTC) - timedelta(seconds=count * 10)
    with engine.begin() as conn:
        projects = tables["projects"]
        project_id, user_id = conn.execute(
            select(projects.c.id, projects.c.owner_id).where(projects.c.name == "bench")
        ).one()
        rows: list[dict[str, Any]] = []
        for i in range(count):
            queued = start + timedelta(seconds=i * 10)
            state = states[i % len(states)]
            rows.append(
                {
                    "project_id": project_id,
                    "user_id": user_id,
                    "command": ["make", "test", f"bench-run-{i + 1}"],
                    "state": state,
                    "trigger": ("manual", "schedule", "api")[i % 3],
                    "trigger_info": {},
                    "artifact_globs": [],
                    "exit_code": {"succeeded": 0, "failed": 2, "cancelled": 143}[state],
                    "queued_at": queued,
                    "started_at": queued + timedelta(seconds=1),
                    "finished_at": queued + timedelta(seconds=4),
                }
            )
        conn.execute(insert(tables["runs"]), rows)
    engine.dispose()
    return f"bench-run-{count}"


# ---------------------------------------------------------------- 1. dashboard


def tmux_first_paint(argv: list[str], marker: str, env: dict[str, str], socket: str) -> float:
    """Seconds from spawning ``argv`` in a fresh 160x45 tmux window until ``marker`` is on screen."""
    tmux = ["tmux", "-L", socket]
    subprocess.run([*tmux, "kill-server"], capture_output=True)
    command = " ".join(f"'{a}'" for a in argv)
    env_prefix = " ".join(f"{k}='{v}'" for k, v in env.items())
    started = time.perf_counter()
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "45",
            "-s",
            "bench",
            f"env -u COLUMNS -u LINES {env_prefix} {command}",
        ],
        check=True,
    )
    try:
        deadline = started + 20
        while time.perf_counter() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "bench"], capture_output=True, text=True)
            if marker in screen.stdout:
                return time.perf_counter() - started
            time.sleep(0.005)
        raise RuntimeError(f"{marker!r} did not appear within 20 s")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def bench_dashboard(stack: Stack, scratch: Path, runs: int, repeats: int) -> dict[str, Any]:
    newest = seed_runs(stack, runs)
    log(f"seeded {runs:,} runs")
    env = {
        "DEVYARD_URL": stack.url,
        "DEVYARD_TOKEN": stack.token,
        "XDG_CONFIG_HOME": str(scratch / "config"),
        "HOME": str(scratch),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", ""),
    }
    result: dict[str, Any] = {"runs_in_database": runs}
    if shutil.which("tmux"):
        hello = scratch / "hello.py"
        hello.write_text(HELLO_APP)
        socket = f"bench-tui-{os.getpid()}"
        hello_argv = [sys.executable, str(hello)]
        tmux_first_paint([YARD], newest, env, socket)  # warm the page cache
        yard: list[float] = []
        fast: list[float] = []
        peer: list[float] = []
        # Round-robin, so a burst of load on this shared machine hits all three alike.
        for _ in range(repeats):
            yard.append(tmux_first_paint([YARD], newest, env, socket) * 1000)
            fast.append(tmux_first_paint(FAST_PATH, newest, env, socket) * 1000)
            peer.append(tmux_first_paint(hello_argv, "hello-peer-painted", env, socket) * 1000)
        log(
            f"dashboard in tmux: yard p50 {percentile(sorted(yard), 50):.0f} ms, without the Typer CLI "
            f"{percentile(sorted(fast), 50):.0f} ms (hello-world Textual: {percentile(sorted(peer), 50):.0f} ms)"
        )
        result["terminal_first_paint_ms"] = summary(yard, with_min=True)
        result["terminal_first_paint_fast_path_ms"] = summary(fast, with_min=True)
        result["peer_hello_textual_first_paint_ms"] = summary(peer, with_min=True)
    else:
        result["terminal_first_paint_ms"] = None
        result["skipped"] = "tmux is not installed"
    inside = [child_json(["--child-dashboard", stack.url, stack.token])["first_paint_ms"] for _ in range(repeats)]
    log(f"dashboard in-process (imports done): p50 {percentile(sorted(inside), 50):.0f} ms")
    result["app_first_paint_ms"] = summary(inside, with_min=True)
    return result


def paint_probe(widget_class: Any, ready: Any) -> list[float]:
    """Record when ``widget_class`` first renders a line while ``ready(widget)`` holds: the moment
    the compositor puts the content on the (headless) screen."""
    painted: list[float] = []
    original = widget_class.render_line

    def render_line(self: Any, y: int) -> Any:
        if not painted and ready(self):
            painted.append(time.perf_counter())
        return original(self, y)

    widget_class.render_line = render_line
    return painted


async def child_dashboard(url: str, token: str) -> dict[str, Any]:
    from control.profiles import Profile
    from tui.app import DevyardApp
    from tui.widgets.runs_table import RunsTable

    painted = paint_probe(RunsTable, lambda table: table.row_count > 0)
    app = DevyardApp(Profile("bench", url, token))
    started = time.perf_counter()
    async with app.run_test(size=(160, 45)):
        while not painted:
            await asyncio.sleep(0.001)
    return {"first_paint_ms": round((painted[0] - started) * 1000, 1)}


# ---------------------------------------------------------------- 2. a million-line log

PRINT_LINES = (
    "import sys\n"
    "w = sys.stdout.write\n"
    "for i in range({n}):\n"
    "    w(f'{{i:07d}} INFO worker-3 processed item {{i}} of {n} status=ok elapsed=0.{{i % 997:03d}}s\\n')\n"
)
PRINT_RATE = (
    "import sys, time\n"
    "start = time.time()\n"
    "for tick in range({seconds} * 100):\n"
    "    sys.stdout.write(''.join(f'{{tick:05d}}.{{k:03d}} INFO streaming line at {{time.time():.3f}}\\n' for k in range({per_tick})))\n"
    "    sys.stdout.flush()\n"
    "    delay = start + (tick + 1) / 100 - time.time()\n"
    "    if delay > 0: time.sleep(delay)\n"
)


def run_command(stack: Stack, argv: list[str], wait: bool = True) -> int:
    from control.client import ControlClient

    with ControlClient(stack.url, stack.token) as client:
        run = client.create_run("bench", argv)
        if not wait:
            while client.get_run(run.id).state in ("queued", "starting"):
                time.sleep(0.05)
            return int(run.id)
        deadline = time.monotonic() + 600
        while True:
            state = client.get_run(run.id)
            if state.state not in ("queued", "starting", "running"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run.id} did not finish")
            time.sleep(0.2)
        if state.state != "succeeded":
            raise RuntimeError(f"run {run.id} {state.state}: {state.error}")
    return int(run.id)


def bench_run_view(stack: Stack, lines: int, repeats: int) -> dict[str, Any]:
    began = time.perf_counter()
    run_id = run_command(stack, [sys.executable, "-c", PRINT_LINES.format(n=lines)])
    log(f"run {run_id} printed {lines:,} lines in {time.perf_counter() - began:.1f} s")
    samples = [
        child_json(["--child-run-view", stack.url, stack.token, str(run_id), str(lines)]) for _ in range(repeats)
    ]
    result: dict[str, Any] = {"lines": lines, "run_id": run_id}
    for key in samples[0]:
        if key != "log_bytes":
            result[key] = summary([float(s[key]) for s in samples], with_min=True)
    result["log_bytes"] = samples[0]["log_bytes"]
    log(
        "run view: open {o} ms, rest loaded {h} ms, end {e} ms, search {s} ms, filter {f} ms, RSS {r} MB".format(
            o=result["open_ms"]["p50"],
            h=result["history_loaded_ms"]["p50"],
            e=result["jump_end_ms"]["p50"],
            s=result["search_ms"]["p50"],
            f=result["filter_ms"]["p50"],
            r=result["rss_mb"]["p50"],
        )
    )
    return result


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class FrameClock:
    """When ``widget_class`` last drew a line: a frame is done once the drawing stops."""

    def __init__(self, widget_class: Any) -> None:
        self.last = 0.0
        original = widget_class.render_line

        def render_line(widget: Any, y: int) -> Any:
            strip = original(widget, y)
            self.last = time.perf_counter()
            return strip

        widget_class.render_line = render_line

    async def painted_since(self, started: float) -> float:
        """Milliseconds from ``started`` to the end of the first frame drawn after it."""
        while self.last <= started:
            await asyncio.sleep(0.001)
        # A frame draws every row in one synchronous pass: wait until it is over.
        previous = 0.0
        while previous != self.last:
            previous = self.last
            await asyncio.sleep(0.01)
        return (self.last - started) * 1000


async def child_run_view(url: str, token: str, run_id: int, lines: int) -> dict[str, Any]:
    """Each step is timed from the call a key press makes to the end of the frame that shows it."""
    from control.profiles import Profile
    from tui.app import DevyardApp
    from tui.screens.run_view import RunScreen
    from tui.widgets.log_view import LogView

    painted = paint_probe(LogView, lambda view: len(view.model) > 0)
    frames = FrameClock(LogView)
    app = DevyardApp(Profile("bench", url, token))
    out: dict[str, Any] = {}
    async with app.run_test(size=(160, 45)) as pilot:
        while app.first_paint_at is None:
            await asyncio.sleep(0.001)
        await pilot.pause(0.5)  # a user reads the dashboard before pressing enter
        started = time.perf_counter()
        app.open_run(run_id)
        while not painted:
            await asyncio.sleep(0.001)
        out["open_ms"] = (painted[0] - started) * 1000
        screen = app.screen
        assert isinstance(screen, RunScreen)
        log_view = screen.log_view
        deadline = time.monotonic() + 120
        while screen.loading_history:
            await asyncio.sleep(0.005)
            if time.monotonic() > deadline:
                raise RuntimeError("the rest of the log did not load within 120 s")
        if len(log_view.model) < lines:
            note = screen.query_one("RunHeader").note  # type: ignore[attr-defined]
            raise RuntimeError(f"only {len(log_view.model)} lines loaded: {note}")
        out["history_loaded_ms"] = await frames.painted_since(started)
        log_view.action_top()
        await pilot.pause(0.2)
        started = time.perf_counter()
        log_view.action_end()  # what `G` / `end` run
        out["jump_end_ms"] = await frames.painted_since(started)
        assert log_view.line_at(int(log_view.scroll_y) + log_view.size.height - 1) == len(log_view.model) - 1
        started = time.perf_counter()
        log_view.search_for("item 12 of")  # `s`, the needle, enter: from the end, wrapping around
        out["search_ms"] = await frames.painted_since(started)
        assert log_view.current_match == 12, log_view.current_match
        started = time.perf_counter()
        log_view.filter_text = "status=ok elapsed=0.5"  # `/`, the text, enter
        deadline = time.monotonic() + 120
        while log_view.shown_lines is None or log_view.filtering:
            await asyncio.sleep(0.002)
            if time.monotonic() > deadline:
                raise RuntimeError("the filter did not finish within 120 s")
        out["filter_ms"] = await frames.painted_since(started)
        out["rss_mb"] = rss_mb()
        out["log_bytes"] = log_view.model.byte_count
    return out


# ---------------------------------------------------------------- 3. follow at 10,000 lines/s


def quarters(lags: list[float]) -> tuple[float, float]:
    """Median lag of the first and of the last quarter of the samples."""
    quarter = max(len(lags) // 4, 1)
    return percentile(sorted(lags[:quarter]), 50), percentile(sorted(lags[-quarter:]), 50)


def bench_follow(stack: Stack, seconds: int, rate: int) -> dict[str, Any]:
    """The run view following the run, and as the peer a bare SDK follower (what `yard runs logs
    -f` does, no screen) in another process at the same time: if both lags grow, the machine is
    behind, not the TUI."""
    run_id = run_command(
        stack, [sys.executable, "-c", PRINT_RATE.format(seconds=seconds, per_tick=rate // 100)], wait=False
    )
    args = [stack.url, stack.token, str(run_id), str(seconds)]
    peer_process = subprocess.Popen(
        [sys.executable, __file__, "--child-follow-peer", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    sample = child_json(["--child-follow", *args])
    peer_out, _ = peer_process.communicate(timeout=seconds + 60)
    peer_lags = json.loads(peer_out)["lag_ms"]
    lags = sample["lag_ms"]
    first, last = quarters(lags)
    peer_first, peer_last = quarters(peer_lags)
    result = {
        "lines_per_s": rate,
        "seconds": seconds,
        "lines_seen": sample["lines_seen"],
        "lag_ms": summary(lags),
        "lag_first_quarter_p50_ms": round(first, 1),
        "lag_last_quarter_p50_ms": round(last, 1),
        "screen_lag_ms": summary(sample["screen_lag_ms"]),
        "keeps_up": last <= first + 100,
        "peer_sdk_follower_lag_ms": summary(peer_lags),
        "peer_lag_first_quarter_p50_ms": round(peer_first, 1),
        "peer_lag_last_quarter_p50_ms": round(peer_last, 1),
    }
    log(
        f"follow {rate:,} lines/s: lag p50 {result['lag_ms']['p50']} ms (first quarter {round(first, 1)}, "
        f"last {round(last, 1)}); bare SDK follower p50 {result['peer_sdk_follower_lag_ms']['p50']} ms "
        f"(first {round(peer_first, 1)}, last {round(peer_last, 1)})"
    )
    return result


def child_follow_peer(url: str, token: str, run_id: int, seconds: int) -> dict[str, Any]:
    """Follow the run with the SDK's binary frames and sample the lag like the TUI child does."""
    import threading

    from control.client import ControlClient

    newest = [0]

    def follow() -> None:
        with ControlClient(url, token) as client:
            for event, _seq, payload in client.follow_log_frames(run_id):
                if event != "chunk":
                    return
                last = payload[payload.rfind(b"\n", 0, len(payload) - 1) + 1 :]
                newest[0] = int(last.split(b" ", 1)[0])

    threading.Thread(target=follow, daemon=True).start()
    lags: list[float] = []
    deadline = time.time() + seconds + 5
    while time.time() < deadline and len(lags) < int(seconds / 0.25):
        time.sleep(0.25)
        if newest[0]:
            lags.append(time.time() * 1000 - newest[0])
    return {"lag_ms": lags}


async def child_follow(url: str, token: str, run_id: int, seconds: int) -> dict[str, Any]:
    from control.profiles import Profile
    from tui.app import DevyardApp
    from tui.screens.run_view import RunScreen

    app = DevyardApp(Profile("bench", url, token))
    lags: list[float] = []
    screen_lags: list[float] = []
    async with app.run_test(size=(160, 45)) as pilot:
        app.open_run(run_id)
        while not isinstance(app.screen, RunScreen) or not app.screen.query("LogView"):
            await asyncio.sleep(0.01)
        screen = app.screen
        deadline = time.time() + seconds + 5
        while time.time() < deadline:
            await asyncio.sleep(0.25)
            model = screen.log_view.model
            if not len(model):
                continue
            now = time.time() * 1000
            lags.append(now - model.line(len(model) - 1).ts_ms)
            # What the user sees: the line at the bottom of the screen (frames are at most 30 a second).
            view = screen.log_view
            bottom = view.line_at(int(view.scroll_y) + view.size.height - 1)
            if bottom is not None and view.model is model:
                screen_lags.append(now - model.line(bottom).ts_ms)
            if screen.run and screen.run.state == "succeeded":
                break
        lines = len(screen.log_view.model)
        await pilot.pause()
    # Drop the samples after the run stopped printing: the lag there grows by definition.
    samples = int(seconds / 0.25)
    return {"lag_ms": lags[:samples], "screen_lag_ms": screen_lags[:samples], "lines_seen": lines}


# ---------------------------------------------------------------- plumbing


def child_json(args: list[str]) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{result.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def run_child(argv: list[str]) -> None:
    kind, url, token, *rest = argv
    if kind == "--child-dashboard":
        out = asyncio.run(child_dashboard(url, token))
    elif kind == "--child-run-view":
        out = asyncio.run(child_run_view(url, token, int(rest[0]), int(rest[1])))
    elif kind == "--child-follow-peer":
        out = child_follow_peer(url, token, int(rest[0]), int(rest[1]))
    else:
        out = asyncio.run(child_follow(url, token, int(rest[0]), int(rest[1])))
    print(json.dumps(out))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("--child-"):
        run_child(sys.argv[1:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: a smoke test")
    args = parser.parse_args()
    runs, lines, repeats, follow_s = (2_000, 100_000, 1, 4) if args.quick else (10_000, 1_000_000, 3, 20)
    paint_repeats = 2 if args.quick else 7
    # SIGTERM (timeout, kill PID) ends the run through the finally below: the stack is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = Path(tempfile.mkdtemp(prefix="devyard-bench-tui-"))
    load_at_start = os.getloadavg()
    stack = start_stack(scratch)
    try:
        metrics = {
            "dashboard": bench_dashboard(stack, scratch, runs, paint_repeats),
            "run_view": bench_run_view(stack, lines, repeats),
            "follow": bench_follow(stack, follow_s, 10_000),
        }
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    dashboard, view = metrics["dashboard"], metrics["run_view"]
    paint = dashboard["terminal_first_paint_ms"] or dashboard["app_first_paint_ms"]
    met = {
        "dashboard_first_paint_ms": paint["p50"] <= TARGETS["dashboard_first_paint_ms"],
        "run_view_open_ms": view["open_ms"]["p50"] <= TARGETS["run_view_open_ms"],
        "run_view_jump_end_ms": view["jump_end_ms"]["p50"] <= TARGETS["run_view_jump_end_ms"],
        "run_view_search_ms": view["search_ms"]["p50"] <= TARGETS["run_view_search_ms"],
        "run_view_rss_mb": view["rss_mb"]["p50"] <= TARGETS["run_view_rss_mb"],
        "follow_keeps_up": metrics["follow"]["keeps_up"],
    }
    follow = metrics["follow"]
    peer = {
        "hello_textual_first_paint_ms": dashboard.get("peer_hello_textual_first_paint_ms"),
        "sdk_follower_lag_ms": follow["peer_sdk_follower_lag_ms"],
    }
    print(
        json.dumps(
            {
                "name": "tui",
                "quick": args.quick,
                "load_average_at_start": [round(x, 2) for x in load_at_start],
                "targets": TARGETS,
                "met": met,
                "metrics": metrics,
                "peer": peer,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
