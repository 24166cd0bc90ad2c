"""The develop server view: its facts, its workspace's git state, this directory's sync, and its
ports (forwarded here with a key)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.widgets import Footer

from control.client import DevyardError
from control.client.forward import Forwarder, LocalPortTaken, PortSpec
from control.wire.devservers import DevServerOut
from control.wire.events import resource_of
from tui import operations
from tui.actions import bindings
from tui.live import Change
from tui.screens.base import YardScreen
from tui.sync_status import local_status, sync_now, tree_root
from tui.widgets.devserver_facts import DevServerFacts
from tui.widgets.git_panel import GitPanel
from tui.widgets.ports_table import PortsTable
from tui.widgets.status_bar import StatusBar
from tui.widgets.sync_panel import SyncPanel

REFRESH_S = 5.0


class DevServerScreen(YardScreen[None]):
    """One develop server; refreshed by its events and every few seconds."""

    DEFAULT_CSS = """
    DevServerScreen VerticalScroll { height: 1fr; }
    DevServerScreen Horizontal { height: auto; }
    DevServerScreen Horizontal > Vertical { width: 1fr; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("devserver")]

    def __init__(self, server: DevServerOut) -> None:
        super().__init__()
        self.server = server
        """The server as last seen."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield DevServerFacts()
            with Horizontal():
                with Vertical():
                    yield GitPanel()
                with Vertical():
                    yield SyncPanel()
            yield PortsTable()
        yield StatusBar()
        yield Footer()

    def action_scopes(self) -> list[tuple[str, DOMNode]]:
        return [("devserver", self)]

    def on_mount(self) -> None:
        self.query_one(DevServerFacts).server = self.server
        self.query_one(DevServerFacts).endpoint = f"{self.yard.client.url}/api/v1/devservers/{self.server.id}/"
        self.yard.feed_signal.subscribe(self, self.on_feed)
        self.set_interval(REFRESH_S, self.refresh_all)
        self.set_interval(1.0, self.query_one(DevServerFacts).refresh)
        self.refresh_all()

    @property
    def project(self) -> str:
        return self.server.project

    @work(exclusive=True, group="devserver-refresh")
    async def refresh_all(self) -> None:
        """The server, its health and git state, and the local sync state, all at once."""
        client = self.yard.client
        server_id = self.server.id
        try:
            self.server = await client.get_devserver(server_id)
        except DevyardError as exc:
            self.notify(str(exc), severity="error")
            return
        facts, git = self.query_one(DevServerFacts), self.query_one(GitPanel)
        facts.server = self.server
        sync_task = asyncio.create_task(self._sync_status())
        if self.server.state == "running":
            health, status = await asyncio.gather(
                self._gateway(server_id, "/health"), self._gateway(server_id, "/git/status"), return_exceptions=False
            )
            facts.health = health
            await self._ports(server_id)
            if "error" in status and "initialized" not in status:
                git.problem = f"Git status unavailable: {status['error']}"
            else:
                git.problem, git.status = "", status
        else:
            facts.health = None
            git.problem = f"The develop server is {self.server.state}; start it (s) to see its git state."
        await sync_task

    async def _ports(self, server_id: int) -> None:
        table = self.query_one(PortsTable)
        try:
            listening = await self.yard.client.list_ports(server_id)
        except DevyardError as exc:
            table.border_subtitle = str(exc)
            return
        forwarder = self.yard.forwarders.get(server_id)
        forwarded = {remote: lst.spec.local for remote, lst in forwarder.listeners.items()} if forwarder else {}
        table.show(listening, forwarded)

    async def _gateway(self, server_id: int, path: str) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = await self.yard.client.devserver_call(server_id, "GET", path)
        except DevyardError as exc:
            return {"ok": False, "error": str(exc)}
        return answer

    async def _sync_status(self) -> None:
        panel = self.query_one(SyncPanel)
        here = tree_root(Path.cwd())
        if self.yard.local_project != self.project:
            panel.problem = (
                f"This directory ({here}) is project {self.yard.local_project}, not {self.project}; "
                "run yard from the project's directory to see and sync it."
            )
            return
        panel.directory = str(here)
        panel.problem = ""
        panel.status = await asyncio.to_thread(local_status, here)

    def on_feed(self, changes: list[Change]) -> None:
        for change in changes:
            if change.type == "devserver.updated" and change.data.get("id") == self.server.id:
                self.server = resource_of(DevServerOut, change.data, self.server) or self.server
                self.query_one(DevServerFacts).server = self.server
                self.refresh_all()
            elif change.type == "connected":
                self.refresh_all()

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh(self) -> None:
        self.refresh_all()

    @work(group="devserver-start")
    async def action_start(self) -> None:
        if not operations.allowed(self.yard, "devserver.start"):
            return
        try:
            self.server = await self.yard.client.start_devserver(self.project, environment=self.server.environment)
        except DevyardError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"Starting the develop server for {self.project}…")
        self.query_one(DevServerFacts).server = self.server

    def action_stop(self) -> None:
        operations.stop_devserver(self.yard, self.server, "devserver.stop")

    @work(group="devserver-forward")
    async def action_forward(self) -> None:
        """Forward the selected port here (the same local number when free), or stop forwarding it."""
        if not operations.allowed(self.yard, "devserver.forward"):
            return
        port = self.query_one(PortsTable).selected_port()
        if port is None:
            self.notify("Nothing listens in the develop server yet; start a program there first.", severity="warning")
            return
        forwarder = self.yard.forwarders.get(self.server.id)
        if forwarder is None:
            client = self.yard.client
            forwarder = Forwarder(
                client.websocket_url,
                client.auth_headers,
                self.server.id,
                notify=lambda event: self.yard.notify(event.message, severity="warning"),
                ssl_context=client.ssl_context,
            )
            self.yard.forwarders[self.server.id] = forwarder
        if port in forwarder.listeners:
            await forwarder.stop(port)
            self.notify(f"Port {port} is no longer forwarded.")
        else:
            try:
                bound = await forwarder.listen(PortSpec(port, port))
            except LocalPortTaken:
                bound = await forwarder.listen(PortSpec(0, port))
            self.notify(f"Forwarding 127.0.0.1:{bound.local} -> port {port} (until yard exits; f again stops).")
        await self._ports(self.server.id)

    def action_shell(self) -> None:
        operations.open_shell(self.yard, self.server, "devserver.shell")

    @work(exclusive=True, group="devserver-sync")
    async def action_sync_now(self) -> None:
        if not operations.allowed(self.yard, "devserver.sync"):
            return
        if self.yard.local_project != self.project:
            self.notify(
                f"This directory is project {self.yard.local_project}, not {self.project}; nothing to sync here.",
                severity="warning",
            )
            return
        root = tree_root(Path.cwd())
        self.notify(f"Syncing {root}…")
        try:
            sentence = await sync_now(root, self.project, self.yard.profile)
        except RuntimeError as exc:
            self.notify(f"Sync failed: {exc}", severity="error")
            return
        self.notify(sentence)
        await self._sync_status()
