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
        Binding("1", "show_tab('projects')", "Projects"),
        Binding("2", "show_tab('users')", "Users"),
        Binding("3", "show_tab('events')", "Events"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, profile: Profile, *, read_only: bool = False) -> None:
        super().__init__()
        self.profile = profile
        self.read_only = read_only
        self.client = AsyncControlClient(profile.url, profile.token)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="projects"):
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
        self.query_one("#projects-table", DataTable).add_columns("name", "owner", "description", "created")
        self.query_one("#users-table", DataTable).add_columns("name", "role", "email", "disabled")
        self.follow_events()

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_refresh(self) -> None:
        self.reload()

    def action_help(self) -> None:
        self.action_show_help_panel()

    @work(exclusive=True, group="reload")
    async def reload(self) -> None:
        """Fetch the tables' contents; called on connect and when events say they changed."""
        projects, users = await asyncio.gather(self.client.list_projects(limit=500), self.client.list_users(limit=500))
        self._fill("#projects-table", projects["items"], ("name", "owner", "description", "created_at"))
        self._fill("#users-table", users["items"], ("name", "role", "email", "disabled"))

    def _fill(self, selector: str, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
        table = self.query_one(selector, DataTable)
        table.clear()
        for row in rows:
            table.add_row(*(_cell(row.get(k)) for k in keys), key=str(row["id"]))

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
                    if event.event.split(".")[0] in ("project", "user"):
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
