"""Asking before a destructive action (cancel a run, stop a server, fire a schedule).

The action runs from the dialog, so when the API refuses (403, 409) the reason shows in the
dialog itself and the user can back out; on success the dialog closes with the result sentence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from control.client import DevyardError
from tui.screens.base import YardModal

Act = Callable[[], Awaitable[str]]


class ConfirmScreen(YardModal[str | None]):
    """Yes/no; dismisses with the action's sentence on success, None when declined."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 72; height: auto; padding: 1 2;
        border: thick $warning 60%; background: $surface;
    }
    ConfirmScreen #question { text-style: bold; }
    ConfirmScreen #detail { color: $text-muted; margin-top: 1; }
    ConfirmScreen #problem { color: $error; margin-top: 1; display: none; }
    ConfirmScreen #problem.-shown { display: block; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "yes", "Yes"),
        Binding("n,escape", "no", "No"),
    ]

    def __init__(self, question: str, detail: str, act: Act, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.act = act
        self.yes_label = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", markup=False)
            if self.detail:
                yield Static(self.detail, id="detail", markup=False)
            yield Static("", id="problem", markup=False)
            with Horizontal():
                yield Button("No (n)", id="no")
                yield Button(f"{self.yes_label} (y)", id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self.action_yes()
        else:
            self.action_no()

    def action_no(self) -> None:
        self.dismiss(None)

    def action_yes(self) -> None:
        self.query_one("#yes", Button).disabled = True
        self._run()

    @work(exclusive=True)
    async def _run(self) -> None:
        try:
            outcome = await self.act()
        except DevyardError as exc:
            problem = self.query_one("#problem", Static)
            problem.update(str(exc))
            problem.add_class("-shown")
            self.query_one("#yes", Button).disabled = False
            return
        self.dismiss(outcome)
