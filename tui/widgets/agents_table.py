"""The dashboard's agents and their last heartbeat."""

from __future__ import annotations

from rich.text import Text

from control.wire.work import AgentOut
from tui.cells import ago
from tui.widgets.resource_table import Column, ResourceTable

AgentColumn = Column[AgentOut]

COLUMNS = (
    AgentColumn("name", "name", lambda agent, _: Text(agent.name)),
    AgentColumn("queue", "queue", lambda agent, _: Text(agent.queue or "-")),
    AgentColumn("substrate", "substrate", lambda agent, _: Text(agent.substrate or "-")),
    AgentColumn("host", "host", lambda agent, _: Text(agent.hostname or "-")),
    AgentColumn("version", "version", lambda agent, _: Text(agent.version or "-")),
    AgentColumn("heartbeat", "last heartbeat", lambda agent, _: Text(ago(agent.last_heartbeat_at))),
)


class AgentsTable(ResourceTable[AgentOut]):
    """Registered agents; one that stopped stays listed with an old heartbeat."""

    COLUMNS = COLUMNS
    MODEL = AgentOut
    CLOCK_COLUMNS = frozenset({"heartbeat"})
