"""The run view: the run's facts over its log, followed live while the run goes on."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.dom import DOMNode
from textual.widgets import Footer

from control.client import AsyncControlClient, DevyardError, NotFound
from control.wire.events import resource_of
from control.wire.runs import RunOut
from tui import operations
from tui.actions import bindings
from tui.cells import FINISHED
from tui.live import Change
from tui.run_log_source import Appended, Ended, Interrupted, RunLogSource
from tui.screens.base import YardScreen
from tui.widgets.log_status import LogStatus
from tui.widgets.log_view import LogView
from tui.widgets.prompt_bar import PromptBar
from tui.widgets.run_header import RunHeader
from tui.widgets.status_bar import StatusBar

HISTORY_ATTEMPTS = 4
PROMPTS = {
    "search": "search: text (smart case) — enter finds it, then n / N",
    "filter": "filter: show only lines containing… (smart case) — empty shows all",
}


class RunScreen(YardScreen[None]):
    """Header, log, the log's status line; `esc` goes back."""

    DEFAULT_CSS = """
    RunScreen LogView { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("run")]

    def __init__(self, client: AsyncControlClient, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: RunOut | None = None
        """The run as last seen (API or events)."""
        self.source = RunLogSource(client, run_id)
        self.loading_history = False
        # Ask for the run and its tail now, while the screen is still being built.
        self._opening = asyncio.ensure_future(asyncio.gather(client.get_run(run_id), self.source.open()))

    def compose(self) -> ComposeResult:
        yield RunHeader()
        yield LogView(self.source.model, id="run-log")
        yield PromptBar(id="run-prompt")
        yield LogStatus()
        yield StatusBar()
        yield Footer()

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    def action_scopes(self) -> list[tuple[str, DOMNode]]:
        return [("run", self), ("log", self.log_view)]

    def on_mount(self) -> None:
        self.log_view.focus()
        self.yard.feed_signal.subscribe(self, self.on_feed)
        self.set_interval(1.0, self._tick)
        self._status()
        self.load()

    def on_unmount(self) -> None:
        self._opening.cancel()  # closed before the answer came: nobody will read it

    # ------------------------------------------------------------------ loading

    @work(exclusive=True, group="run-load")
    async def load(self) -> None:
        header = self.query_one(RunHeader)
        try:
            run, _ = await self._opening
        except NotFound as exc:
            # Nothing to show, ever: say so and go back to where the user came from.
            header.note = str(exc)
            self.notify(str(exc), severity="error")
            if self.app.screen is self:
                self.dismiss(None)
            return
        except DevyardError as exc:
            header.note = str(exc)
            self.notify(str(exc), severity="error")
            return
        self.run = run
        header.run = run
        self.log_view.set_model(self.source.model)
        if not self.source.complete:
            self.loading_history = True
            self.load_history()
        if run.state not in FINISHED or self.source.last_seq < run.log_chunks:
            self.follow()
        self._status()

    @work(exclusive=True, group="run-history")
    async def load_history(self) -> None:
        """The lines before the tail, in the background; retried, since the scheduler may be
        compacting the run's chunks while they are read."""
        try:
            for attempt in range(HISTORY_ATTEMPTS):
                try:
                    shift = await self.source.load_history()
                    break
                except DevyardError as exc:
                    if attempt == HISTORY_ATTEMPTS - 1:
                        self.query_one(RunHeader).note = f"older lines could not be loaded: {exc}"
                        return
                    await asyncio.sleep(0.5 * 2**attempt)
        finally:
            self.loading_history = False
        self.log_view.set_model(self.source.model, shift)
        self._status()

    @work(exclusive=True, group="run-follow")
    async def follow(self) -> None:
        header = self.query_one(RunHeader)
        async for item in self.source.follow():
            if isinstance(item, Appended):
                # Also with no new line: the line being drawn may have grown.
                self.log_view.lines_appended()
                if header.note:
                    header.note = ""
            elif isinstance(item, Ended):
                header.note = ""
                await self._refresh_run()
                self.call_after_refresh(self._status)
            elif isinstance(item, Interrupted):
                header.note = item.reason

    async def _refresh_run(self) -> None:
        try:
            run = await self.yard.client.get_run(self.run_id)
        except DevyardError:
            return
        self.run = run
        self.query_one(RunHeader).run = run

    def on_feed(self, changes: list[Change]) -> None:
        for change in changes:
            if change.kind == "run" and change.data.get("id") == self.run_id:
                self.run = resource_of(RunOut, change.data, self.run) or self.run
                self.query_one(RunHeader).run = self.run
            elif change.type == "connected":
                self.run_worker(self._refresh_run(), group="run-refresh", exclusive=True)

    def _tick(self) -> None:
        if self.run and self.run.state in ("starting", "running"):
            self.query_one(RunHeader).refresh()

    # ------------------------------------------------------------------ the log's prompt and status

    @on(LogView.PromptRequested)
    def _prompt(self, event: LogView.PromptRequested) -> None:
        self.query_one(PromptBar).ask(event.kind, event.value, PROMPTS[event.kind])

    @on(PromptBar.Answered)
    def _answered(self, event: PromptBar.Answered) -> None:
        log = self.log_view
        if event.kind == "search":
            if event.value:
                log.search_for(event.value)
            else:
                log.search_text = ""
        else:
            log.filter_text = event.value

    @on(LogView.Changed)
    def _log_changed(self) -> None:
        self._status()

    def _status(self) -> None:
        ended = self.run is not None and self.run.state in FINISHED and not self._following()
        self.query_one(LogStatus).show(self.log_view, loading=self.loading_history, ended=ended)
        # The header counts the lines on screen once the whole log is here (the API's count,
        # updated only when the run's state changes, said 0 while 20 were shown).
        header = self.query_one(RunHeader)
        lines = len(self.log_view.model) if self.source.complete else None
        if header.lines != lines:
            header.lines = lines

    def _following(self) -> bool:
        return any(w.group == "run-follow" and w.is_running for w in self.workers)

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        if self.run is not None:
            operations.cancel_run(self.yard, self.run, "run.cancel")

    @work(group="run-rerun")
    async def action_rerun(self) -> None:
        if self.run is None:
            return
        created = await operations.rerun(self.yard, self.run, "run.rerun")
        if created is not None:
            self.yard.open_run(created.id, replace=True)

    def action_artifacts(self) -> None:
        self.yard.show_artifacts(self.run_id)

    # ------------------------------------------------------------------ steps

    def action_next_step(self) -> None:
        self._jump_step(+1)

    def action_previous_step(self) -> None:
        self._jump_step(-1)

    def action_failed_step(self) -> None:
        steps = self.run.steps if self.run else []
        failed = next((s for s in steps if s.state in ("failed", "timed_out")), None)
        if failed is None:
            self.notify("No step failed." if steps else "This run has no steps to jump to.")
            return
        self.go_to_step(failed.index + 1)

    def _jump_step(self, direction: int) -> None:
        starts = self.log_view.model.step_starts()
        if not starts:
            self.notify("This run has one step: its output is the whole log.")
            return
        here = self.log_view.line_at(int(self.log_view.scroll_y)) or 0
        numbers = sorted(starts, key=starts.__getitem__)
        after = [n for n in numbers if starts[n] > here] if direction > 0 else []
        before = [n for n in numbers if starts[n] < here] if direction < 0 else []
        target = after[0] if after else (before[-1] if before else numbers[0 if direction < 0 else -1])
        self.go_to_step(target)

    def go_to_step(self, number: int) -> None:
        """Show the log from where step ``number`` (1 = the first) starts; following pauses."""
        starts = self.log_view.model.step_starts()
        line = starts.get(number, 0 if number == 1 else None)
        if line is None:
            self.notify(f"Step {number} has no output in the log yet.")
            return
        self.log_view.scroll_to_line(line, at_top=True)

    def action_copy_id(self) -> None:
        operations.copy_run_id(self.yard, self.run_id)
