"""The full-screen terminal UI (`yard` with no arguments).

The app talks only to the control API, through :class:`control.client.AsyncControlClient`. It
follows the events stream for its whole life (``tui.live``: reconnects by itself, and the status
bar says when it is down) and hands the events to the screens in batches through
:attr:`DevyardApp.feed_signal`. Screens: the dashboard (the default screen), a run, a develop
server; dialogs for new runs, confirmations, artifacts, help and ``:`` jumps. Every action is a
named entry of ``tui.actions`` with keys the user can rebind in ``tui.toml``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import BindingType
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.signal import Signal
from textual.theme import BUILTIN_THEMES

from control.client import AsyncControlClient
from control.client.forward import Forwarder
from control.profiles import Profile, resolve
from control.wire.devservers import DevServerOut
from control.wire.resources import Me
from control.wire.runs import RunOut
from tui import operations
from tui.actions import bindings
from tui.cli.project_name import default_project
from tui.commands import ActionCommands
from tui.config import TuiConfig, TuiConfigProblem, load
from tui.live import Change, Connected, Disconnected, follow_events
from tui.screens.base import YardScreen
from tui.screens.dashboard import TABS, DashboardScreen, Tables, fetch_tables
from tui.sync_status import SyncStatus, local_status

# The other screens are imported when first opened: the dashboard paints sooner.

SYNC_POLL_S = 5.0
JUMP_ALIASES = {
    "runs": "runs",
    "run": "runs",
    "r": "runs",
    "dev": "devservers",
    "devservers": "devservers",
    "d": "devservers",
    "jobs": "jobs",
    "job": "jobs",
    "j": "jobs",
    "schedules": "schedules",
    "schedule": "schedules",
    "s": "schedules",
    "agents": "agents",
    "agent": "agents",
    "a": "agents",
}


@dataclass(frozen=True)
class StatusInfo:
    """What every status bar shows."""

    connection: str = "connecting"
    user: str = ""
    project: str = ""
    sync: SyncStatus | None = None


class EventsArrived(Message):
    """Events are waiting in the app's queue (replaceable: one drain handles them all)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsArrived)


