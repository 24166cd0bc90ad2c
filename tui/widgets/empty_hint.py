"""What to do when a dashboard table has no rows: shown under the table's header instead of blank space."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class EmptyHint(Static):
    """Hidden while the table beside it has rows; the dashboard sets the text and shows it."""

    DEFAULT_CSS = """
    EmptyHint {
        display: none;
        height: auto;
        padding: 1 2;
        color: $text-muted;
        &.-shown { display: block; }
    }
    """

    def show_hint(self, text: str | None) -> None:
        """Show ``text``; None hides the hint."""
        if text is None:
            self.remove_class("-shown")
            return
        self.update(Text(text))  # plain text: a filter or a command may hold [brackets]
        self.add_class("-shown")
