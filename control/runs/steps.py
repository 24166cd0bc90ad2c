"""A run's steps: created with the run, updated by its worker as each starts and ends.

A run of one command has one step; a run of several stops at the first step that fails, and the
steps after it are ``skipped``. Step states only move forward (pending → running → an end), so
a late report of a step starting never undoes the report of its end.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlmodel import Session, col, select

from control.db.tables import Run, RunStep
from control.wire.runs import StepOut, WorkerStep

PENDING, RUNNING = "pending", "running"
ENDED = frozenset({"succeeded", "failed", "timed_out", "cancelled", "skipped"})
_RANK = {PENDING: 0, RUNNING: 1, **{state: 2 for state in ENDED}}


class StepDef(NamedTuple):
    name: str
    command: list[str]


def default_name(command: list[str]) -> str:
    """The step name of a run of one command: its program's name (``dbt`` for ``dbt build``)."""
    program = command[0].rsplit("/", 1)[-1] if command else ""
    name = "".join(c for c in program if c.isprintable()).strip()[:64]
    return name or "command"


def step_defs(command: list[str]) -> list[StepDef]:
    return [StepDef(default_name(command), command)]


def add_steps(session: Session, run: Run, steps: Iterable[StepDef]) -> None:
    assert run.id is not None
    for index, step in enumerate(steps):
        session.add(RunStep(run_id=run.id, idx=index, name=step.name, command=list(step.command)))


def steps_of(session: Session, run_ids: list[int]) -> dict[int, list[RunStep]]:
    """The steps of each run, in order (one query for a whole page of runs)."""
    found: dict[int, list[RunStep]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    rows = session.exec(
        select(RunStep).where(col(RunStep.run_id).in_(run_ids)).order_by(col(RunStep.run_id), col(RunStep.idx))
    )
    for row in rows:
        found[row.run_id].append(row)
    return found


def step_out(row: RunStep) -> StepOut:
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = round((row.finished_at - row.started_at).total_seconds(), 3)
    return StepOut(
        index=row.idx,
        name=row.name,
        command=row.command,
        state=row.state,
        exit_code=row.exit_code,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_s=duration,
        log_line=row.log_line,
    )


def record(session: Session, run: Run, reports: Iterable[WorkerStep], final: bool = False) -> int:
    """Apply the worker's step reports (the caller commits); how many steps changed.

    A live report that would move a step backwards (a late "running" after its end) is ignored.
    The ``final`` report (the worker's outcome) is the truth about every step it names, also over
    the ends written when the run was thought lost."""
    assert run.id is not None
    rows = {row.idx: row for row in session.exec(select(RunStep).where(RunStep.run_id == run.id))}
    changed = 0
    for report in reports:
        row = rows.get(report.index)
        if row is None:
            continue
        if not final and (_RANK[report.state] < _RANK.get(row.state, 0) or row.state in ENDED):
            continue  # a live report never moves a step backwards, and an end stays
        row.state = report.state
        row.exit_code = report.exit_code if report.exit_code is not None else row.exit_code
        row.started_at = _first(row.started_at, report.started_at)
        row.finished_at = report.finished_at or row.finished_at
        row.log_line = report.log_line or row.log_line
        session.add(row)
        changed += 1
    return changed


def close_open_steps(session: Session, run: Run, state: str, at: datetime) -> None:
    """A run that ended without its worker's step report (lost, killed, cancelled while queued):
    a running step gets the run's end, pending ones are skipped."""
    ended = {"succeeded": "succeeded", "cancelled": "cancelled", "timed_out": "timed_out"}.get(state, "failed")
    for row in session.exec(
        select(RunStep).where(RunStep.run_id == run.id, col(RunStep.state).in_([PENDING, RUNNING]))
    ):
        if row.state == RUNNING:
            row.state, row.finished_at = ended, at
        else:
            row.state = "skipped"
        session.add(row)


def _first(current: datetime | None, reported: datetime | None) -> datetime | None:
    return current or reported