class DevyardApp(App[None]):
    """The dashboard and its views over one control API."""

    TITLE = "devyard"
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("app")]
    COMMANDS = App.COMMANDS | {ActionCommands}

    def __init__(self, profile: Profile, *, read_only: bool = False, config: TuiConfig | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.read_only = read_only
        self.config = config or TuiConfig()
        # The profile's trust: its pinned certificate or CA file (plain HTTP builds no TLS context);
        # a single sign-on profile's access token is renewed by the client when it expires.
        self.client = AsyncControlClient(profile.url, profile.token, trust=profile.trust, profile=profile)
        self.me: Me | None = None
        """The token's user, once the API said who it is."""
        self.local_project = default_project()
        """The project of the directory yard was started in."""
        self.status_info = StatusInfo(project=self.local_project)
        self.feed_signal: Signal[list[Change]] = Signal(self, "feed")
        """Batches of events (and a ``connected`` marker after a reconnect) for the screens."""
        self.status_signal: Signal[StatusInfo] = Signal(self, "status")
        """The status bar's facts changed."""
        self.started_at = time.perf_counter()
        self.first_paint_at: float | None = None
        """When the dashboard first showed data (for the start-up benchmark)."""
        self.first_load_failed = False
        """The dashboard's first load failed (the API was down): reload once the stream is up."""
        self.forwarders: dict[int, Forwarder] = {}
        """Ports forwarded from the develop server view, by server id; they end with the app."""
        self._pending: list[Change] = []
        self._first_load: asyncio.Future[Tables] | None = None
        self.theme = self.config.theme
        if self.config.keymap:
            self.set_keymap(self.config.keymap)

    def get_default_screen(self) -> Screen[Any]:
        return DashboardScreen()

    def on_load(self) -> None:
        # Ask for the dashboard's data while Textual is still building the screen.
        self._first_load = asyncio.ensure_future(fetch_tables(self.client, {}))

    def take_first_load(self) -> asyncio.Future[Tables] | None:
        """The dashboard's first data, requested at start-up (once; None afterwards)."""
        pending, self._first_load = self._first_load, None
        return pending

    def on_mount(self) -> None:
        self.follow_events()

    async def on_unmount(self) -> None:
        for forwarder in self.forwarders.values():
            await forwarder.close()
        await self.client.aclose()

    # ------------------------------------------------------------------ live state

    def set_status(self, **changes: Any) -> None:
        self.status_info = replace(self.status_info, **changes)
        self.status_signal.publish(self.status_info)

    @work(exclusive=True, group="events")
    async def follow_events(self) -> None:
        """Keep the events stream open for the life of the app."""
        first = True
        async for item in follow_events(self.client):
            if isinstance(item, Connected):
                self.me = item.user
                self.set_status(connection="live", user=f"{item.user.name} ({item.user.role})")
                if not first or self.first_load_failed:
                    # Events may have been missed while down: every screen reloads what it shows.
                    self._queue(Change(None, "connected", {}))
                first = False
            elif isinstance(item, Disconnected):
                self.set_status(connection=f"{item.reason} Retrying in {item.retry_in:.0f} s.")
            else:
                self._queue(item)

    def _queue(self, change: Change) -> None:
        self._pending.append(change)
        self.post_message(EventsArrived())

    def on_events_arrived(self, _: EventsArrived) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self.feed_signal.publish(batch)

    @work(exclusive=True, group="sync-status", thread=True)
    def check_sync(self) -> None:
        """The current directory's sync state, for the status bar (every few seconds)."""
        status = local_status(Path.cwd())
        if status != self.status_info.sync:
            self.call_from_thread(self.set_status, sync=status)

    def first_paint_done(self) -> None:
        if self.first_paint_at is None:
            self.first_paint_at = time.perf_counter()
            # Import the other views while the user reads the dashboard, not when they press enter;
            # the sync state (its first read imports the sync package) waits until then too.
            self.set_timer(0.05, self._warm_up)
            self.set_timer(0.1, self.check_sync)
            self.set_interval(SYNC_POLL_S, self.check_sync)

    def _warm_up(self) -> None:
        import tui.screens.devserver_view
        import tui.screens.help
        import tui.screens.new_run
        import tui.screens.run_view  # noqa: F401

    # ------------------------------------------------------------------ navigation

    def action_scopes(self, screen: Screen[Any]) -> list[tuple[str, DOMNode]]:
        """The action scopes live on ``screen`` and the node each one's actions run on."""
        scopes: list[tuple[str, DOMNode]] = [("app", self)]
        if isinstance(screen, YardScreen):
            scopes += screen.action_scopes()
        return scopes

    def open_run(self, run_id: int, replace: bool = False) -> None:
        from tui.screens.run_view import RunScreen

        screen = RunScreen(self.client, run_id)
        if replace:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def open_devserver(self, server: DevServerOut) -> None:
        from tui.screens.devserver_view import DevServerScreen

        self.push_screen(DevServerScreen(server))

    def show_artifacts(self, run_id: int) -> None:
        from tui.screens.artifacts import ArtifactsScreen

        self.push_screen(ArtifactsScreen(run_id))

    def new_run(self, project: str = "") -> None:
        if not operations.allowed(self, "dashboard.new_run"):
            return
        from tui.screens.new_run import NewRunScreen

        def opened(run: RunOut | None) -> None:
            if run is not None:
                self.notify(f"Started run {run.id}.")
                self.open_run(run.id)

        self.push_screen(NewRunScreen(project=project), opened)

    def start_devserver(self, project: str = "") -> None:
        if not operations.allowed(self, "devservers.start"):
            return
        from tui.screens.start_devserver import StartDevServerScreen

        def opened(server: DevServerOut | None) -> None:
            if server is not None:
                self.notify(f"Develop server {server.id} for {server.project} is {server.state}.")
                self.open_devserver(server)

        self.push_screen(StartDevServerScreen(project=project), opened)

    def dashboard(self) -> DashboardScreen:
        """Go back to the dashboard (closing every view above it) and return it."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        screen = self.screen_stack[0]
        assert isinstance(screen, DashboardScreen)
        return screen

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_jump(self) -> None:
        from tui.screens.jump import JumpScreen

        self.push_screen(JumpScreen(), self.jump)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def jump(self, target: str | None) -> None:
        """Go where a ``:`` command says."""
        if not target:
            return
        words = target.split()
        head = words[0].lower()
        if head in ("q", "quit", "exit"):
            self.exit()
        elif head in ("help", "h", "?"):
            self.action_help()
        elif target.lower() == "new run":
            self.new_run(self.local_project)
        elif head.isdigit() or (head in ("run", "r") and len(words) == 2 and words[1].isdigit()):
            self.open_run(int(words[-1]))
        elif head in ("dev", "d", "devserver") and len(words) == 2:
            self._jump_devserver(words[1])
        elif head in JUMP_ALIASES and len(words) == 1:
            tab = JUMP_ALIASES[head]
            assert tab in TABS
            self.dashboard().action_show_tab(tab)
        else:
            self.notify(
                f"Unknown view {target!r}; try runs, dev, jobs, schedules, agents, run 42 or dev PROJECT.",
                severity="warning",
            )

    @work(exclusive=True, group="jump")
    async def _jump_devserver(self, project: str) -> None:
        servers = await self.client.list_devservers(project=project)
        if servers:
            self.open_devserver(servers[0])
        else:
            self.notify(f"You have no develop server for {project}; press s on the Dev servers tab to start one.")


def run_app(profile_name: str | None, *, read_only: bool = False) -> None:
    """Resolve the profile, read tui.toml, and run the app until the user quits."""
    try:
        config = load(available_themes=frozenset(BUILTIN_THEMES))
    except TuiConfigProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    DevyardApp(resolve(profile_name), read_only=read_only, config=config).run()
