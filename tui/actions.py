"""Every named action of the TUI in one registry: its id, default keys, where it applies.

The id is what users rebind in ``tui.toml`` (``[keys] "run.cancel" = "C"``), the key the
footer, the help screen (``?``) and the command palette (``ctrl+p``) show, and whether the action
changes anything (refused in ``--read-only``) or destroys something (asks first).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class ActionSpec:
    """One action a user can take."""

    id: str
    """Stable name used in tui.toml, e.g. ``run.cancel``."""
    keys: str
    """Default keys, comma-separated, in Textual's names (``c``, ``ctrl+f``, ``question_mark``)."""
    action: str
    """The Textual action it runs on the widget or screen of its scope."""
    title: str
    """Short name for the footer and the palette."""
    help: str
    """One sentence for the help screen and the palette."""
    scope: str
    """Where it applies: a key of :data:`SCOPES`."""
    writes: bool = False
    """Launches or changes something: refused in --read-only mode."""
    confirm: bool = False
    """Destructive: asks before doing it."""
    show: bool = True
    """Shown in the footer."""


SCOPES: dict[str, str] = {
    "app": "Everywhere",
    "dashboard": "Dashboard",
    "runs": "Dashboard: runs",
    "devservers": "Dashboard: develop servers",
    "jobs": "Dashboard: jobs",
    "schedules": "Dashboard: schedules",
    "table": "Every table",
    "run": "Run view",
    "log": "Run view: the log",
    "devserver": "Develop server view",
}

