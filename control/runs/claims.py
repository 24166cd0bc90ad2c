"""Agents claim work items atomically, honouring concurrency limits, oldest first.

PostgreSQL: claims are serialized with a transaction-scoped advisory lock (so limit accounting
is exact) and candidate rows are read ``FOR UPDATE SKIP LOCKED``. SQLite: the claim runs in a
``BEGIN IMMEDIATE`` transaction, the single writer. Either way two agents never receive the
same item.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from control.auth import hash_token, new_token
from control.clock import utcnow
from control.db.tables import DevServer, Environment, Project, Run, Schedule, WorkItem
from control.devservers import lifecycle as devserver_lifecycle
from control.runs import states

CLAIM_LOCK = 7_420_001
SCAN = 200


@dataclass
class Claimed:
    item: WorkItem
    run: Run | None
    worker_token: str | None
    devserver: DevServer | None = None


def serialize_writers(session: Session) -> None:
    """Make this transaction the only claimer: must be the session's first statement.

    SQLite: take the write lock up front (reading first and upgrading later fails under
    contention). PostgreSQL: a transaction-scoped advisory lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=CLAIM_LOCK))  # type: ignore[call-overload]
    else:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def _active_counts(session: Session) -> tuple[int, Counter[int], Counter[int]]:
    rows = session.exec(
        select(Run.project_id, Run.environment_id, func.count())
        .where(col(Run.state).in_(states.ACTIVE))
        .group_by(Run.project_id, Run.environment_id)  # type: ignore[arg-type]
    ).all()
    per_project: Counter[int] = Counter()
    per_env: Counter[int] = Counter()
    for project_id, env_id, count in rows:
        per_project[project_id] += count
        if env_id is not None:
            per_env[env_id] += count
    return sum(per_project.values()), per_project, per_env


def _limits(session: Session, runs: list[Run]) -> tuple[dict[int, int | None], dict[int, int | None]]:
    project_ids = {r.project_id for r in runs}
    env_ids = {r.environment_id for r in runs if r.environment_id is not None}
    projects = dict(
        session.exec(select(Project.id, Project.max_concurrent_runs).where(col(Project.id).in_(project_ids))).all()
    )
    envs = (
        dict(
            session.exec(
                select(Environment.id, Environment.max_concurrent_runs).where(col(Environment.id).in_(env_ids))
            ).all()
        )
        if env_ids
        else {}
    )
    return projects, envs  # type: ignore[return-value]


def _serial_schedules(session: Session, runs: list[Run]) -> tuple[set[int], Counter[int]]:
    """Schedules with overlap policy "queue" among ``runs``, and their active run counts."""
    ids = {r.schedule_id for r in runs if r.schedule_id is not None}
    if not ids:
        return set(), Counter()
    serial = set(session.exec(select(Schedule.id).where(col(Schedule.id).in_(ids), Schedule.overlap == "queue")))
    active: Counter[int] = Counter()
    if serial:
        rows = session.exec(
            select(Run.schedule_id, func.count())
            .where(col(Run.schedule_id).in_(serial), col(Run.state).in_(states.ACTIVE))
            .group_by(Run.schedule_id)  # type: ignore[arg-type]
        ).all()
        active.update({sid: n for sid, n in rows if sid is not None})
    return {s for s in serial if s is not None}, active


def claim(
    session: Session, agent_id: int, queues: list[str], max_items: int, global_limit: int | None
) -> list[Claimed]:
    """Claim up to ``max_items`` pending items of ``queues`` for ``agent_id`` and commit."""
    serialize_writers(session)
    candidates = list(
        session.exec(
            select(WorkItem)
            .where(WorkItem.state == "pending", col(WorkItem.queue).in_(queues))
            .order_by(col(WorkItem.id))
            .limit(SCAN)
            .with_for_update(skip_locked=True)
        )
    )
    if not candidates:
        session.commit()
        return []
    runs = {
        r.id: r for r in session.exec(select(Run).where(col(Run.id).in_([c.run_id for c in candidates if c.run_id])))
    }
    total, per_project, per_env = _active_counts(session)
    project_limits, env_limits = _limits(session, list(runs.values()))
    serial, per_schedule = _serial_schedules(session, list(runs.values()))
    now = utcnow()
    claimed: list[Claimed] = []
    for item in candidates:
        if len(claimed) >= max_items:
            break
        run = runs.get(item.run_id) if item.run_id else None
        if item.kind == "run":
            if run is None or run.state != states.QUEUED:
                item.state = "done"  # cancelled while queued, or an orphan: nothing to launch
                session.add(item)
                continue
            if global_limit is not None and total >= global_limit:
                break  # the global limit holds everything back, in order
            p_limit = project_limits.get(run.project_id)
            e_limit = env_limits.get(run.environment_id) if run.environment_id else None
            if (p_limit is not None and per_project[run.project_id] >= p_limit) or (
                e_limit is not None and run.environment_id is not None and per_env[run.environment_id] >= e_limit
            ):
                continue  # this project or environment is full; later items of others may go
            if run.schedule_id in serial and per_schedule[run.schedule_id] > 0:
                continue  # overlap policy "queue": wait for the schedule's previous run
            token = "dyr_" + new_token()[3:]
            run.state, run.agent_id, run.worker_token_hash, run.heartbeat_at = (
                states.STARTING,
                agent_id,
                hash_token(token),
                now,
            )
            session.add(run)
            total += 1
            per_project[run.project_id] += 1
            if run.environment_id is not None:
                per_env[run.environment_id] += 1
            if run.schedule_id is not None:
                per_schedule[run.schedule_id] += 1
            claimed.append(Claimed(item, run, token))
        elif item.kind in ("devserver_start", "devserver_stop"):
            server = session.get(DevServer, item.devserver_id) if item.devserver_id else None
            if server is None or (item.kind == "devserver_start" and server.state != devserver_lifecycle.PENDING):
                item.state = "done"  # stopped (or gone) before any agent took it
                session.add(item)
                continue
            if item.kind == "devserver_start":
                devserver_lifecycle.claimed(server, agent_id)
                session.add(server)
            claimed.append(Claimed(item, None, None, server))
        else:
            claimed.append(Claimed(item, run, None))
        item.state, item.claimed_by, item.claimed_at = "claimed", agent_id, now
        item.attempts += 1
        session.add(item)
    session.commit()
    return claimed
