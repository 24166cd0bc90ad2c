"""The scheduler: a burst of 1,000 schedules due in one minute, and the latency of one idle tick.

Two measurements, on SQLite and, when reachable, on PostgreSQL; each with a peer measured in
the same run:

1. burst: 1,000 schedules (``* * * * *``, overlap ``queue``) are bulk-inserted into a migrated
   database (setup, not measured), all due at the same minute M. The real ``Scheduler.run_once``
   is called with ``now=M`` (a controlled clock, as tests/runner/test_scheduler.py does) and the
   wall time from the call to the commit of the last run is taken (the ``schedule.tick`` events
   are published right after each batch commits); also when phase 1 (tick rows planned) was
   committed. Repeated for fresh minutes (M, M+1, M+2: the runs of earlier minutes stay queued,
   as they would without agents), median and max. Each repetition checks that the minute has
   exactly N ticks, all fired, and exactly N runs, one per tick. Peers, in the same database
   afterwards: (a) the rows one cycle writes (N tick rows, N runs, N work items, the ticks
   marked fired, N schedules advanced) written with Core ``executemany`` in one transaction —
   the floor for the same work; (b) a loop of N single-row ``INSERT INTO runs`` statements in
   one transaction.
2. idle tick latency with the real clock: the real server (``python -m compose.supervisor``, as
   ``yard up`` runs it, with its in-process scheduler and local agent) in its own process on
   127.0.0.1. Ticks are made due at staggered moments a few seconds ahead, ``--spacing`` seconds
   apart: each schedule is created through the API (``* * * * *``), then, through the database,
   given a seconds field (``* * * * * S``: croniter's sixth field, which the API refuses but the
   scheduler evaluates like any other cron expression) and ``next_fire_at`` = its moment. So
   every tick is planned and fired by the unchanged scheduler loop at a real cron fire time.
   (Moving ``next_fire_at`` of a ``* * * * *`` schedule to an arbitrary moment plans nothing:
   ``plan_due`` only plans cron fire times in ``[next_fire_at, now]``.) Latency per tick:
   ``runs.queued_at`` (set when the run object is built, just before its transaction commits)
   minus ``schedule_ticks.scheduled_for``. The loop wakes every 0.5 s at a phase fixed when the
   server starts, and the ticks fall on whole seconds, so all ticks of one server wait about the
   same part of a period: the ticks are spread over ``--rounds`` fresh servers (each a new phase).
   One more ``* * * * *`` schedule is left untouched in each round; when a round spans a minute
   boundary its tick is reported apart ("natural") as a check of the method. Peer: a thread of
   this process that sleeps until each due moment (``threading.Event.wait``), the floor of a
   timer wake-up on this machine. To split the latency into "waiting for the next cycle" and
   "the cycle's work", this process also times 50 ``run_once`` calls that each fire one due tick
   (controlled clock, a fresh database): from the call to the run's commit, an idle cycle
   (nothing due), and the cleanup pass that ``run_once`` runs every 30 s, each timed apart.

    .venv/bin/python bench/scheduler.py            # the figures in docs/benchmarks.md (~6 min)
    .venv/bin/python bench/scheduler.py --quick    # a smoke test: 100 schedules, 5 ticks

PostgreSQL comes from ``--postgres URL``, ``DEVYARD_TEST_DATABASE_URL`` or the local development
server; a fresh database ``devyard_bench_<pid>`` is created for each case and dropped afterwards.
When none is reachable the case is skipped and the JSON says why. Profiles and data live in a
scratch folder (``XDG_CONFIG_HOME`` / ``XDG_DATA_HOME`` point there). Progress goes to stderr,
the one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable without an install
    sys.path.insert(0, str(ROOT))

from bench.common import reachable_postgres, scratch_postgres, summary  # noqa: E402

HOST = "127.0.0.1"
LOCAL_POSTGRES = "postgresql+psycopg://devyard:devyard@127.0.0.1:5432/devyard"
START_TIMEOUT_S = 60.0
LOOP_PERIOD_S = 0.5  # runner.scheduler.MAX_SLEEP_S: the scheduler loop wakes at most this far apart
LEAD_S = 4  # the first staggered tick is due this long after the schedules are moved

TARGETS = {
    "burst_all_runs_max_s": 5.0,  # (a) 1,000 schedules due in one minute: all runs within 5 s
    "tick_latency_p99_s": 1.0,  # (b) an idle tick fires within 1 s of its time (p99)
}


def log(message: str) -> None:
    print(f"[bench/scheduler] {message}", file=sys.stderr, flush=True)


@contextmanager
def database(backend: str, scratch: Path, pg_url: str | None) -> Iterator[str]:
    """A fresh, empty database of ``backend``: a SQLite file under ``scratch`` or a scratch PostgreSQL one."""
    if backend == "sqlite":
        scratch.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{scratch / 'devyard.db'}"
        return
    assert pg_url is not None
    with scratch_postgres(pg_url, "devyard_bench") as url:
        yield url


# ---------------------------------------------------------------- 1. burst of 1,000 schedules


def owner_and_project(engine: Any) -> tuple[int, int]:
    from sqlmodel import Session

    from control.db.tables import Project, User

    with Session(engine) as session:
        user = User(name="bench", role="admin")
        session.add(user)
        session.flush()
        assert user.id is not None
        project = Project(name="bench", owner_id=user.id)
        session.add(project)
        session.commit()
        assert project.id is not None
        return user.id, project.id


def insert_schedules(engine: Any, user_id: int, project_id: int, count: int, due: datetime) -> None:
    """``count`` jobs of one step, each with a cron trigger (a schedule row) due at ``due``."""
    from sqlalchemy import insert, select
    from sqlmodel import col

    from control.db.tables import Job, Schedule

    jobs = [
        {
            "project_id": project_id,
            "name": f"burst-{i:05d}",
            "description": "",
            "user_id": user_id,
            "steps": [{"name": "true", "command": ["true"]}],
            "artifact_globs": [],
            "max_retries": 0,
            "stop_signals": [],
            "tty": False,
            "created_at": due,
            "updated_at": due,
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Job), jobs)
        job_ids = dict(conn.execute(select(col(Job.name), col(Job.id)).where(col(Job.project_id) == project_id)).all())
        rows = [
            {
                "name": f"burst-{i:05d}",
                "project_id": project_id,
                "job_id": job_ids[f"burst-{i:05d}"],
                "cron": "* * * * *",
                "timezone": "UTC",
                "enabled": True,
                "catchup": "latest",
                "catchup_cap": 10,
                "overlap": "queue",
                "next_fire_at": due,
                "created_at": due,
                "updated_at": due,
            }
            for i in range(count)
        ]
        conn.execute(insert(Schedule), rows)


def verify_minute(engine: Any, minute: datetime, count: int) -> dict[str, Any]:
    """Ticks and runs of ``minute``: exactly ``count`` ticks, all fired, one run each."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from control.db.tables import Run, ScheduleTick

    with Session(engine) as session:
        ticks = session.exec(
            select(ScheduleTick.state, func.count())
            .where(ScheduleTick.scheduled_for == minute)
            .group_by(ScheduleTick.state)
        ).all()
        by_state = {state: int(n) for state, n in ticks}
        runs, distinct_ticks, distinct_schedules = session.exec(
            select(
                func.count(col(Run.id)),
                func.count(func.distinct(Run.tick_id)),
                func.count(func.distinct(Run.schedule_id)),
            )
            .join(ScheduleTick, ScheduleTick.id == Run.tick_id)  # type: ignore[arg-type]
            .where(ScheduleTick.scheduled_for == minute)
        ).one()
    ok = by_state == {"fired": count} and runs == distinct_ticks == distinct_schedules == count
    return {"ticks": by_state, "runs": int(runs), "distinct_ticks": int(distinct_ticks), "ok": ok}


