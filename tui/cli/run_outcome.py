"""How the CLI ends a followed run: one sentence in words and an exit code. Standard library
only, so the fast path of `yard run` (tui/cli/quick_run.py) and the full CLI say the same."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms of every call
if TYPE_CHECKING:
    from typing import Any

# A run's state as the end of a sentence that starts "Run 24 ..." (the API's names have underscores).
STATE_WORDS = {
    "queued": "is queued",
    "starting": "is starting",
    "running": "is running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "was cancelled",
    "timed_out": "timed out (it ran longer than its --timeout)",
    "lost": "was lost (its worker stopped reporting)",
}

# Exit codes for a run that did not give one of its own; 130 also ends a run left by Ctrl-C.
EXIT_CODES = {"timed_out": 124, "cancelled": 130, "lost": 1}
DETACHED_EXIT_CODE = 130


def state_words(state: str) -> str:
    return STATE_WORDS.get(state, state.replace("_", " "))


def sentence(run: dict[str, Any]) -> str:
    """``Run 24 timed out (...).`` / ``Run 3 failed: exit code 2.``"""
    detail = run.get("error") or (f"exit code {run['exit_code']}" if run["state"] == "failed" else None)
    steps = run.get("steps") or []
    failing = next((s for s in steps if s.get("state") == "failed"), None)
    if run["state"] == "failed" and len(steps) > 1 and failing is not None and not run.get("error"):
        detail = f"step {failing['index'] + 1} of {len(steps)} ({failing['name']}) exited with {failing['exit_code']}"
    return f"Run {run['id']} {state_words(run['state'])}" + (f": {str(detail).rstrip('.')}." if detail else ".")


def exit_code_of(run: dict[str, Any]) -> int:
    """The CLI's exit code for a finished run: the command's, or a conventional one."""
    if run["state"] == "succeeded":
        return 0
    if run.get("exit_code") is not None and run["state"] == "failed":
        return int(run["exit_code"])
    return EXIT_CODES.get(run["state"], 1)
