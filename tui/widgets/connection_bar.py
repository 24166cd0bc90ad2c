"""The status bar: profile, URL, who we are and whether the live connection is up."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class ConnectionBar(Static):
    """One line at the bottom of the dashboard describing the connection."""

    DEFAULT_CSS = """
    ConnectionBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    ConnectionBar.-down {
        background: $error 40%;
        color: $text;
    }
    """

    profile: reactive[str] = reactive("")
    """Name of the client profile in use."""
    url: reactive[str] = reactive("")
    """Base URL of the control API."""
    user: reactive[str] = reactive("")
    """`name (role)` of the token's user, once known."""
    state: reactive[str] = reactive("connecting")
    """connecting, live, or a one-sentence reason the connection is down."""
    read_only: reactive[bool] = reactive(False)
    """Whether the TUI refuses to launch or change anything."""

    def render(self) -> str:
        parts = [f"profile {self.profile}", self.url]
        if self.user:
            parts.append(self.user)
        if self.read_only:
            parts.append("read-only")
        parts.append("● live" if self.state == "live" else f"○ {self.state}")
        return "  │  ".join(parts)

    def watch_state(self, state: str) -> None:
        self.set_class(state not in ("live", "connecting"), "-down")
