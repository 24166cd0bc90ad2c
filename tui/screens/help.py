"""`?`: every key of the view underneath, generated from its live bindings (keymap included)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tui.actions import BY_ID, SCOPES
from tui.screens.base import YardModal


def key_reference(
    screen: Screen[object], key_display: dict[str, str]
) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """``[(section, [(keys, title, help, id)])]`` for the bindings active on ``screen``."""
    by_action: dict[str, list[str]] = {}
    bound: dict[str, Binding] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.id is None or binding.id not in BY_ID:
            continue
        by_action.setdefault(binding.id, []).append(key_display.get(key, key))
        bound[binding.id] = binding
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    for action_id, keys in by_action.items():
        spec = BY_ID[action_id]
        sections.setdefault(spec.scope, []).append((" ".join(keys), spec.title, spec.help, action_id))
    order = list(SCOPES)
    return [(SCOPES[scope], rows) for scope, rows in sorted(sections.items(), key=lambda item: order.index(item[0]))]


class HelpScreen(YardModal[None]):
    """The key reference of the view it was opened from."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 100; max-width: 95%; height: 90%;
        border: thick $primary 50%; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close"),
        Binding("j,down", "scroll('down')", show=False),
        Binding("k,up", "scroll('up')", show=False),
    ]

    def __init__(self, underneath: Screen[object]) -> None:
        super().__init__()
        self.underneath = underneath
        self.sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
        """What the screen lists: ``[(section, [(keys, title, help, action id)])]``."""

    def compose(self) -> ComposeResult:
        displays = {
            key: self.app.get_key_display(active.binding) for key, active in self.underneath.active_bindings.items()
        }
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        table.add_column(style="dim", no_wrap=True)
        self.sections = key_reference(self.underneath, displays)
        for section, rows in self.sections:
            table.add_row(Text(section, style="bold underline"), "", "", "")
            for keys, title, help_text, action_id in rows:
                table.add_row(keys, title, help_text, action_id)
            table.add_row("", "", "", "")
        table.add_row(Text("Also", style="bold underline"), "", "", "")
        table.add_row("ctrl+p", "Palette", "Every action, searchable, with its key.", "")
        table.add_row("mouse", "Click", "Click a row or a tab; scroll with the wheel.", "")
        table.add_row("", "", 'Rebind keys in ~/.config/devyard/tui.toml: [keys] "run.cancel" = "C".', "")
        with VerticalScroll():
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, direction: str) -> None:
        scroller = self.query_one(VerticalScroll)
        scroller.scroll_relative(y=1 if direction == "down" else -1, animate=False)