A = ActionSpec
ACTIONS: tuple[ActionSpec, ...] = (
    # everywhere
    A("app.quit", "q", "quit", "Quit", "Leave devyard.", "app", show=False),
    A("app.help", "question_mark,f1", "help", "Help", "Show every key of the current view.", "app"),
    A(
        "app.jump",
        "colon",
        "jump",
        "Jump",
        "Jump to a view: runs, dev, jobs, schedules, agents, run 42, dev shop.",
        "app",
        show=False,
    ),
    A(
        "app.theme",
        "ctrl+t",
        "toggle_theme",
        "Theme",
        "Switch between the light and the dark theme.",
        "app",
        show=False,
    ),
    # dashboard
    A(
        "dashboard.devservers",
        "1",
        "show_tab('devservers')",
        "Dev",
        "Show the develop servers.",
        "dashboard",
        show=False,
    ),
    A("dashboard.runs", "2", "show_tab('runs')", "Runs", "Show the runs.", "dashboard", show=False),
    A("dashboard.jobs", "3", "show_tab('jobs')", "Jobs", "Show the jobs.", "dashboard", show=False),
    A("dashboard.schedules", "4", "show_tab('schedules')", "Schedules", "Show the schedules.", "dashboard", show=False),
    A("dashboard.agents", "5", "show_tab('agents')", "Agents", "Show the agents.", "dashboard", show=False),
    A(
        "dashboard.next_tab",
        "l,right_square_bracket",
        "next_tab",
        "Next tab",
        "Show the next tab.",
        "dashboard",
        show=False,
    ),
    A(
        "dashboard.prev_tab",
        "h,left_square_bracket",
        "prev_tab",
        "Previous tab",
        "Show the previous tab.",
        "dashboard",
        show=False,
    ),
    A(
        "dashboard.filter",
        "slash",
        "filter",
        "Filter",
        "Filter the table: words, or state:, project:, trigger:.",
        "dashboard",
    ),
    A("dashboard.clear", "escape", "clear_filter", "Clear filter", "Clear the filter.", "dashboard", show=False),
    A("dashboard.refresh", "r", "refresh", "Refresh", "Reload every table from the API.", "dashboard", show=False),
    A(
        "dashboard.new_run",
        "n",
        "new_run",
        "New run",
        "Start a run: command, project, environment.",
        "dashboard",
        writes=True,
    ),
    # runs table
    A("runs.open", "enter", "screen.open_run", "Open", "Open the run: its facts and its live log.", "runs"),
    A(
        "runs.cancel",
        "c",
        "screen.cancel_run",
        "Cancel",
        "Cancel the selected run (asks first).",
        "runs",
        writes=True,
        confirm=True,
    ),
    A(
        "runs.rerun",
        "R",
        "screen.rerun",
        "Rerun",
        "Start the selected run's command again (a job's run: the job, at the same commit).",
        "runs",
        writes=True,
    ),
    A("runs.artifacts", "a", "screen.artifacts", "Artifacts", "List the selected run's artifacts.", "runs", show=False),
    A(
        "runs.copy_id",
        "y",
        "screen.copy_run_id",
        "Copy id",
        "Copy the selected run's id to the clipboard.",
        "runs",
        show=False,
    ),
    # develop servers table
    A(
        "devservers.open",
        "enter",
        "screen.open_devserver",
        "Open",
        "Open the develop server: git, sync, health.",
        "devservers",
    ),
    A(
        "devservers.start",
        "s",
        "screen.start_devserver",
        "Start",
        "Start a develop server for a project.",
        "devservers",
        writes=True,
    ),
    A(
        "devservers.stop",
        "x",
        "screen.stop_devserver",
        "Stop",
        "Stop the selected develop server (asks first).",
        "devservers",
        writes=True,
        confirm=True,
    ),
    A(
        "devservers.shell",
        "o",
        "screen.shell",
        "Shell",
        "Open a shell in the develop server; exit it to come back.",
        "devservers",
        writes=True,
    ),
    # jobs table
    A("jobs.open", "enter", "screen.open_job_run", "Last run", "Open the job's last run.", "jobs"),
    A(
        "jobs.run",
        "t",
        "screen.run_job",
        "Run now",
        "Start a run of the selected job now (asks first) and open it.",
        "jobs",
        writes=True,
        confirm=True,
    ),
    A(
        "jobs.runs",
        "f",
        "screen.job_runs",
        "Its runs",
        "Show the runs tab filtered to the selected job's runs.",
        "jobs",
    ),
    # schedules table
    A(
        "schedules.open",
        "enter",
        "screen.open_schedule_run",
        "Last run",
        "Open the last run the schedule fired.",
        "schedules",
    ),
    A(
        "schedules.trigger",
        "t",
        "screen.trigger_schedule",
        "Trigger",
        "Fire the selected schedule now (asks first).",
        "schedules",
        writes=True,
        confirm=True,
    ),
    A(
        "schedules.add",
        "a",
        "screen.add_schedule",
        "Add",
        "Add a schedule: name, cron, timezone, command, project.",
        "schedules",
        writes=True,
    ),
    A(
        "schedules.pause",
        "p",
        "screen.toggle_schedule",
        "Pause/resume",
        "Pause the selected schedule (asks first) or resume a paused one.",
        "schedules",
        writes=True,
        confirm=True,
    ),
    # every table
    A("table.down", "j", "cursor_down", "Down", "Move down.", "table", show=False),
    A("table.up", "k", "cursor_up", "Up", "Move up.", "table", show=False),
    A("table.top", "g", "scroll_top", "Top", "Go to the first row.", "table", show=False),
    A("table.bottom", "G", "scroll_bottom", "Bottom", "Go to the last row.", "table", show=False),
    A("table.page_down", "ctrl+d", "page_down", "Page down", "Move down a page.", "table", show=False),
    A("table.page_up", "ctrl+u", "page_up", "Page up", "Move up a page.", "table", show=False),
    # run view
    A("run.back", "escape", "back", "Back", "Go back to the dashboard.", "run"),
    A("run.cancel", "c", "cancel", "Cancel", "Cancel the run (asks first).", "run", writes=True, confirm=True),
    A(
        "run.rerun",
        "R",
        "rerun",
        "Rerun",
        "Start this run's command again and open it.",
        "run",
        writes=True,
        show=False,
    ),
    A("run.artifacts", "a", "artifacts", "Artifacts", "List the run's artifacts.", "run", show=False),
    A(
        "run.next_step",
        "right_square_bracket",
        "next_step",
        "Next step",
        "Jump to where the next step's output starts.",
        "run",
        show=False,
    ),
    A(
        "run.previous_step",
        "left_square_bracket",
        "previous_step",
        "Previous step",
        "Jump to where the previous step's output starts.",
        "run",
        show=False,
    ),
    A(
        "run.failed_step",
        "exclamation_mark",
        "failed_step",
        "Failed step",
        "Jump to the step that failed (or timed out).",
        "run",
        show=False,
    ),
    A("run.copy_id", "y", "copy_id", "Copy id", "Copy the run's id to the clipboard.", "run", show=False),
    # the log
    A("log.end", "end,G", "end", "End", "Jump to the end and follow new lines.", "log"),
    A("log.top", "home,g", "top", "Top", "Jump to the first line (pauses following).", "log", show=False),
    A("log.follow", "f", "toggle_follow", "Follow", "Pause or resume following new lines.", "log", show=False),
    A(
        "log.search",
        "s,ctrl+f",
        "search",
        "Search",
        "Search the log; n and N go to the next and previous match.",
        "log",
    ),
    A("log.next", "n", "next_match", "Next", "Go to the next match.", "log", show=False),
    A("log.previous", "N", "previous_match", "Previous", "Go to the previous match.", "log", show=False),
    A("log.filter", "slash", "filter", "Filter", "Show only the lines that contain some text.", "log"),
    A("log.clear", "escape", "clear", "Clear", "Clear the filter and the search.", "log", show=False),
    A("log.streams", "o", "cycle_streams", "Streams", "Show stdout and stderr, stdout only, or stderr only.", "log"),
    A("log.timestamps", "t", "toggle_timestamps", "Times", "Show or hide each line's time.", "log", show=False),
    A("log.wrap", "w", "toggle_wrap", "Wrap", "Wrap long lines, or scroll sideways (h, l).", "log"),
    A("log.error", "e", "next_error", "Error", "Jump to the next line that looks like an error.", "log"),
    A("log.left", "h", "scroll_left", "Left", "Scroll left.", "log", show=False),
    A("log.right", "l", "scroll_right", "Right", "Scroll right.", "log", show=False),
    A("log.down", "j", "scroll_down", "Down", "Scroll down a line.", "log", show=False),
    A("log.up", "k", "scroll_up", "Up", "Scroll up a line.", "log", show=False),
    A("log.page_down", "ctrl+d,space", "page_down", "Page down", "Scroll down a page.", "log", show=False),
    A("log.page_up", "ctrl+u,b", "page_up", "Page up", "Scroll up a page.", "log", show=False),
    # develop server view
    A("devserver.back", "escape", "back", "Back", "Go back to the dashboard.", "devserver"),
    A("devserver.start", "s", "start", "Start", "Start the develop server.", "devserver", writes=True),
    A(
        "devserver.stop",
        "x",
        "stop",
        "Stop",
        "Stop the develop server (asks first).",
        "devserver",
        writes=True,
        confirm=True,
    ),
    A(
        "devserver.sync",
        "u",
        "sync_now",
        "Sync now",
        "Sync this directory to the develop server now.",
        "devserver",
        writes=True,
    ),
    A(
        "devserver.forward",
        "f",
        "forward",
        "Forward",
        "Forward the selected port to this machine (127.0.0.1, the same number when free); again: stop.",
        "devserver",
        writes=True,
    ),
    A(
        "devserver.shell",
        "o",
        "shell",
        "Shell",
        "Open a shell in the develop server; exit it to come back.",
        "devserver",
        writes=True,
    ),
    A(
        "devserver.refresh",
        "r",
        "refresh",
        "Refresh",
        "Reload the server's state, git status and sync status.",
        "devserver",
        show=False,
    ),
)
BY_ID: dict[str, ActionSpec] = {spec.id: spec for spec in ACTIONS}


def action_name(spec: ActionSpec) -> str:
    """The method part of ``spec.action``: ``screen.cancel_run`` → ``cancel_run``."""
    return spec.action.split("(")[0].rsplit(".", 1)[-1]


WRITING: frozenset[str] = frozenset(action_name(spec) for spec in ACTIONS if spec.writes)
"""Action names that launch or change something (hidden and refused in --read-only)."""
assert not WRITING & {action_name(spec) for spec in ACTIONS if not spec.writes}, "an action name is both"


def bindings(scope: str) -> list[Binding]:
    """The Textual bindings of a scope, each carrying its action id (what a keymap overrides)."""
    return [
        Binding(spec.keys, spec.action, spec.title, show=spec.show, id=spec.id, tooltip=spec.help)
        for spec in ACTIONS
        if spec.scope == scope
    ]


def in_scope(scope: str) -> list[ActionSpec]:
    return [spec for spec in ACTIONS if spec.scope == scope]
