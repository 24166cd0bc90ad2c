"""The dashboard's runs: newest first, filtered by state, project, trigger and job on the server."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import BindingType
from textual.message import Message

from control.wire.runs import RunOut
from tui.actions import bindings
from tui.cells import Palette, ago, exit_cell, run_command, run_duration, span, state_cell
from tui.widgets.resource_table import Column, ResourceTable


def _trigger(run: RunOut, _: Palette) -> Text:
    return Text(run.trigger or "-")


RunColumn = Column[RunOut]

COLUMNS = (
    RunColumn("id", "#", lambda run, _: Text(str(run.id), justify="right")),
    RunColumn("state", "state", lambda run, colours: state_cell(run.state, colours), width=12),
    RunColumn("project", "project", lambda run, _: Text(run.project or "-")),
    RunColumn("environment", "env", lambda run, _: Text(run.environment or "-")),
    RunColumn("job", "job", lambda run, _: Text(run.job or "-")),
    RunColumn("trigger", "trigger", _trigger),
    RunColumn("duration", "duration", lambda run, _: Text(span(run_duration(run)), justify="right"), width=9),
    RunColumn("exit", "exit", lambda run, colours: exit_cell(run.exit_code, colours), width=4),
    RunColumn("queued", "queued", lambda run, _: Text(ago(run.queued_at)), width=9),
    RunColumn("command", "command", lambda run, _: Text(run_command(run), no_wrap=True)),
)


NEAR_END = 5


class RunsTable(ResourceTable[RunOut]):
    """Runs, newest first; more pages load as the cursor reaches the end."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("runs")]
    COLUMNS = COLUMNS
    MODEL = RunOut

    class MoreWanted(Message):
        """The cursor reached the last row and the API has older runs."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.next_cursor: str | None = None
        """The API's cursor for the next (older) page; None when every run is loaded."""
        self.server_filter: dict[str, Any] = {}
        """``state`` (list), ``project``, ``trigger`` and ``job`` as list_runs takes them."""

    def accepts(self, run: RunOut) -> bool:
        """Whether a run from an event belongs in this list under the server-side filter."""
        states = self.server_filter.get("state")
        if states and run.state not in states:
            return False
        for key in ("project", "trigger", "job"):
            wanted = self.server_filter.get(key)
            if wanted and getattr(run, key) != wanted:
                return False
        return True

    CLOCK_COLUMNS = frozenset({"duration", "queued"})

    def live_keys(self) -> list[str]:
        """Rows whose duration still grows."""
        return [key for key, run in self.items.items() if run.state in ("starting", "running")]

    def watch_cursor_coordinate(self, old: Any, new: Any) -> None:
        super().watch_cursor_coordinate(old, new)
        if old.row != new.row:
            self._want_more(new.row)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new > old:
            self._want_more(int(new) + self.size.height)

    def _want_more(self, row: int) -> None:
        """Ask for older runs once the user is near the last loaded one (not while rows are
        being replaced: the cursor moves then too)."""
        if self.next_cursor and not self.filling and self.row_count and row >= self.row_count - NEAR_END:
            self.post_message(self.MoreWanted())
