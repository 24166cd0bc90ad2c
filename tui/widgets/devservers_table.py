"""The dashboard's develop servers: state, project, uptime and last activity."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType

from tui.actions import bindings
from tui.cells import DEVSERVER_STATES, Palette, ago, now, parse_time, span, state_cell
from tui.widgets.resource_table import Column, Item, ResourceTable


def uptime(server: Item, _: Palette | None = None) -> Text:
    """How long a running server has been up; ``-`` otherwise."""
    started = parse_time(server.get("started_at"))
    if server.get("state") != "running" or started is None:
        return Text("-")
    return Text(span((now() - started).total_seconds()), justify="right")


def environment(server: Item, colours: Palette) -> Text:
    """The environment's name; marked when it changed after the server started."""
    text = Text(str(server.get("environment") or "-"))
    if server.get("stale_environment"):
        text.append(" (changed: restart)", style=colours["$warning"])
    return text


COLUMNS = (
    Column("id", "#", lambda server, _: Text(str(server["id"]), justify="right")),
    Column(
        "state",
        "state",
        lambda server, colours: state_cell(str(server.get("state")), colours, DEVSERVER_STATES),
        width=11,
    ),
    Column("project", "project", lambda server, _: Text(str(server.get("project") or "-"))),
    Column("user", "user", lambda server, _: Text(str(server.get("user") or "-"))),
    Column("uptime", "uptime", uptime, width=8),
    Column("activity", "last activity", lambda server, _: Text(ago(server.get("last_activity_at"))), width=13),
    Column("restarts", "restarts", lambda server, _: Text(str(server.get("restart_count", 0)), justify="right")),
    Column("env", "environment", environment),
    Column("error", "error", lambda server, _: Text(str(server.get("error") or ""), no_wrap=True)),
)


class DevServersTable(ResourceTable):
    """Develop servers: yours, or everyone's for an admin."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings("devservers")]
    COLUMNS = COLUMNS
    CLOCK_COLUMNS = frozenset({"uptime", "activity"})

    def live_keys(self) -> list[str]:
        return [key for key, server in self.items.items() if server.get("state") == "running"]
