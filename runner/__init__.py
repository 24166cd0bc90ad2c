"""Runs: queue and dispatch, the run worker, the scheduler daemon and file-watch triggers."""
