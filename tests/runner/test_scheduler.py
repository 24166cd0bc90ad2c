"""The scheduler with a controlled clock: exactly one run per due tick, catch-up, overlap, DST."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlmodel import Session, col, select

from control.db.tables import Run, Schedule, ScheduleTick
from control.schedules.scheduler import Scheduler
from control.schedules.ticks import first_fire_after
from control.wire.schedules import ScheduleOut
from tests.stack import Stack, running_stack


@pytest.fixture
def sched_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """A control API without an agent (runs stay queued, which is what overlap tests need)."""
    with running_stack(tmp_path / "data", database_url, cleanup_interval_s=1e9) as running:
        with running.client() as admin:
            admin.create_project("demo")
        yield running


def scheduler(stack: Stack, events: list[tuple[str, dict[str, Any]]] | None = None) -> Scheduler:
    publish = (lambda kind, data: events.append((kind, data))) if events is not None else (lambda kind, data: None)
    return Scheduler(stack.services.engine, stack.services.store, stack.settings, publish=publish)


def add(stack: Stack, name: str, cron: str, **fields: Any) -> ScheduleOut:
    with stack.client() as client:
        return client.create_schedule(name=name, project="demo", command=["echo", name], cron=cron, **fields)


def move_to(stack: Stack, name: str, start: datetime) -> datetime:
    """Pretend the schedule was created at ``start``: its next fire time is the first after it."""
    with Session(stack.services.engine) as session:
        schedule = session.exec(select(Schedule).where(Schedule.name == name)).one()
        schedule.next_fire_at = first_fire_after(schedule, start)
        session.add(schedule)
        session.commit()
        return schedule.next_fire_at


def runs_of(stack: Stack, name: str) -> list[Run]:
    with Session(stack.services.engine) as session:
        schedule = session.exec(select(Schedule).where(Schedule.name == name)).one()
        return list(session.exec(select(Run).where(Run.schedule_id == schedule.id).order_by(col(Run.id))))


def test_bad_input_is_refused(sched_stack: Stack) -> None:
    from control.client import ApiError, Conflict, NotFound

    with sched_stack.client() as client:
        with pytest.raises(ApiError, match="is not a valid cron expression"):
            client.create_schedule(name="x", project="demo", command=["true"], cron="61 * * * *")
        with pytest.raises(ApiError, match="Unknown timezone 'Mars/Olympus'"):
            client.create_schedule(
                name="x", project="demo", command=["true"], cron="* * * * *", timezone="Mars/Olympus"
            )
        with pytest.raises(NotFound, match="Project nope does not exist"):
            client.create_schedule(name="x", project="nope", command=["true"], cron="* * * * *")
        client.create_schedule(name="taken", project="demo", command=["true"], cron="* * * * *")
        with pytest.raises(Conflict, match="Schedule taken already exists"):
            client.create_schedule(name="taken", project="demo", command=["true"], cron="* * * * *")
        with pytest.raises(ApiError, match="the command is empty"):
            client.create_schedule(name="y", project="demo", command=[""], cron="* * * * *")


def test_each_due_tick_fires_exactly_once(sched_stack: Stack) -> None:
    add(sched_stack, "five", "*/5 * * * *", overlap="queue")
    t0 = move_to(sched_stack, "five", datetime(2030, 1, 1, 12, 1, tzinfo=UTC))
    assert t0 == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    events: list[tuple[str, dict[str, Any]]] = []
    ticker = scheduler(sched_stack, events)
    assert ticker.run_once(t0 - timedelta(seconds=1)).fired == []
    for now in (t0, t0, t0 + timedelta(seconds=30), t0 + timedelta(minutes=4, seconds=59)):
        ticker.run_once(now)
    runs = runs_of(sched_stack, "five")
    assert len(runs) == 1 and runs[0].trigger == "schedule" and runs[0].trigger_info["scheduled_for"] == t0.isoformat()
    ticker.run_once(t0 + timedelta(minutes=5))
    assert len(runs_of(sched_stack, "five")) == 2
    assert [kind for kind, _ in events].count("schedule.tick") == 2


@pytest.mark.parametrize(("policy", "expected"), [("latest", 1), ("all", 4), ("none", 0)])
def test_catchup_policies(sched_stack: Stack, policy: str, expected: int) -> None:
    add(sched_stack, "hourly", "0 * * * *", catchup=policy, catchup_cap=4, overlap="queue")
    t0 = move_to(sched_stack, "hourly", datetime(2030, 1, 1, 0, 30, tzinfo=UTC))
    # The scheduler was down for ten hours.
    scheduler(sched_stack).run_once(t0 + timedelta(hours=9, minutes=30))
    runs = runs_of(sched_stack, "hourly")
    assert len(runs) == expected
    if policy == "latest":
        assert runs[0].trigger_info["scheduled_for"] == datetime(2030, 1, 1, 10, 0, tzinfo=UTC).isoformat()
    if policy == "all":
        assert [r.trigger_info["scheduled_for"][11:16] for r in runs] == ["07:00", "08:00", "09:00", "10:00"]


def test_none_still_fires_ticks_that_are_on_time(sched_stack: Stack) -> None:
    add(sched_stack, "prompt", "0 * * * *", catchup="none")
    t0 = move_to(sched_stack, "prompt", datetime(2030, 1, 1, 0, 30, tzinfo=UTC))
    scheduler(sched_stack).run_once(t0 + timedelta(seconds=2))
    assert len(runs_of(sched_stack, "prompt")) == 1


@pytest.mark.parametrize(
    ("overlap", "runs", "first_state"),
    [("skip", 1, "queued"), ("queue", 2, "queued"), ("cancel_previous", 2, "cancelled")],
)
def test_overlap_policies(sched_stack: Stack, overlap: str, runs: int, first_state: str) -> None:
    add(sched_stack, "busy", "* * * * *", overlap=overlap)
    t0 = move_to(sched_stack, "busy", datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC))
    ticker = scheduler(sched_stack)
    ticker.run_once(t0)
    ticker.run_once(t0 + timedelta(minutes=1))  # the first run is still queued (no agent here)
    found = runs_of(sched_stack, "busy")
    assert len(found) == runs
    assert found[0].state == first_state
    with Session(sched_stack.services.engine) as session:
        ticks = list(session.exec(select(ScheduleTick).order_by(col(ScheduleTick.scheduled_for))))
    assert [t.state for t in ticks] == (["fired", "skipped"] if overlap == "skip" else ["fired", "fired"])


def _walk(stack: Stack, name: str, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    ticker = scheduler(stack)
    now = start
    while now <= end:
        ticker.run_once(now)
        now += step
    return [datetime.fromisoformat(r.trigger_info["scheduled_for"]) for r in runs_of(stack, name)]


def test_dst_spring_forward_loses_and_doubles_nothing(sched_stack: Stack) -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    add(sched_stack, "nightly", "30 2 * * *", timezone="Europe/Berlin", overlap="queue")
    add(sched_stack, "hourly", "0 * * * *", timezone="Europe/Berlin", overlap="queue")
    start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    move_to(sched_stack, "nightly", start)
    move_to(sched_stack, "hourly", start)
    fired = _walk(sched_stack, "nightly", start, datetime(2026, 3, 30, 12, 0, tzinfo=UTC), timedelta(minutes=7))
    # 02:30 does not exist on 29 March: it fires at 03:30 CEST, once.
    assert [f.astimezone(berlin).strftime("%d %H:%M") for f in fired] == ["29 03:30", "30 02:30"]
    hourly = [f.astimezone(berlin) for f in runs_of_times(sched_stack, "hourly")]
    assert len(hourly) == len({h.isoformat() for h in hourly})
    local_hours = [h.strftime("%d %H") for h in hourly if h.strftime("%d") == "29"]
    assert local_hours == [f"29 {h:02d}" for h in range(24) if h != 2]  # 02:00 never exists that day


def runs_of_times(stack: Stack, name: str) -> list[datetime]:
    return [datetime.fromisoformat(r.trigger_info["scheduled_for"]) for r in runs_of(stack, name)]


def test_dst_fall_back_fires_once(sched_stack: Stack) -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    add(sched_stack, "nightly", "30 2 * * *", timezone="Europe/Berlin", overlap="queue")
    start = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    move_to(sched_stack, "nightly", start)
    fired = _walk(sched_stack, "nightly", start, datetime(2026, 10, 26, 12, 0, tzinfo=UTC), timedelta(minutes=7))
    # 02:30 happens twice on 25 October; it fires at the first one only.
    assert [f.astimezone(berlin).isoformat() for f in fired] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_two_schedulers_fire_each_tick_once(sched_stack: Stack) -> None:
    for i in range(5):
        add(sched_stack, f"s{i}", "* * * * *", overlap="queue")
        move_to(sched_stack, f"s{i}", datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC))
    minutes = [datetime(2030, 1, 1, 0, m, 0, tzinfo=UTC) + timedelta(seconds=1) for m in range(1, 21)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def drive(ticker: Scheduler) -> None:
        try:
            for now in minutes:
                barrier.wait(10)
                ticker.run_once(now)
        except BaseException as exc:
            errors.append(exc)

    one, two = scheduler(sched_stack), scheduler(sched_stack)
    threads = [threading.Thread(target=drive, args=(w,)) for w in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for i in range(5):
        times = runs_of_times(sched_stack, f"s{i}")
        assert len(times) == 20 and len(set(times)) == 20


def test_sqlite_lease_makes_a_second_scheduler_wait(tmp_path: Path) -> None:
    with running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}") as stack:
        now = datetime(2030, 1, 1, tzinfo=UTC)
        first, second = scheduler(stack), scheduler(stack)
        assert first.run_once(now).leader
        assert not second.run_once(now).leader
        # The first one vanishes: after the lease lapses the second takes over.
        later = now + timedelta(seconds=stack.settings.scheduler_lease_s + 1)
        assert second.run_once(later).leader
        assert not first.run_once(later).leader


def test_pause_resume_next_trigger_and_rm(sched_stack: Stack) -> None:
    add(sched_stack, "daily", "0 6 * * *", timezone="America/New_York")
    with sched_stack.client() as client:
        upcoming = client.schedule_next("daily", count=5)
        assert len(upcoming) == 5 and all(
            t.hour in (10, 11) and t.minute == 0 and t.utcoffset() == timedelta(0) for t in upcoming
        )
        assert client.update_schedule("daily", enabled=False).next_fire_at is None
        assert client.update_schedule("daily", enabled=True).next_fire_at is not None
        fired = client.trigger_schedule("daily")
        assert fired.state == "fired" and fired.run_id
        assert client.get_run(fired.run_id).trigger == "schedule"
        ticks = client.schedule_ticks("daily")
        assert ticks[0].run_id == fired.run_id
        assert (client.get_schedule("daily").last_tick or {})["run_id"] == fired.run_id
        client.delete_schedule("daily")
        assert client.list_schedules() == []
        assert client.get_run(fired.run_id).id == fired.run_id  # runs outlive their schedule


def test_viewers_and_other_developers_cannot_change_schedules(sched_stack: Stack) -> None:
    from control.client import Forbidden

    add(sched_stack, "mine", "0 6 * * *")
    viewer, dev = sched_stack.user("vic", "viewer"), sched_stack.user("dee", "developer")
    with sched_stack.client(viewer) as client:
        assert [s.name for s in client.list_schedules()] == ["mine"]
        with pytest.raises(Forbidden):
            client.trigger_schedule("mine")
    with sched_stack.client(dev) as client:
        with pytest.raises(Forbidden, match="Only the owner of project demo"):
            client.update_schedule("mine", enabled=False)
        with pytest.raises(Forbidden):
            client.create_schedule(name="x", project="demo", command=["true"], cron="* * * * *")


def created_events(stack: Stack, count: int) -> list[dict[str, Any]]:
    """The first ``count`` ``run.created`` events, as a reader of the events stream gets them."""
    received: list[dict[str, Any]] = []
    with stack.client() as client:
        for event in client.events(types=["run.created"], after=0):
            received.append(event.json()["data"])
            if len(received) == count:
                return received
    raise AssertionError("the events stream ended early")


def test_a_scheduled_run_is_announced_whole_as_an_api_run_is(sched_stack: Stack) -> None:
    """A reader (the dashboard) shows a scheduled run at once: its event is the whole run."""
    add(sched_stack, "nightly", "0 3 * * *", overlap="cancel_previous")
    t0 = move_to(sched_stack, "nightly", datetime(2030, 1, 1, 2, 0, tzinfo=UTC))
    services = sched_stack.services
    published: list[tuple[str, dict[str, Any]]] = []

    def publish(kind: str, data: BaseModel) -> None:
        published.append((kind, data.model_dump(mode="json")))
        services.events.publish(kind, data)

    ticker = Scheduler(
        services.engine, services.store, sched_stack.settings, publish=publish, wake=services.hub.publish
    )
    ticker.run_once(t0)
    with sched_stack.client() as client:
        by_api = client.create_run("demo", ["echo", "by hand"]).model_dump(mode="json")
        scheduled, announced_api = created_events(sched_stack, 2)
        assert announced_api == by_api
        assert scheduled == client.get_run(scheduled["id"]).model_dump(mode="json")
    assert scheduled.keys() == by_api.keys()
    assert (scheduled["trigger"], scheduled["project"], scheduled["user"]) == ("schedule", "demo", "admin")
    # The next tick asks the first run to stop: that change is announced whole too.
    ticker.run_once(t0 + timedelta(days=1))
    updated = [data for kind, data in published if kind == "run.updated"]
    assert [(u["id"], u["state"], u["cancel_requested"]) for u in updated] == [(scheduled["id"], "cancelled", True)]
    assert updated[0].keys() == by_api.keys()
