"""The status bar: which API, whether the live connection is up, and this directory's sync state."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.cells import ago
from tui.sync_status import SyncStatus

SYNC_LOOK = {
    "synced": ("✔", "$success"),
    "pending": ("↑", "$warning"),
    "syncing": ("⟳", "$accent"),
    "conflicts": ("!", "$error"),
    "error": ("!", "$error"),
    "never": ("·", "$text-muted"),
    "unknown": ("?", "$text-muted"),
}


class StatusBar(Static):
    """One line at the bottom of every view."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    StatusBar.-down {
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
    connection: reactive[str] = reactive("connecting")
    """``connecting``, ``live``, or a one-sentence reason the connection is down."""
    read_only: reactive[bool] = reactive(False)
    """Whether the TUI refuses to launch or change anything."""
    project: reactive[str] = reactive("")
    """The project of the current directory."""
    sync: reactive[SyncStatus | None] = reactive(None)
    """The current directory's sync state (None until read)."""

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        live = self.connection == "live"
        text.append("● live" if live else f"○ {self.connection}", style="bold" if not live else "")
        text.append(f"  │  {self.profile} {self.url}")
        if self.user:
            text.append(f"  │  {self.user}")
        if self.read_only:
            text.append("  │  ")
            text.append("READ-ONLY", style="bold reverse")
        if self.project:
            text.append(f"  │  {self.project}: ")
            status = self.sync
            if status is None:
                text.append("sync …")
            else:
                icon, _ = SYNC_LOOK.get(status.state, ("?", ""))
                when = f" {ago(status.last_sync_at.isoformat())}" if status.last_sync_at else ""
                text.append(f"{icon} sync {status.state}{when}")
        return text

    def on_mount(self) -> None:
        # The app owns the facts; every screen's bar shows the same ones.
        app: Any = self.app
        signal = getattr(app, "status_signal", None)
        if signal is not None:
            self.profile, self.url, self.read_only = app.profile.name, app.profile.url, app.read_only
            signal.subscribe(self, self.show)
            self.show(app.status_info)

    def show(self, info: Any) -> None:
        """Copy the app's status facts (``StatusInfo``)."""
        self.connection, self.user, self.project, self.sync = info.connection, info.user, info.project, info.sync

    def watch_connection(self, connection: str) -> None:
        self.set_class(connection not in ("live", "connecting"), "-down")
