"""A run's log, followed live: the screen `enter` opens on a run in the dashboard.

It replays the stored log and then follows new chunks over the API's SSE stream; `esc` goes
back. (The full run view with search, filters and a line-API log viewer is issue [7/7].)
"""

from __future__ import annotations

import base64
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static

from control.client import AsyncControlClient, DevyardError
from control.logformat import decode


class RunLogScreen(Screen[None]):
    """Header facts and the live log of one run."""

    DEFAULT_CSS = """
    RunLogScreen #run-facts { height: auto; padding: 0 1; background: $panel; }
    RunLogScreen RichLog { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "cancel_run", "Cancel run"),
    ]

    def __init__(self, client: AsyncControlClient, run_id: int, read_only: bool = False) -> None:
        super().__init__()
        self.client = client
        self.run_id = run_id
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id}", id="run-facts")
        yield RichLog(id="run-log", max_lines=100_000, wrap=False, markup=False, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.follow()

    async def _facts(self) -> None:
        run = await self.client.get_run(self.run_id)
        exit_code = "" if run["exit_code"] is None else f"  exit {run['exit_code']}"
        self.query_one("#run-facts", Static).update(
            f"run {run['id']}  [b]{run['state']}[/b]{exit_code}  {run['project']}  {run['trigger']}  $ {' '.join(run['command'])}"
        )

    @work(exclusive=True, group="follow")
    async def follow(self) -> None:
        log = self.query_one("#run-log", RichLog)
        next_seq = 1
        try:
            await self._facts()
            async for event in self.client.follow_logs(self.run_id, from_seq=next_seq):
                if event.event == "chunk":
                    data = event.json()
                    for record in decode(base64.b64decode(data["data"])):
                        line = Text.from_ansi(record.text.decode("utf-8", "replace"))
                        if record.stream == "e":
                            line.stylize("red")
                        log.write(line)
                    next_seq = int(data["seq"]) + 1
                elif event.event in ("end", "error"):
                    await self._facts()
                    break
        except DevyardError as exc:
            self.notify(str(exc), severity="error")

    async def action_cancel_run(self) -> None:
        if self.read_only:
            self.notify("Read-only mode: nothing can be cancelled.", severity="warning")
            return
        try:
            await self.client.cancel_run(self.run_id)
            self.notify(f"Cancel requested for run {self.run_id}.")
        except DevyardError as exc:
            self.notify(str(exc), severity="error")