def bench_burst(url: str, scratch: Path, schedules: int, reps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from sqlalchemy import event, update

    from control.bootstrap import prepare_database
    from control.db.engine import make_engine
    from control.db.tables import Schedule
    from control.objectstore import ObjectStore
    from control.schedules.scheduler import Scheduler
    from control.settings import load_settings

    engine = make_engine(url)
    try:
        prepare_database(engine)
        user_id, project_id = owner_and_project(engine)
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        began = time.perf_counter()
        insert_schedules(engine, user_id, project_id, schedules, base)
        setup_s = time.perf_counter() - began

        commits: list[float] = []
        published: list[float] = []
        event.listen(engine, "commit", lambda _conn: commits.append(time.perf_counter()))

        def publish(kind: str, _data: BaseModel) -> None:
            if kind == "schedule.tick":
                published.append(time.perf_counter())

        settings = load_settings(scratch, database_url=url)
        store = ObjectStore.from_url((scratch / "objects").as_uri())
        scheduler = Scheduler(engine, store, settings, publish=publish)
        # A warm cycle half a minute before the first due minute: nothing is due; it takes the
        # lease and runs the first cleanup pass, as a scheduler that has been up a while has.
        scheduler.run_once(base - timedelta(seconds=30))

        plan_commit = 1 if engine.dialect.name == "sqlite" else 0  # the lease commits first on SQLite
        results: list[dict[str, Any]] = []
        for rep in range(reps):
            minute = base + timedelta(minutes=rep)
            with engine.begin() as conn:  # already so after the previous cycle; made explicit
                conn.execute(update(Schedule).values(next_fire_at=minute))
            commits.clear()
            published.clear()
            cpu = time.thread_time()
            started = time.perf_counter()
            report = scheduler.run_once(minute)
            returned = time.perf_counter()
            cpu = time.thread_time() - cpu
            check = verify_minute(engine, minute, schedules)
            if not check["ok"] or report.planned != schedules or len(report.fired) != schedules:
                raise RuntimeError(f"burst {rep}: planned {report.planned}, fired {len(report.fired)}, check {check}")
            result = {
                "minute": minute.isoformat(),
                "all_runs_s": round(published[-1] - started, 3),
                "planned_s": round(commits[plan_commit] - started, 3),
                "first_runs_s": round(published[0] - started, 3),
                "run_once_s": round(returned - started, 3),
                # CPU of this thread in run_once: all of the work on SQLite (the library runs
                # in-thread); on PostgreSQL the server's share is not counted.
                "run_once_cpu_s": round(cpu, 3),
                "check": check,
            }
            results.append(result)
            log(
                f"burst {rep + 1}/{reps} ({engine.dialect.name}): all {schedules} runs after {result['all_runs_s']} s "
                f"(ticks planned after {result['planned_s']} s; run_once returned after {result['run_once_s']} s)"
            )
        peer = bench_burst_peer(engine, user_id, project_id, schedules, base + timedelta(minutes=reps))
    finally:
        engine.dispose()

    all_runs = [r["all_runs_s"] for r in results]
    metrics = {
        "schedules": schedules,
        "repetitions": results,
        "all_runs_s_median": round(statistics.median(all_runs), 3),
        "all_runs_s_max": round(max(all_runs), 3),
        "planned_s_median": round(statistics.median(r["planned_s"] for r in results), 3),
        "firing_s_median": round(statistics.median(r["all_runs_s"] - r["planned_s"] for r in results), 3),
        "run_once_cpu_s_median": round(statistics.median(r["run_once_cpu_s"] for r in results), 3),
        # In the real loop a cycle starts up to one loop period after the minute.
        "worst_case_from_minute_s": round(max(all_runs) + LOOP_PERIOD_S, 3),
        "setup_bulk_insert_schedules_s": round(setup_s, 3),
        "all_ok": all(r["check"]["ok"] for r in results),
    }
    return metrics, peer


def bench_burst_peer(engine: Any, user_id: int, project_id: int, count: int, minute: datetime) -> dict[str, Any]:
    """The rows of one burst cycle written in bulk, and N single INSERTs, in the same database."""
    from sqlalchemy import bindparam, insert, select, update
    from sqlmodel import col

    from control.db.tables import Run, Schedule, ScheduleTick, WorkItem

    with engine.connect() as conn:
        schedule_ids = [row[0] for row in conn.execute(select(col(Schedule.id)).order_by(col(Schedule.id)))][:count]
    # (a) bulk: what one cycle writes, in one transaction.
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            insert(ScheduleTick),
            [
                {"schedule_id": sid, "scheduled_for": minute, "state": "pending", "created_at": minute}
                for sid in schedule_ids
            ],
        )
        tick_ids = [
            row[0]
            for row in conn.execute(
                select(col(ScheduleTick.id))
                .where(col(ScheduleTick.scheduled_for) == minute)
                .order_by(col(ScheduleTick.id))
            )
        ]
        run_rows = [
            {
                "project_id": project_id,
                "user_id": user_id,
                "schedule_id": sid,
                "tick_id": tid,
                "command": ["true"],
                "state": "queued",
                "trigger": "schedule",
                "trigger_info": {"schedule": f"burst-{i:05d}", "scheduled_for": minute.isoformat()},
            }
            for i, (sid, tid) in enumerate(zip(schedule_ids, tick_ids, strict=True))
        ]
        conn.execute(insert(Run), run_rows)
        run_ids = [
            row[0]
            for row in conn.execute(select(col(Run.id)).where(col(Run.tick_id).in_(tick_ids)).order_by(col(Run.id)))
        ]
        conn.execute(insert(WorkItem), [{"kind": "run", "queue": "default", "run_id": rid} for rid in run_ids])
        conn.execute(
            update(ScheduleTick).where(col(ScheduleTick.id) == bindparam("tid")).values(state="fired"),
            [{"tid": tid} for tid in tick_ids],
        )
        conn.execute(
            update(Schedule)
            .where(col(Schedule.id) == bindparam("sid"))
            .values(next_fire_at=minute + timedelta(minutes=1)),
            [{"sid": sid} for sid in schedule_ids],
        )
    bulk_s = time.perf_counter() - began
    # (b) a loop of single-row INSERTs into runs, one transaction.
    statement = insert(Run)
    began = time.perf_counter()
    with engine.begin() as conn:
        for i in range(count):
            conn.execute(
                statement,
                {
                    "project_id": project_id,
                    "user_id": user_id,
                    "command": ["true"],
                    "trigger": "api",
                    "trigger_info": {"i": i},
                },
            )
    loop_s = time.perf_counter() - began
    peer = {
        "bulk_cycle_rows_s": round(bulk_s, 3),
        "bulk_cycle_rows_what": f"{count} ticks + {count} runs + {count} work items inserted, {count} ticks and "
        f"{count} schedules updated; Core executemany, one transaction",
        "insert_loop_s": round(loop_s, 3),
        "insert_loop_what": f"{count} single-row INSERT INTO runs, one statement each, one transaction",
    }
    log(
        f"peer ({engine.dialect.name}): bulk cycle rows {peer['bulk_cycle_rows_s']} s, insert loop {peer['insert_loop_s']} s"
    )
    return peer


