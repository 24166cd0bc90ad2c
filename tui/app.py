"""The full-screen terminal UI (`yard` with no arguments).

The app talks only to the control API through :class:`control.client.AsyncControlClient`.
Tables are reloaded when the events stream says something changed; the stream reconnects by
itself with back-off and the status bar says when it is down.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, RichLog, TabbedContent, TabPane

from control.client import AsyncControlClient, DevyardError
from control.profiles import Profile, resolve
from tui.screens.run_log import RunLogScreen
from tui.widgets.connection_bar import ConnectionBar

RECONNECT_MAX_S = 10.0


class DevyardApp(App[None]):
    """Dashboard over one control API."""

    TITLE = "devyard"
    CSS = """
    TabbedContent { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh"),
        Binding("1", "show_tab('runs')", "Runs"),
        Binding("2", "show_tab('schedules')", "Schedules"),
        Binding("3", "show_tab('agents')", "Agents"),
        Binding("4", "show_tab('projects')", "Projects"),
        Binding("5", "show_tab('users')", "Users"),
        Binding("6", "show_tab('events')", "Events"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, profile: Profile, *, read_only: bool = False) -> None:
        super().__init__()
        self.profile = profile
        self.read_only = read_only
        self.client = AsyncControlClient(profile.url, profile.token)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="runs"):
            with TabPane("Runs", id="runs"):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Schedules", id="schedules"):
                yield DataTable(id="schedules-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Agents", id="agents"):
                yield DataTable(id="agents-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Projects", id="projects"):
                yield DataTable(id="projects-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Users", id="users"):
                yield DataTable(id="users-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Events", id="events"):
                yield RichLog(id="events-log", max_lines=2000, wrap=False, markup=False)
        yield ConnectionBar()
        yield Footer()

    def on_mount(self) -> None:
        bar = self.query_one(ConnectionBar)
        bar.profile, bar.url, bar.read_only = self.profile.name, self.profile.url, self.read_only
        self.query_one("#runs-table", DataTable).add_columns(
            "id", "state", "project", "trigger", "exit", "secs", "queued", "command"
        )
        self.query_one("#schedules-table", DataTable).add_columns(
            "name", "project", "cron", "tz", "enabled", "next", "last", "command"
        )
        self.query_one("#agents-table", DataTable).add_columns("name", "queue", "substrate", "host", "last heartbeat")
        self.query_one("#projects-table", DataTable).add_columns("name", "owner", "description", "created")
        self.query_one("#users-table", DataTable).add_columns("name", "role", "email", "disabled")
        self.follow_events()
        self._focus_tab("runs")

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab(tab)

    def _focus_tab(self, tab: str) -> None:
        # Keys like enter and j/k act on the table of the visible tab, not on the tab strip.
        pane = self.query_one(f"#{tab}", TabPane)
        for widget in pane.query("DataTable, RichLog"):
            widget.focus()
            break

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        if message.pane.id:
            self._focus_tab(message.pane.id)

    def action_refresh(self) -> None:
        self.reload()

    def action_help(self) -> None:
        self.action_show_help_panel()

    @work(exclusive=True, group="reload")
    async def reload(self) -> None:
        """Fetch the tables' contents; called on connect and when events say they changed."""
        runs, schedules, agents, projects, users = await asyncio.gather(
            self.client.list_runs(limit=200),
            self.client.list_schedules(),
            self.client.list_agents(),
            self.client.list_projects(limit=500),
            self.client.list_users(limit=500),
        )
        for run in runs["items"]:
            run["command"] = " ".join(run["command"])
        for schedule in schedules:
            schedule["command"] = " ".join(schedule["command"])
            last = schedule.get("last_tick")
            schedule["last"] = f"{last['state']} {last.get('run_state') or ''}".strip() if last else None
        self._fill(
            "#runs-table",
            runs["items"],
            ("id", "state", "project", "trigger", "exit_code", "duration_s", "queued_at", "command"),
        )
        self._fill(
            "#schedules-table",
            schedules,
            ("name", "project", "cron", "timezone", "enabled", "next_fire_at", "last", "command"),
        )
        self._fill("#agents-table", agents, ("name", "queue", "substrate", "hostname", "last_heartbeat_at"))
        self._fill("#projects-table", projects["items"], ("name", "owner", "description", "created_at"))
        self._fill("#users-table", users["items"], ("name", "role", "email", "disabled"))

    def _fill(self, selector: str, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
        table = self.query_one(selector, DataTable)
        selected = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*(_cell(row.get(k)) for k in keys), key=str(row["id"]))
        if rows:
            table.move_cursor(row=min(selected, len(rows) - 1))

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        """`enter` on a run opens its live log."""
        if message.data_table.id == "runs-table" and message.row_key.value is not None:
            self.push_screen(RunLogScreen(self.client, int(message.row_key.value), self.read_only))

    @work(exclusive=True, group="events")
    async def follow_events(self) -> None:
        """Keep the events stream open for the life of the app, reconnecting with back-off."""
        bar = self.query_one(ConnectionBar)
        log = self.query_one("#events-log", RichLog)
        delay = 0.5
        last_id: int | None = None
        while True:
            try:
                me = await self.client.me()
                bar.user = f"{me['name']} ({me['role']})"
                self.reload()
                bar.state = "live"
                delay = 0.5
                async for event in self.client.events(after=last_id):
                    body = event.json() or {}
                    if event.id is not None:
                        last_id = int(event.id)
                    log.write(f"{body.get('at', '')[:19]}  {event.event:<24} {body.get('data', {})}")
                    if event.event.split(".")[0] in ("project", "user", "run", "schedule", "agent"):
                        self.reload()
                bar.state = "stream closed; reconnecting"
            except DevyardError as exc:
                bar.state = str(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text[:19].replace("T", " ") if len(text) > 19 and text[4:5] == "-" and "T" in text else text


def run_app(profile_name: str | None, *, read_only: bool = False) -> None:
    """Resolve the profile and run the app until the user quits."""
    DevyardApp(resolve(profile_name), read_only=read_only).run()
