"""What every devyard screen shares: typed access to the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from textual.screen import ModalScreen, Screen

if TYPE_CHECKING:
    from tui.app import DevyardApp

T = TypeVar("T")


class YardScreen(Screen[T], Generic[T]):
    """A full screen of the TUI."""

    @property
    def yard(self) -> DevyardApp:
        return cast("DevyardApp", self.app)


class YardModal(ModalScreen[T], Generic[T]):
    """A dialog over the current screen."""

    @property
    def yard(self) -> DevyardApp:
        return cast("DevyardApp", self.app)
