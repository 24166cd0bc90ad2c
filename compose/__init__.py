"""Substrates (launchers), volumes, the agent loop, the ``yard up`` supervisor and deploy rendering."""
