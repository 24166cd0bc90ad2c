"""kill -9 of `yard scheduler` at each point of a tick, then a restart: exactly one run per due tick."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from control.client import ControlClient
from control.db.engine import normalize_url
from tests.e2e.processes import Server
from tests.stack import wait_for_run

YARD = str(Path(sys.executable).parent / "yard")
TICKS = 3


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    # The API and its agent, but no in-process scheduler: `yard scheduler` runs on its own.
    running = Server(tmp_path / "data", {"DEVYARD_DATABASE_URL": database_url, "DEVYARD_SCHEDULER": "false"})
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _scheduler(server: Server, crash_at: str | None) -> subprocess.Popen[bytes]:
    env = {**server.env, "DEVYARD_CLEANUP_INTERVAL_S": "3600", "DEVYARD_SCHEDULER_LEASE_S": "2"}
    env.pop("DEVYARD_SCHEDULER_CRASH_AT", None)
    if crash_at:
        env["DEVYARD_SCHEDULER_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [YARD, "scheduler", "--data-dir", str(server.data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _make_due(database_url: str) -> None:
    """Pretend the scheduler was down for a while: three missed minutes to catch up."""
    engine = create_engine(normalize_url(database_url))
    with engine.begin() as conn:
        due = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=TICKS - 1)
        value = due if engine.dialect.name != "sqlite" else due.replace(tzinfo=None)
        conn.execute(text("UPDATE schedules SET next_fire_at = :due"), {"due": value})
    engine.dispose()


def _counts(database_url: str) -> tuple[int, int, int]:
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        ticks = conn.execute(text("SELECT count(*) FROM schedule_ticks")).scalar_one()
        runs = conn.execute(text("SELECT count(*) FROM runs WHERE tick_id IS NOT NULL")).scalar_one()
        distinct = conn.execute(text("SELECT count(DISTINCT tick_id) FROM runs WHERE tick_id IS NOT NULL")).scalar_one()
    engine.dispose()
    return int(ticks), int(runs), int(distinct)


@pytest.mark.parametrize("crash_at", ["after_tick_row", "after_run_row", "after_launch"])
def test_crash_at_each_point_then_restart(server: Server, database_url: str, crash_at: str) -> None:
    with ControlClient(server.url, server.admin_token) as client:
        client.create_project("demo")
        client.create_schedule(
            name="minutely",
            project="demo",
            command=["echo", "tick"],
            cron="* * * * *",
            catchup="all",
            catchup_cap=10,
            overlap="queue",
        )
    _make_due(database_url)
    if crash_at == "after_launch":
        first = _scheduler(server, None)
        with ControlClient(server.url, server.admin_token) as client:
            deadline = time.monotonic() + 30
            while len(client.list_runs().items) < TICKS and time.monotonic() < deadline:
                time.sleep(0.05)
            wait_for_run(client, client.list_runs().items[-1].id, timeout=30, states=("running", "succeeded"))
        first.kill()
        first.wait(10)
    else:
        first = _scheduler(server, crash_at)
        assert first.wait(30) == -9, "the scheduler should have killed itself at the crash point"
    second = _scheduler(server, None)
    try:
        with ControlClient(server.url, server.admin_token) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runs = client.list_runs().items
                if len(runs) >= TICKS and all(r.state == "succeeded" for r in runs):
                    break
                time.sleep(0.1)
            time.sleep(1.5)  # a few more cycles must not add anything
            # ...except the next minute's tick, if one came meanwhile: let its run finish too.
            deadline = time.monotonic() + 30
            runs = client.list_runs().items
            while any(r.state in ("queued", "starting", "running") for r in runs) and time.monotonic() < deadline:
                time.sleep(0.1)
                runs = client.list_runs().items
    finally:
        second.terminate()
        second.wait(15)
    ticks, scheduled_runs, distinct = _counts(database_url)
    assert ticks >= TICKS
    assert scheduled_runs == ticks == distinct, (ticks, scheduled_runs, distinct)
    assert len(runs) == scheduled_runs
    assert all(r.state == "succeeded" for r in runs), [(r.id, r.state) for r in runs]
