"""The develop server view's facts: state, endpoint, workspace, uptime, activity, health."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from control.wire.devservers import DevServerOut
from tui.cells import DEVSERVER_STATES, ago, stamp, state_cell, theme_palette
from tui.widgets.devservers_table import uptime


class DevServerFacts(Static):
    """A two-column list of the server's facts."""

    DEFAULT_CSS = """
    DevServerFacts { height: auto; padding: 0 1; border: round $primary 40%; border-title-color: $text; }
    """

    server: reactive[DevServerOut | None] = reactive(None, layout=True)
    """The server as the API returns it."""
    endpoint: reactive[str] = reactive("")
    """Where clients reach it: the API's gateway URL for this server."""
    health: reactive[dict[str, Any] | None] = reactive(None, layout=True)
    """The server's own /health answer (None when not running or not asked yet)."""

    def on_mount(self) -> None:
        self.border_title = "Develop server"

    def render(self) -> Table | Text:
        server = self.server
        if server is None:
            return Text("Loading…", style="dim")
        colours = theme_palette(self.app)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        project = str(server.project)
        if server.environment:
            project += f"/{server.environment}"
        grid.add_row("state", state_cell(server.state, colours, DEVSERVER_STATES))
        grid.add_row("project", Text(f"{project}   (server {server.id}, user {server.user})"))
        if server.stale_environment:
            grid.add_row(
                "environment",
                Text(
                    f"{server.environment} changed after the server started: it has the old values;"
                    " stop (x) and start (s) it, or `yard dev restart`, to get the new ones",
                    style=colours["$warning"],
                ),
            )
        grid.add_row("endpoint", Text(self.endpoint or "-"))
        grid.add_row("workspace", Text(str(server.workspace or "-")))
        grid.add_row("substrate", Text(str(server.substrate or "-")))
        grid.add_row("uptime", Text(uptime(server).plain))
        grid.add_row("started", Text(stamp(server.started_at)))
        grid.add_row("last activity", Text(ago(server.last_activity_at)))
        idle = int(server.idle_timeout_s or 0)
        grid.add_row("idle stop", Text(f"after {idle // 60} min without activity" if idle else "-"))
        grid.add_row("restarts", Text(str(server.restart_count)))
        health = self.health
        if health is not None:
            ok = bool(health.get("ok"))
            detail = (
                f"ok · pid {health.get('pid')} · version {health.get('version')}" if ok else str(health.get("error"))
            )
            grid.add_row("health", Text(detail, style=colours["$success"] if ok else colours["$error"]))
        if server.error:
            grid.add_row("error", Text(str(server.error), style=colours["$error"]))
        return grid
