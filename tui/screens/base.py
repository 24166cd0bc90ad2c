"""What every devyard screen shares: typed access to the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from textual import events
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

from tui import operations
from tui.actions import WRITING, in_scope

if TYPE_CHECKING:
    from tui.app import DevyardApp

T = TypeVar("T")


class YardScreen(Screen[T], Generic[T]):
    """A full screen of the TUI."""

    @property
    def yard(self) -> DevyardApp:
        return cast("DevyardApp", self.app)

    def action_scopes(self) -> list[tuple[str, DOMNode]]:
        """The action scopes (``tui.actions.SCOPES``) live here, and the node each runs on."""
        return []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Read-only: actions that change something are neither in the footer nor run.
        return not (self.yard.read_only and action in WRITING)

    def on_key(self, event: events.Key) -> None:
        """In read-only mode, a key of a hidden action says why nothing happens."""
        if not self.yard.read_only:
            return
        keymap = self.yard.config.keymap
        for scope, _ in self.action_scopes():
            for spec in in_scope(scope):
                keys = [key.strip() for key in keymap.get(spec.id, spec.keys).split(",")]
                if spec.writes and event.key in keys:
                    operations.allowed(self.yard, spec.id)
                    event.stop()
                    return


class YardModal(ModalScreen[T], Generic[T]):
    """A dialog over the current screen."""

    @property
    def yard(self) -> DevyardApp:
        return cast("DevyardApp", self.app)
