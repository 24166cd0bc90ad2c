"""The develop server view's git state: branch, HEAD and the files that differ from it."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.cells import theme_palette

MAX_FILES = 30
STATUS_MARK = {
    "modified": "M",
    "added": "A",
    "deleted": "D",
    "renamed": "R",
    "untracked": "?",
    "conflicted": "U",
    "typechange": "T",
    "unreadable": "!",
}


class GitPanel(Static):
    """What ``GET /git/status`` on the develop server says about its workspace."""

    DEFAULT_CSS = """
    GitPanel { height: auto; padding: 0 1; border: round $primary 40%; border-title-color: $text; }
    """

    status: reactive[dict[str, Any] | None] = reactive(None, layout=True)
    """The git status (None while unknown)."""
    problem: reactive[str] = reactive("")
    """Why the status is not available (server not running, gateway error)."""

    def on_mount(self) -> None:
        self.border_title = "Git"

    def render(self) -> Table | Text:
        if self.problem:
            return Text(self.problem, style="dim")
        status = self.status
        if status is None:
            return Text("Loading…", style="dim")
        if not status.get("initialized"):
            return Text("The workspace is not a git repository yet (`yard sync` sends your git state).", style="dim")
        colours = theme_palette(self.app)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        branch = "(detached)" if status.get("detached") else str(status.get("branch") or "-")
        grid.add_row("branch", Text(branch))
        head = status.get("head")
        grid.add_row("HEAD", Text(str(head)[:12] if head else "(no commits)"))
        files = status.get("files") or []
        changed = sorted({str(f["path"]) for f in files})
        grid.add_row(
            "dirty",
            Text(f"{len(changed)} file(s)", style=colours["$warning"] if changed else colours["$success"]),
        )
        for entry in files[:MAX_FILES]:
            mark = STATUS_MARK.get(str(entry.get("status")), "·")
            staged = " (staged)" if entry.get("staged") else ""
            style = colours["$error"] if entry.get("status") == "conflicted" else ""
            grid.add_row("", Text(f"{mark} {entry['path']}{staged}", style=style))
        if len(files) > MAX_FILES:
            grid.add_row("", Text(f"… and {len(files) - MAX_FILES} more", style="dim"))
        return grid