def bench_one_tick_cycles(url: str, scratch: Path, cycles: int) -> dict[str, Any]:
    """In this process: ``run_once`` firing one due tick; time from the call to the run's commit."""
    from sqlalchemy import update

    from control.bootstrap import prepare_database
    from control.db.engine import make_engine
    from control.db.tables import Schedule
    from control.objectstore import ObjectStore
    from control.schedules.scheduler import Scheduler
    from control.settings import load_settings

    engine = make_engine(url)
    try:
        prepare_database(engine)
        user_id, project_id = owner_and_project(engine)
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        insert_schedules(engine, user_id, project_id, 1, base)
        published: list[float] = []
        settings = load_settings(scratch, database_url=url)
        store = ObjectStore.from_url((scratch / "objects").as_uri())

        def publish(kind: str, _data: BaseModel) -> None:
            if kind == "schedule.tick":
                published.append(time.perf_counter())

        scheduler = Scheduler(engine, store, settings, publish=publish)
        scheduler.run_once(base - timedelta(seconds=30))  # warm, as in the burst
        idle: list[float] = []
        firing: list[float] = []
        cleaning: list[float] = []
        for cycle in range(cycles):
            minute = base + timedelta(minutes=cycle)
            with engine.begin() as conn:
                conn.execute(update(Schedule).values(next_fire_at=minute))
            # The periodic cleanup pass (every 30 s inside run_once) is timed on its own and
            # kept out of the two cycles below.
            started = time.perf_counter()
            scheduler.clean(minute - timedelta(seconds=2))
            cleaning.append(time.perf_counter() - started)
            scheduler._last_cleanup = minute - timedelta(seconds=2)
            started = time.perf_counter()
            scheduler.run_once(minute - timedelta(seconds=1))  # nothing due: an idle cycle
            idle.append(time.perf_counter() - started)
            published.clear()
            started = time.perf_counter()
            scheduler.run_once(minute)
            if len(published) != 1:
                raise RuntimeError(f"one-tick cycle {cycle}: {len(published)} ticks fired")
            firing.append(published[0] - started)
    finally:
        engine.dispose()
    return {
        "idle_cycle_s": summary(idle, 4, with_min=True),
        "to_run_committed_s": summary(firing, 4, with_min=True),
        "cleanup_pass_s": summary(cleaning, 4, with_min=True),
    }


