"""`:` — jump to a view by name, k9s style: ``runs``, ``dev``, ``schedules``, ``agents``,
``jobs``, ``run 42`` (or just ``42``), ``dev shop``, ``help``, ``quit``."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from tui.screens.base import YardModal

TARGETS = ["runs", "dev", "jobs", "schedules", "agents", "run ", "dev ", "new run", "help", "quit"]


class JumpScreen(YardModal[str | None]):
    """A one-line command prompt; dismisses with what was typed."""

    DEFAULT_CSS = """
    JumpScreen { align: center top; }
    JumpScreen > Vertical {
        width: 64; height: auto; margin-top: 3;
        border: thick $accent 60%; background: $surface; padding: 0 1;
    }
    JumpScreen Input { border: none; height: 1; padding: 0; }
    JumpScreen #hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close", show=False)]

    def __init__(self, extra: list[str] | None = None) -> None:
        super().__init__()
        self.suggestions = [*TARGETS, *(extra or [])]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder=":", suggester=SuggestFromList(self.suggestions, case_sensitive=False))
            yield Static(
                "runs · dev · jobs · schedules · agents · run 42 · dev PROJECT · new run · help · quit", id="hint"
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip().lstrip(":").strip() or None)

    def action_close(self) -> None:
        self.dismiss(None)
