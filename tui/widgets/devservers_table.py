"""The dashboard's develop servers: state, project, uptime and last activity."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType

from control.wire.devservers import DevServerOut
from tui.actions import bindings
from tui.cells import DEVSERVER_STATES, Palette, ago, now, parse_time, span, state_cell
from tui.widgets.resource_table import Column, ResourceTable


def uptime(server: DevServerOut, _: Palette | None = None) -> Text:
    """How long a running server has been up; ``-`` otherwise."""
    started = parse_time(server.started_at)
    if server.state != "running" or started is None:
        return Text("-")
    return Text(span((now() - started).total_seconds()), justify="right")


def environment(server: DevServerOut, colours: Palette) -> Text:
    """The environment's name; marked when it changed after the server started."""
    text = Text(server.environment or "-")
    if server.stale_environment:
        text.append(" (changed: restart)", style=colours["$warning"])
    return text


ServerColumn = Column[DevServerOut]

COLUMNS = (
    ServerColumn("id", "#", lambda server, _: Text(str(server.id), justify="right")),
    ServerColumn(
        "state",
        "state",
        lambda server, colours: state_cell(server.state, colours, DEVSERVER_STATES),
        width=11,
    ),
    ServerColumn("project", "project", lambda server, _: Text(server.project or "-")),
    ServerColumn("user", "user", lambda server, _: Text(server.user or "-")),
    ServerColumn("uptime", "uptime", uptime, width=8),
    ServerColumn("activity", "last activity", lambda server, _: Text(ago(server.last_activity_at)), width=13),
    ServerColumn("restarts", "restarts", lambda server, _: Text(str(server.restart_count), justify="right")),
    ServerColumn("env", "environment", environment),
    ServerColumn("error", "error", lambda server, _: Text(server.error or "", no_wrap=True)),
)


class DevServersTable(ResourceTable[DevServerOut]):
    """Develop servers: yours, or everyone's for an admin."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("devservers")]
    COLUMNS = COLUMNS
    MODEL = DevServerOut
    CLOCK_COLUMNS = frozenset({"uptime", "activity"})

    def live_keys(self) -> list[str]:
        return [key for key, server in self.items.items() if server.state == "running"]