# ---------------------------------------------------------------- 2. idle tick latency


@dataclass
class Server:
    """The embedded server process and what a client needs to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    log_path: Path

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
    env.update(XDG_CONFIG_HOME=str(scratch / "config"), XDG_DATA_HOME=str(scratch / "data"), PYTHONUNBUFFERED="1")
    if source != ROOT:  # an experimental copy wins over the editable install
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH")) if p)
    return env


def start_server(data_dir: Path, database_url: str, scratch: Path, source: Path) -> Server:
    """``python -m compose.supervisor`` on a free port; returns once it answers its health check."""
    import httpx

    from control import profiles
    from control.datadir import DataDir

    env = isolated_env(scratch, source)
    env["DEVYARD_DATABASE_URL"] = database_url
    log_path = scratch / f"server-{data_dir.name}.log"
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(data_dir), "--host", HOST, "--port", "0"]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(command, cwd=source, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server_file = DataDir(data_dir).server_file
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"server exited with code {process.returncode} during start:\n{tail}")
        with suppress(OSError, ValueError, KeyError):
            info = json.loads(server_file.read_text())
            if info.get("pid") == process.pid:
                url = str(info["url"])
                with suppress(httpx.TransportError):
                    if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                        config = Path(env["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
                        token = profiles.load_profiles(config)[1][profiles.LOCAL].token
                        return Server(process, url, token, log_path)
        time.sleep(0.05)
    process.terminate()
    process.wait()
    raise RuntimeError(f"server did not become healthy within {START_TIMEOUT_S:.0f} s; see {log_path}")


def stagger(engine: Any, names: list[str], spacing: int) -> list[datetime]:
    """Give each schedule a seconds field and its own due moment, ``spacing`` s apart, from LEAD_S on."""
    from sqlmodel import Session, select

    from control.db.tables import Schedule

    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD_S + 1)
    moments: list[datetime] = []
    moment = first
    for _ in names:
        if moment.second == 0:  # second 0 belongs to the untouched "natural" schedule
            moment += timedelta(seconds=1)
        moments.append(moment)
        moment += timedelta(seconds=spacing)
    with Session(engine) as session:
        for name, due in zip(names, moments, strict=True):
            schedule = session.exec(select(Schedule).where(Schedule.name == name)).one()
            schedule.cron = f"* * * * * {due.second}"
            schedule.next_fire_at = due
            session.add(schedule)
        session.commit()
    return moments


def tick_latencies(engine: Any, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per schedule, its ticks with the run each made: scheduled_for, queued_at, latency."""
    from sqlmodel import Session, col, select

    from control.db.tables import Run, Schedule, ScheduleTick

    found: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with Session(engine) as session:
        rows = session.exec(
            select(Schedule.name, ScheduleTick, Run)
            .join(ScheduleTick, ScheduleTick.schedule_id == Schedule.id)  # type: ignore[arg-type]
            .join(Run, Run.tick_id == ScheduleTick.id, isouter=True)  # type: ignore[arg-type]
            .where(col(Schedule.name).in_(names))
            .order_by(col(ScheduleTick.scheduled_for))
        ).all()
        for name, tick, run in rows:
            found[name].append(
                {
                    "scheduled_for": tick.scheduled_for.isoformat(),
                    "state": tick.state,
                    "run_id": run.id if run else None,
                    "latency_s": (run.queued_at - tick.scheduled_for).total_seconds() if run else None,
                }
            )
    return found


