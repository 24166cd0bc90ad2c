"""The develop server view's sync state: last sync, pending changes, conflicts."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.cells import ago, theme_palette
from tui.sync_status import SyncStatus


class SyncPanel(Static):
    """The local directory's sync with this develop server."""

    DEFAULT_CSS = """
    SyncPanel { height: auto; padding: 0 1; border: round $primary 40%; border-title-color: $text; }
    """

    status: reactive[SyncStatus | None] = reactive(None, layout=True)
    """The sync state of :attr:`directory` (None while unknown)."""
    directory: reactive[str] = reactive("")
    """The local directory synced to this server, if the current one belongs to its project."""
    problem: reactive[str] = reactive("")
    """Why there is nothing to show (another project's directory)."""

    def on_mount(self) -> None:
        self.border_title = "Sync"

    def render(self) -> Table | Text:
        if self.problem:
            return Text(self.problem, style="dim")
        status = self.status
        if status is None:
            return Text("Loading…", style="dim")
        colours = theme_palette(self.app)
        look = {"synced": "$success", "pending": "$warning", "conflicts": "$error", "error": "$error"}
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.add_row("directory", Text(self.directory or "-"))
        grid.add_row("state", Text(status.state, style=colours.get(look.get(status.state, ""), "")))
        grid.add_row("last sync", Text(ago(status.last_sync_at.isoformat()) if status.last_sync_at else "-"))
        grid.add_row("pending", Text("-" if status.pending_changes is None else f"{status.pending_changes} change(s)"))
        grid.add_row("conflicts", Text("-" if status.conflicts is None else str(status.conflicts)))
        grid.add_row("", Text(status.detail, style="dim"))
        return grid
