"""The run view's header: the run's facts, updated from events while the view is open."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from control.wire.runs import RunOut
from tui.cells import (
    FINISHED,
    STEP_STATES,
    Palette,
    command_line,
    exit_cell,
    run_command,
    run_duration,
    span,
    stamp,
    state_cell,
    theme_palette,
)

HEIGHT, HEIGHT_WITH_STEPS = 4, 5


def steps_line(run: RunOut, colours: Palette) -> Text:
    """``1 deps ✔ 0.4s · 2 build ✘ exit 3 · 3 test – skipped``: the failing step stands out."""
    line = Text(no_wrap=True, overflow="ellipsis")
    for step in run.steps:
        if step.index:
            line.append(" · ", style="dim")
        icon, colour = STEP_STATES.get(step.state, ("?", "$text-muted"))
        failing = step.state in ("failed", "timed_out")
        style = f"bold reverse {colours[colour]}" if failing else colours[colour]
        line.append(f"{step.index + 1} {step.name} {icon}", style=style)
        if failing and step.exit_code is not None:
            line.append(f" exit {step.exit_code}", style=f"bold {colours[colour]}")
        elif step.state in ("pending", "skipped", "running", "cancelled"):
            line.append(f" {step.state}", style=colours[colour])
        if step.duration_s is not None:
            line.append(f" {span(step.duration_s)}", style="dim")
    return line


def code_words(run: RunOut) -> str:
    """``code main @ 3f1c9a2e8d7b``: the checkout a repository run ran (empty for the others,
    whose develop server, if any, is shown already)."""
    if run.code_source != "repository":
        return ""
    commit = run.code_commit[:12] if run.code_commit else "(resolving)"
    return f"code {run.code_ref} @ {commit}" if run.code_ref != run.code_commit else f"code @ {commit}"


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

    def watch_run(self, run: RunOut | None) -> None:
        # A line of steps for a run of several; a run of one command keeps its three lines.
        self.styles.height = HEIGHT_WITH_STEPS if run is not None and len(run.steps) > 1 else HEIGHT

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
        first.append(f"   {project}")
        if run.job:
            first.append(f"   job {run.job}", style="bold")
        first.append(f"   {run.trigger} by {run.user}")
        if int(run.max_retries or 0):
            first.append(f"   attempt {run.attempt}/{int(run.max_retries) + 1}")
        if run.devserver_id:
            first.append(f"   in develop server {run.devserver_id}")
        code = code_words(run)
        if code:
            first.append(f"   {code}", style=colours["$accent"])
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
        shown = [first, command, third]
        if len(run.steps) > 1:
            command.plain = f"{run_command(run)}   ([ ] jump between steps, ! to the failing one)"
            shown.append(steps_line(run, colours))
        lines = Text("\n").join(shown)
        lines.no_wrap, lines.overflow = True, "ellipsis"  # one line each, always: long commands are cut
        return lines