def wait_finished(client: Any, run_ids: list[int], timeout: float) -> None:
    """Let the local agent finish the runs, so no worker outlives the server."""
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            if client.get_run(run_id).state in ("succeeded", "failed", "cancelled", "timed_out", "lost"):
                pending.discard(run_id)
        time.sleep(0.2)


def tick_round(
    backend: str, scratch: Path, pg_url: str | None, ticks: int, spacing: int, source: Path, index: int
) -> dict[str, Any]:
    from control.client import ControlClient
    from control.db.engine import make_engine

    round_dir = scratch / f"{backend}-round{index}"
    round_dir.mkdir(parents=True, exist_ok=True)
    with database(backend, round_dir, pg_url) as url:
        server = start_server(round_dir / "data", url, round_dir, source)
        engine = make_engine(url, pool=False)
        try:
            names = [f"tick-{i:03d}" for i in range(ticks)]
            with ControlClient(server.url, server.token) as client:
                client.create_project("tickbench")
                for name in [*names, "natural"]:
                    client.create_schedule(
                        name=name, project="tickbench", command=["true"], cron="* * * * *", overlap="queue"
                    )
                moments = stagger(engine, names, spacing)
                log(
                    f"ticks round {index + 1} ({backend}): {ticks} ticks {spacing} s apart, "
                    f"{moments[0].strftime('%H:%M:%S')}..{moments[-1].strftime('%H:%M:%S')}"
                )
                time.sleep(max(0.0, (moments[-1] - datetime.now(UTC)).total_seconds() + 2 * LOOP_PERIOD_S + 1.0))
                found = tick_latencies(engine, [*names, "natural"])
                run_ids = [t["run_id"] for ts in found.values() for t in ts if t["run_id"] is not None]
                wait_finished(client, run_ids, timeout=30)
        finally:
            engine.dispose()
            server.stop()
    staggered: list[float] = []
    problems: list[str] = []
    for name, due in zip(names, moments, strict=True):
        got = found[name]
        if len(got) != 1 or got[0]["scheduled_for"] != due.isoformat() or got[0]["state"] != "fired":
            problems.append(f"{name}: expected one fired tick at {due.isoformat()}, found {got}")
            continue
        staggered.append(got[0]["latency_s"])
    natural = [t["latency_s"] for t in found["natural"] if t["latency_s"] is not None]
    return {"staggered_s": staggered, "natural_s": natural, "problems": problems}


