"""``yard up`` / ``yard down``: the embedded stack (API, agent and scheduler in one server)."""
