"""The scheduler's background cleanup: compaction, retention, orphans, idle develop servers."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from control.clock import utcnow
from control.db.tables import DevServer, LogChunk, Project, Run, User, WorkItem
from control.logformat import raw_output
from control.schedules.scheduler import Scheduler
from tests.stack import Stack, wait_for_run


def cleaner(stack: Stack, events: list[tuple[str, object]], **settings: object) -> Scheduler:
    configured = stack.settings.model_copy(update=settings)
    return Scheduler(
        stack.services.engine, stack.services.store, configured, publish=lambda kind, data: events.append((kind, data.model_dump(mode="json")))
    )


def finished_run(stack: Stack, script: str) -> int:
    with stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script])
        assert wait_for_run(client, run.id).state == "succeeded"
        return int(run.id)


def test_a_reader_that_listed_chunks_before_compaction_still_reads_them(run_stack: Stack) -> None:
    """The index said "runs/N/logs/1"; compaction then moved it into "runs/N/log" and deleted
    the chunk object. The reader reloads the index row instead of failing half way."""
    import asyncio

    from control.api.routes.run_logs import read_current

    run_id = finished_run(run_stack, "for i in $(seq 1 20); do echo line $i; sleep 0.01; done")
    with Session(run_stack.services.engine, expire_on_commit=False) as session:
        stale = list(session.exec(select(LogChunk).where(LogChunk.run_id == run_id).order_by(col(LogChunk.seq))))
    before = b"".join(asyncio.run(read_current(run_stack.services, c)) for c in stale)
    _, report = cleaner(run_stack, [], compact_after_s=0).clean(utcnow() + timedelta(seconds=1))
    assert report.compacted == [run_id]
    after = b"".join(asyncio.run(read_current(run_stack.services, c)) for c in stale)
    assert after == before and raw_output(after) == b"".join(b"line %d\n" % i for i in range(1, 21))


def test_compaction_keeps_readers_working(run_stack: Stack) -> None:
    run_id = finished_run(run_stack, "for i in $(seq 1 50); do echo line $i; sleep 0.01; done")
    with run_stack.client() as client:
        before, seq = client.read_logs(run_id)
        tail_before, _ = client.read_logs(run_id, tail=5)
    assert seq > 1
    events: list[tuple[str, object]] = []
    _, report = cleaner(run_stack, events, compact_after_s=0).clean(utcnow() + timedelta(seconds=1))
    assert report.compacted == [run_id]
    assert ("cleanup.compacted", {"ids": [run_id]}) in events
    store = run_stack.services.store
    assert [o.key for o in store.list(f"runs/{run_id}/")] == [f"runs/{run_id}/log"]
    with Session(run_stack.services.engine) as session:
        assert {c.object_key for c in session.exec(select(LogChunk).where(LogChunk.run_id == run_id))} == {
            f"runs/{run_id}/log"
        }
    with run_stack.client() as client:
        after, seq_after = client.read_logs(run_id)
        tail_after, _ = client.read_logs(run_id, tail=5)
        middle, _ = client.read_logs(run_id, from_seq=2)
        followed = b""
        import base64

        for event in client.follow_logs(run_id):
            if event.event == "chunk":
                followed += base64.b64decode(event.json()["data"])
    assert (after, seq_after, tail_after) == (before, seq, tail_before)
    assert followed == before and before.endswith(middle)
    assert raw_output(after) == b"".join(b"line %d\n" % i for i in range(1, 51))
    # A second pass finds nothing to do.
    assert cleaner(run_stack, [], compact_after_s=0).clean(utcnow() + timedelta(seconds=2))[1].compacted == []


def test_retention_by_age_and_count(run_stack: Stack) -> None:
    ids = [finished_run(run_stack, f"echo run {i}; mkdir -p out; echo {i} > out/a.txt") for i in range(3)]
    events: list[tuple[str, object]] = []
    _, report = cleaner(run_stack, events, log_retention_runs=1).clean(utcnow())
    assert report.logs_expired == ids[:2] and report.artifacts_expired == ids[:2]
    from control.client import ApiError

    with run_stack.client() as client:
        try:
            client.read_logs(ids[0])
            raise AssertionError("expired logs were served")
        except ApiError as exc:
            assert exc.status == 410 and "removed by retention" in exc.message
        assert raw_output(client.read_logs(ids[2])[0]) == b"run 2\n"
    _, report = cleaner(run_stack, [], log_retention_days=1).clean(utcnow() + timedelta(days=2))
    assert report.logs_expired == [ids[2]]
    assert list(run_stack.services.store.list(f"runs/{ids[2]}/logs/")) == []


def test_orphaned_work_items_and_idle_devservers(run_stack: Stack) -> None:
    engine = run_stack.services.engine
    with Session(engine, expire_on_commit=False) as session:
        owner = session.exec(select(User).where(User.name == "admin")).one()
        project = session.exec(select(Project).where(Project.name == "demo")).one()
        assert owner.id is not None and project.id is not None
        long_ago = utcnow() - timedelta(days=30)
        session.add(WorkItem(kind="run", run_id=None, state="done", created_at=long_ago))
        server = DevServer(
            user_id=owner.id,
            project_id=project.id,
            state="running",
            idle_timeout_s=60,
            last_activity_at=utcnow() - timedelta(minutes=5),
        )
        session.add(server)
        session.commit()
    events: list[tuple[str, object]] = []
    _, report = cleaner(run_stack, events).clean(utcnow())
    assert report.items_deleted >= 1
    assert report.devservers_stopped == [server.id]
    with Session(engine) as session:
        stopped = session.get(DevServer, server.id)
        assert stopped is not None and stopped.state == "stopping"
        assert (
            session.exec(
                select(WorkItem).where(WorkItem.kind == "devserver_stop", WorkItem.devserver_id == server.id)
            ).first()
            is not None
        )
    assert any(kind == "cleanup.devservers_stopped" for kind, _ in events)


def test_lost_runs_are_marked_by_the_cleanup(run_stack: Stack) -> None:
    with run_stack.client() as client:
        run = client.create_run("demo", ["sleep", "30"])
        wait_for_run(client, run.id, states=("running",))
    events: list[tuple[str, object]] = []
    lost, _ = cleaner(run_stack, events).clean(utcnow() + timedelta(minutes=5))
    assert lost == [run.id]
    assert ("cleanup.lost", {"runs": [run.id]}) in events
    with run_stack.client() as client:
        assert client.get_run(run.id).state == "lost"


def silent_run(stack: Stack) -> int:
    """A run whose worker started and then went silent an hour ago."""
    with stack.client() as client:
        run_id = client.create_run("demo", ["sleep", "30"]).id
    with Session(stack.services.engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.state, run.started_at = "running", utcnow() - timedelta(hours=1)
        run.heartbeat_at = run.started_at
        session.add(run)
        session.commit()
    return run_id


def test_a_lost_run_is_announced_whole_by_the_api_and_by_the_scheduler(stack: Stack) -> None:
    from control.api.housekeeping import reap_lost

    with stack.client() as admin:
        admin.create_project("demo")
    by_api = silent_run(stack)
    # The API's housekeeping, on the events stream that readers follow.
    assert reap_lost(stack.services) == 1
    with stack.client() as client:
        announced = next(
            event.json()["data"]
            for event in client.events(types=["run.updated"], after=0)
            if event.json()["data"]["id"] == by_api
        )
        assert announced == client.get_run(by_api).model_dump(mode="json") and announced["state"] == "lost"
    # The scheduler's cleanup, the other caller of the same function.
    by_scheduler = silent_run(stack)
    events: list[tuple[str, object]] = []
    assert cleaner(stack, events).clean(utcnow())[0] == [by_scheduler]
    with stack.client() as client:
        assert ("run.updated", client.get_run(by_scheduler).model_dump(mode="json")) in events
    assert ("cleanup.lost", {"runs": [by_scheduler]}) in events