def timer_peer(moments: int, spacing: int) -> list[float]:
    """A thread that sleeps until each due moment (``Event.wait(due - now)``): the lateness of a bare wake-up."""
    lateness: list[float] = []
    stop = threading.Event()
    first = math.floor(time.time()) + 1.0
    for due in (first + i * spacing for i in range(moments)):
        while (left := due - time.time()) > 0:
            stop.wait(left)
        lateness.append(time.time() - due)
    return lateness


def bench_ticks(
    backend: str, scratch: Path, pg_url: str | None, ticks: int, spacing: int, rounds: int, source: Path
) -> dict[str, Any]:
    per_round = [
        tick_round(backend, scratch, pg_url, math.ceil(ticks / rounds), spacing, source, i) for i in range(rounds)
    ]
    staggered = [x for r in per_round for x in r["staggered_s"]]
    natural = [x for r in per_round for x in r["natural_s"]]
    problems = [p for r in per_round for p in r["problems"]]
    latency = summary(staggered, 3, with_min=True)
    metrics = {
        "ticks": len(staggered),
        "rounds": rounds,
        "spacing_s": spacing,
        "latency_s": latency,
        "per_round_p50_s": [
            round(statistics.median(r["staggered_s"]), 3) if r["staggered_s"] else None for r in per_round
        ],
        "natural_minute_ticks_s": [round(x, 3) for x in natural],
        "problems": problems,
    }
    log(
        f"ticks ({backend}): {latency['n']} ticks, p50 {latency['p50']} s, p99 {latency['p99']} s, "
        f"max {latency['max']} s; natural {metrics['natural_minute_ticks_s']}"
    )
    return metrics


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="devyard-bench-scheduler-"))
    load = os.getloadavg()
    pg_candidates = [(u, 0.0) for u in (args.postgres, os.environ.get("DEVYARD_TEST_DATABASE_URL")) if u]
    pg_candidates.append((LOCAL_POSTGRES, 0.0))
    pg_url, pg_reason = (None, "--no-postgres") if args.no_postgres else reachable_postgres(pg_candidates)
    backends = ["sqlite"] + (["postgresql"] if pg_url else [])
    metrics: dict[str, Any] = {}
    peer: dict[str, Any] = {}
    try:
        for backend in backends:
            backend_metrics: dict[str, Any] = {}
            if "burst" in args.only:
                with database(backend, scratch / f"{backend}-burst", pg_url) as url:
                    backend_metrics["burst"], peer_burst = bench_burst(
                        url, scratch / f"{backend}-burst", args.schedules, args.reps
                    )
                peer.setdefault(backend, {})["burst"] = peer_burst
                peer[backend]["burst"]["ratio_all_runs_to_bulk"] = round(
                    backend_metrics["burst"]["all_runs_s_median"] / max(peer_burst["bulk_cycle_rows_s"], 1e-9), 1
                )
                peer[backend]["burst"]["ratio_all_runs_to_insert_loop"] = round(
                    backend_metrics["burst"]["all_runs_s_median"] / max(peer_burst["insert_loop_s"], 1e-9), 1
                )
            if "ticks" in args.only:
                backend_metrics["ticks"] = bench_ticks(
                    backend, scratch, pg_url, args.ticks, args.spacing, args.rounds, args.source
                )
                with database(backend, scratch / f"{backend}-cycles", pg_url) as url:
                    cycles = bench_one_tick_cycles(url, scratch / f"{backend}-cycles", args.cycles)
                backend_metrics["ticks"]["one_tick_cycle"] = cycles
                log(
                    f"one-tick cycles ({backend}): idle p50 {cycles['idle_cycle_s']['p50']} s, "
                    f"to the run committed p50 {cycles['to_run_committed_s']['p50']} s, "
                    f"p99 {cycles['to_run_committed_s']['p99']} s"
                )
            metrics[backend] = backend_metrics
        if "ticks" in args.only:
            lateness = timer_peer(min(args.ticks, 10), args.spacing)
            peer["timer"] = {
                "what": "a thread sleeping until each due moment with threading.Event.wait, in this process",
                "lateness_s": summary(lateness, 4, with_min=True),
                # The scheduler polls: a tick waits for the next cycle, uniform over one period.
                "polling_expected_wait_s": {"mean": LOOP_PERIOD_S / 2, "max": LOOP_PERIOD_S},
            }
        if not pg_url:
            metrics["postgresql"] = {"skipped": pg_reason}
    finally:
        if args.keep:
            log(f"scratch kept at {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    met_detail: dict[str, bool] = {}
    for backend in backends:
        burst = metrics[backend].get("burst")
        if burst is not None:
            met_detail[f"{backend}_burst"] = bool(
                burst["all_ok"] and burst["worst_case_from_minute_s"] <= TARGETS["burst_all_runs_max_s"]
            )
        ticks = metrics[backend].get("ticks")
        if ticks is not None:
            met_detail[f"{backend}_ticks"] = bool(
                not ticks["problems"] and ticks["latency_s"]["p99"] <= TARGETS["tick_latency_p99_s"]
            )
    return {
        "name": "scheduler",
        "setup": {
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in load],
            "python": sys.version.split()[0],
            "source": str(args.source),
            "schedules": args.schedules,
            "repetitions": args.reps,
            "ticks": args.ticks,
            "rounds": args.rounds,
            "spacing_s": args.spacing,
            "burst_judged_on": "max over repetitions of (run_once start -> last run committed) + 0.5 s loop period",
            "ticks_judged_on": "p99 of runs.queued_at - schedule_ticks.scheduled_for",
        },
        "metrics": metrics,
        "peer": peer,
        "targets": TARGETS,
        "met": bool(met_detail) and all(met_detail.values()),
        "met_detail": met_detail,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 100 schedules, 5 ticks in 1 round")
    parser.add_argument("--schedules", type=int, help="schedules due in the burst minute (default 1,000, quick 100)")
    parser.add_argument("--reps", type=int, help="burst repetitions (default 3)")
    parser.add_argument("--ticks", type=int, help="staggered idle ticks in all (default 40, quick 5)")
    parser.add_argument("--rounds", type=int, help="fresh servers the ticks are spread over (default 8, quick 1)")
    parser.add_argument("--spacing", type=int, help="whole seconds between staggered ticks (default 2)")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL URL of a role with CREATEDB")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--only", default="burst,ticks", help="comma-separated parts: burst, ticks (default both)")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="project tree to measure (default: this one; for an experimental copy)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (server logs)")
    args = parser.parse_args(argv)
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    if args.only - {"burst", "ticks"}:
        parser.error("--only takes burst and ticks")
    args.source = args.source.resolve()
    if args.source != ROOT:
        sys.path.insert(0, str(args.source))  # before the first import of control or runner
    args.schedules = args.schedules or (100 if args.quick else 1000)
    args.reps = args.reps or 3
    args.ticks = args.ticks or (5 if args.quick else 40)
    args.rounds = args.rounds or (1 if args.quick else 8)
    args.spacing = args.spacing or 2
    args.cycles = 5 if args.quick else 50
    if math.ceil(args.ticks / args.rounds) * args.spacing >= 58:
        parser.error("ticks per round × spacing must stay under a minute (each seconds field fires once a minute)")
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
