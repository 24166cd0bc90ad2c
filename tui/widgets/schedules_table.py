"""The dashboard's schedules: when each fires next and how its last tick went."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType

from control.wire.schedules import ScheduleOut
from tui.actions import bindings
from tui.cells import Palette, command_line, state_cell, until
from tui.widgets.resource_table import Column, ResourceTable


def last_result(schedule: ScheduleOut, colours: Palette) -> Text:
    """``fired → succeeded`` from the last tick; ``skipped (overlap)``; ``-`` before any."""
    tick = schedule.last_tick
    if not isinstance(tick, dict):
        return Text("-")
    if tick.get("run_state"):
        text = Text(f"{tick.get('state')} → ")
        text.append_text(state_cell(str(tick["run_state"]), colours))
        return text
    reason = f" ({tick['reason']})" if tick.get("reason") else ""
    return Text(f"{tick.get('state')}{reason}")


def next_fire(schedule: ScheduleOut, _: Palette) -> Text:
    if not schedule.enabled:
        return Text("paused", style="dim")
    return Text(until(schedule.next_fire_at))


ScheduleColumn = Column[ScheduleOut]

COLUMNS = (
    ScheduleColumn("name", "name", lambda schedule, _: Text(schedule.name)),
    ScheduleColumn("project", "project", lambda schedule, _: Text(schedule.project or "-")),
    ScheduleColumn("cron", "cron", lambda schedule, _: Text(f"{schedule.cron} {schedule.timezone}".strip())),
    ScheduleColumn("next", "next fire", next_fire, width=10),
    ScheduleColumn("last", "last result", last_result),
    ScheduleColumn("command", "command", lambda schedule, _: Text(command_line(schedule.command), no_wrap=True)),
)


class SchedulesTable(ResourceTable[ScheduleOut]):
    """Schedules, sorted by name as the API returns them."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("schedules")]
    COLUMNS = COLUMNS
    MODEL = ScheduleOut
    CLOCK_COLUMNS = frozenset({"next"})
