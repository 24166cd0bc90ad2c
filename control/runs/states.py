"""Run states and which transitions are allowed."""

from __future__ import annotations

QUEUED = "queued"
STARTING = "starting"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
LOST = "lost"

ACTIVE = frozenset({STARTING, RUNNING})
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, LOST})
ALL = frozenset({QUEUED}) | ACTIVE | FINISHED

# Outcomes a worker may report, and the state each becomes.
WORKER_OUTCOMES = {
    "exited": None,  # succeeded or failed by exit code
    "failed_to_start": FAILED,
    "timed_out": TIMED_OUT,
    "cancelled": CANCELLED,
    # Reported by the agent: the worker itself died (its container was killed, OOM, ...).
    "killed": FAILED,
}

RETRYABLE = frozenset({FAILED, TIMED_OUT, LOST})

TRIGGERS = frozenset({"manual", "api", "schedule", "watch", "retry", "job", "webhook"})
"""``job``: started by another job's end (a chained job)."""
