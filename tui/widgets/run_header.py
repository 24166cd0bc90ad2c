"""The run view's header: the run's facts, updated from events while the view is open."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from control.wire.runs import RunOut
from tui.cells import FINISHED, command_line, exit_cell, run_duration, span, stamp, state_cell, theme_palette


class RunHeader(Static):
    """Three lines: state and identity, the command, times and outcome."""

    DEFAULT_CSS = """
    RunHeader {
        height: 4;
        padding: 0 1;
        background: $panel;
        border-bottom: hkey $primary 40%;
    }
    """

    run: reactive[RunOut | None] = reactive(None, always_update=True)
    """The run as the API returns it (None while loading)."""
    note: reactive[str] = reactive("")
    """A short remark about the log stream (reconnecting, missing chunk)."""
    lines: reactive[int | None] = reactive(None)
    """Lines of the log as shown, once all of it is loaded; None uses the API's count."""

    def render(self) -> Text:
        run = self.run
        if run is None:
            # A load that failed says why instead of loading forever.
            return Text(f"The run could not be loaded: {self.note}" if self.note else "Loading the run…", style="dim")
        colours = theme_palette(self.app)
        first = Text(no_wrap=True, overflow="ellipsis")
        first.append_text(state_cell(str(run.state), colours))
        if run.cancel_requested and run.state not in FINISHED:
            first.append(" (cancelling)", style=colours["$warning"])
        first.append(f"   run {run.id}", style="bold")
        project = str(run.project)
        if run.environment:
            project += f"/{run.environment}"
        first.append(f"   {project}   {run.trigger} by {run.user}")
        if int(run.max_retries or 0):
            first.append(f"   attempt {run.attempt}/{int(run.max_retries) + 1}")
        if run.devserver_id:
            first.append(f"   in develop server {run.devserver_id}")
        command = Text(f"$ {command_line(run.command)}", no_wrap=True, overflow="ellipsis", style="bold")
        third = Text(no_wrap=True, overflow="ellipsis")
        third.append(f"queued {stamp(run.queued_at)}")
        if run.started_at:
            third.append(f" · started {stamp(run.started_at)[11:]}")
        if run.finished_at:
            third.append(f" · finished {stamp(run.finished_at)[11:]}")
        third.append(f" · took {span(run_duration(run))}")
        third.append(" · exit ")
        third.append_text(exit_cell(run.exit_code, colours))
        count = self.lines if self.lines is not None else run.log_lines
        third.append(f" · {count:,} line{'' if count == 1 else 's'}")
        if run.error:
            third.append(f" · {run.error}", style=colours["$error"])
        if self.note:
            third.append(f" · {self.note}", style=colours["$warning"])
        lines = Text("\n").join([first, command, third])
        lines.no_wrap, lines.overflow = True, "ellipsis"  # three lines, always: long commands are cut
        return lines
