"""What every devyard screen shares: typed access to the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

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


class YardModal(ModalScreen[T], Generic[T]):
    """A dialog over the current screen."""

    @property
    def yard(self) -> DevyardApp:
        return cast("DevyardApp", self.app)
