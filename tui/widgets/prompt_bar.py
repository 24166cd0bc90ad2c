"""A one-line prompt under a view for a filter or a search: enter applies, escape cancels."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class PromptBar(Input):
    """Hidden until :meth:`ask`; gives focus back to what had it when done."""

    DEFAULT_CSS = """
    PromptBar {
        dock: bottom;
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        background: $boost;
        &.-shown { display: block; }
        &:focus { border: none; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    class Answered(Message):
        """The user pressed enter: ``kind`` is what was asked, ``value`` what they typed."""

        def __init__(self, kind: str, value: str) -> None:
            super().__init__()
            self.kind = kind
            self.value = value

    class Typed(Message):
        """The text changed while the prompt is open (for filters applied as you type)."""

        def __init__(self, kind: str, value: str) -> None:
            super().__init__()
            self.kind = kind
            self.value = value

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.kind = ""
        self._original = ""
        self._return_to: object = None

    def ask(self, kind: str, value: str = "", placeholder: str = "") -> None:
        """Show the prompt for ``kind`` with ``value`` filled in, and focus it."""
        self.kind = kind
        self._original = value
        self._return_to = self.screen.focused
        self.placeholder = placeholder
        self.value = value
        self.add_class("-shown")
        self.cursor_position = len(value)
        self.focus()

    def _close(self) -> None:
        self.remove_class("-shown")
        target = self._return_to
        if target is not None and hasattr(target, "focus"):
            target.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is self:
            event.stop()
            self.post_message(self.Answered(self.kind, self.value))
            self._close()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is self and self.has_class("-shown"):
            event.stop()
            self.post_message(self.Typed(self.kind, self.value))

    def action_cancel(self) -> None:
        self.post_message(self.Typed(self.kind, self._original))
        self._close()
