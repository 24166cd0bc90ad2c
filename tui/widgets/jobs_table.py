"""The dashboard's jobs: what triggers each, when it fires next, how its last run went and who
its runs tell."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType

from control.wire.jobs import JobOut
from tui.actions import bindings
from tui.cells import Palette, ago, state_cell, until
from tui.widgets.resource_table import Column, ResourceTable


def last_run(job: JobOut, colours: Palette) -> Text:
    """``✓ succeeded #12 3m ago``; ``-`` before the first run."""
    run = job.last_run
    if run is None:
        return Text("-")
    text = state_cell(run.state, colours)
    text.append(f" #{run.id} {ago(run.finished_at or run.queued_at)}")
    return text


def triggers(job: JobOut, _: Palette) -> Text:
    words = [t.summary + ("" if t.enabled else " (paused)") for t in job.triggers]
    return Text("; ".join(words) or "by hand", no_wrap=True)


def next_fire(job: JobOut, _: Palette) -> Text:
    return Text(until(job.next_fire_at)) if job.next_fire_at else Text("-", style="dim")


def notifies(job: JobOut, _: Palette) -> Text:
    return Text("; ".join(job.notifies), no_wrap=True) if job.notifies else Text("-", style="dim")


JobColumn = Column[JobOut]

COLUMNS = (
    JobColumn("name", "name", lambda job, _: Text(job.name)),
    JobColumn("project", "project", lambda job, _: Text(job.project or "-")),
    JobColumn("environment", "env", lambda job, _: Text(job.environment or "-")),
    JobColumn("steps", "steps", lambda job, _: Text(str(len(job.steps)), justify="right"), width=5),
    JobColumn("last", "last run", last_run),
    JobColumn("next", "next fire", next_fire, width=10),
    JobColumn("triggers", "triggers", triggers),
    JobColumn("notifies", "notifies", notifies),
)


class JobsTable(ResourceTable[JobOut]):
    """Jobs, by project and name as the API returns them."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("jobs")]
    COLUMNS = COLUMNS
    MODEL = JobOut
    CLOCK_COLUMNS = frozenset({"next", "last"})
