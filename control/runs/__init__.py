"""Runs in the control plane: creation, claiming by agents, state changes, logs and artifacts."""
