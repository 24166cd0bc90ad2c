"""The dashboard's schedules: when each fires next and how its last tick went."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType

from tui.actions import bindings
from tui.cells import Palette, command_line, state_cell, until
from tui.widgets.resource_table import Column, Item, ResourceTable


def last_result(schedule: Item, colours: Palette) -> Text:
    """``fired → succeeded`` from the last tick; ``skipped (overlap)``; ``-`` before any."""
    tick = schedule.get("last_tick")
    if not isinstance(tick, dict):
        return Text("-")
    if tick.get("run_state"):
        text = Text(f"{tick.get('state')} → ")
        text.append_text(state_cell(str(tick["run_state"]), colours))
        return text
    reason = f" ({tick['reason']})" if tick.get("reason") else ""
    return Text(f"{tick.get('state')}{reason}")


def next_fire(schedule: Item, _: Palette) -> Text:
    if not schedule.get("enabled", True):
        return Text("paused", style="dim")
    return Text(until(schedule.get("next_fire_at")))


COLUMNS = (
    Column("name", "name", lambda schedule, _: Text(str(schedule.get("name")))),
    Column("project", "project", lambda schedule, _: Text(str(schedule.get("project") or "-"))),
    Column("cron", "cron", lambda schedule, _: Text(f"{schedule.get('cron')} {schedule.get('timezone', '')}".strip())),
    Column("next", "next fire", next_fire, width=10),
    Column("last", "last result", last_result),
    Column("command", "command", lambda schedule, _: Text(command_line(schedule.get("command")), no_wrap=True)),
)


class SchedulesTable(ResourceTable):
    """Schedules, sorted by name as the API returns them."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("schedules")]
    COLUMNS = COLUMNS
    CLOCK_COLUMNS = frozenset({"next"})
