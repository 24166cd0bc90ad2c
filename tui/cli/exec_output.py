"""What `yard dev exec` prints of a command's output frames, for the full CLI and its fast path
alike (standard library only: the fast path imports it). One producer, so the two cannot drift
apart; the contract test in tests/tui/test_quick.py holds them to it."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast paths do without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable

CONNECTION_LOST = 255  # the exit code when the answer stopped before the command's own
EXEC_LOST = "The connection to the develop server was lost before the command finished."


def write_exec_frames(frames: Iterable[tuple[bytes, bytes]]) -> int:
    """Write an exec's output frames as they come (``o`` stdout, ``e`` stderr, ``!`` an error
    of the develop server's); the command's exit code from its ``x`` frame, or
    :data:`CONNECTION_LOST` (said on stderr) when the stream ended without one."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for kind, payload in frames:
        if kind == b"o":
            out.write(payload)
            out.flush()
        elif kind == b"e":
            err.write(payload)
            err.flush()
        elif kind == b"!":
            err.write(b"error: " + payload + b"\n")
            err.flush()
        elif kind == b"x":
            return int(payload)
    sys.stderr.write(EXEC_LOST + "\n")
    sys.stderr.flush()
    return CONNECTION_LOST
