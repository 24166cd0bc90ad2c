"""How the facts of runs, develop servers and schedules are shown: icons, ages, durations.

Everything relative to "now" asks :data:`clock`, so snapshot tests can freeze time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from control.wire.runs import RunOut

clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
"""What time it is; tests replace it to get the same screen on every run."""


def now() -> datetime:
    """The current time (through :data:`clock`)."""
    return clock()


RUN_STATES: dict[str, tuple[str, str]] = {
    "queued": ("◷", "$text-muted"),
    "starting": ("◌", "$accent"),
    "running": ("▶", "$accent"),
    "succeeded": ("✔", "$success"),
    "failed": ("✘", "$error"),
    "cancelled": ("⊘", "$warning"),
    "timed_out": ("⌛", "$error"),
    "lost": ("?", "$error"),
}
FINISHED = frozenset({"succeeded", "failed", "cancelled", "timed_out", "lost"})
STEP_STATES: dict[str, tuple[str, str]] = {
    **RUN_STATES,
    "pending": ("◷", "$text-muted"),
    "skipped": ("–", "$text-muted"),
}
DEVSERVER_STATES: dict[str, tuple[str, str]] = {
    "pending": ("◷", "$text-muted"),
    "starting": ("◌", "$accent"),
    "running": ("●", "$success"),
    "stopping": ("◌", "$warning"),
    "stopped": ("○", "$text-muted"),
    "failed": ("✘", "$error"),
}
Palette = dict[str, str]
DEFAULT_PALETTE: Palette = {
    "$text-muted": "dim",
    "$accent": "dodger_blue1",
    "$success": "green3",
    "$error": "red1",
    "$warning": "orange1",
}


def palette(variables: Mapping[str, str]) -> Palette:
    """Rich colours for the state colours, from the current theme's CSS variables
    (``App.get_css_variables()``), so icons follow the light and the dark theme."""
    return {
        "$text-muted": "dim",
        "$accent": variables.get("text-primary", DEFAULT_PALETTE["$accent"]),
        "$success": variables.get("text-success", DEFAULT_PALETTE["$success"]),
        "$error": variables.get("text-error", DEFAULT_PALETTE["$error"]),
        "$warning": variables.get("text-warning", DEFAULT_PALETTE["$warning"]),
    }


def parse_time(value: object) -> datetime | None:
    """An API timestamp (a datetime, or ISO 8601 text; UTC when it names no zone) as an aware
    datetime; None stays None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def span(seconds: float | None) -> str:
    """A duration the way people say it: ``850ms``, ``42s``, ``3m 05s``, ``2h 10m``, ``3d 4h``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def ago(value: object) -> str:
    """``12s ago``, ``3m ago``; ``-`` when there is no time."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = (clock() - moment).total_seconds()
    if seconds < 1:
        return "just now"
    return f"{_coarse(seconds)} ago"


def until(value: object) -> str:
    """``in 4m``, ``in 2h``; ``due`` once the moment has passed; ``-`` without a time."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = (moment - clock()).total_seconds()
    return "due" if seconds <= 0 else f"in {_coarse(seconds)}"


def _coarse(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def stamp(value: object) -> str:
    """A timestamp as ``2026-11-22 05:56:53`` in UTC; ``-`` without one."""
    moment = parse_time(value)
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_duration(run: RunOut) -> float | None:
    """Seconds the run has taken: final once it finished, still growing while it runs."""
    if run.duration_s is not None and run.state in FINISHED:
        return run.duration_s
    started = parse_time(run.started_at)
    if started is None:
        return None
    finished = parse_time(run.finished_at) or clock()
    return max((finished - started).total_seconds(), 0.0)


_PALETTES: dict[str, Palette] = {}


def theme_palette(app: Any) -> Palette:
    """:func:`palette` of ``app``'s current theme, computed once per theme (it is not cheap)."""
    name = str(app.theme)
    if name not in _PALETTES:
        _PALETTES[name] = palette(app.get_css_variables())
    return _PALETTES[name]


def state_cell(state: str, colours: Palette = DEFAULT_PALETTE, table: dict[str, tuple[str, str]] = RUN_STATES) -> Text:
    """The state with its icon, coloured, for a table cell."""
    icon, colour = table.get(state, ("·", "$text-muted"))
    return Text(f"{icon} {state}", style=colours[colour])


def command_line(command: object) -> str:
    """A command (a list of arguments) as one line, quoting arguments that need it."""
    if not isinstance(command, list):
        return str(command or "")
    import shlex

    return shlex.join(str(part) for part in command)


def run_command(run: RunOut) -> str:
    """What a run runs, on one line: its command, or the names of its steps (``3 steps: deps,
    build, test``) for a run of several."""
    if len(run.steps) > 1:
        return f"{len(run.steps)} steps: " + ", ".join(step.name for step in run.steps)
    return command_line(run.command)


def exit_cell(code: object, colours: Palette = DEFAULT_PALETTE) -> Text:
    """An exit code, green when 0 and red otherwise."""
    if code is None:
        return Text("-", style="dim")
    return Text(str(code), style=colours["$success"] if code == 0 else colours["$error"])
