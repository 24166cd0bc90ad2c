"""The dashboard's agents and their last heartbeat."""

from __future__ import annotations

from rich.text import Text

from tui.cells import ago
from tui.widgets.resource_table import Column, ResourceTable

COLUMNS = (
    Column("name", "name", lambda agent, _: Text(str(agent.get("name")))),
    Column("queue", "queue", lambda agent, _: Text(str(agent.get("queue") or "-"))),
    Column("substrate", "substrate", lambda agent, _: Text(str(agent.get("substrate") or "-"))),
    Column("host", "host", lambda agent, _: Text(str(agent.get("hostname") or "-"))),
    Column("version", "version", lambda agent, _: Text(str(agent.get("version") or "-"))),
    Column("heartbeat", "last heartbeat", lambda agent, _: Text(ago(agent.get("last_heartbeat_at")))),
)


class AgentsTable(ResourceTable):
    """Registered agents; one that stopped stays listed with an old heartbeat."""

    COLUMNS = COLUMNS
    CLOCK_COLUMNS = frozenset({"heartbeat"})
