"""The body of `yard dev exec`'s request, shared by its fast path and the full CLI (stdlib only).

stdin is forwarded when it is not a terminal, like ``docker exec -i``: read to its end first,
sent with the command, and closed after it, so the command sees EOF. A terminal is never read
(that is `yard dev shell`'s job); ``--no-stdin`` leaves a pipe alone (a loop feeding a script).
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
from typing import Any

MAX_STDIN_BYTES = 8 * 1024 * 1024  # the develop server takes JSON bodies up to 16 MiB; base64 adds a third


class StdinTooLarge(ValueError):
    def __init__(self) -> None:
        super().__init__(
            f"stdin holds more than {MAX_STDIN_BYTES // (1024 * 1024)} MiB; copy the data into the workspace"
            " (`yard sync`) and read it from there, or pass --no-stdin."
        )


def piped_stdin() -> bytes | None:
    """All of stdin when it is a pipe, a file or /dev/null; None for a terminal or no stdin."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    if os.isatty(fd):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            piece = os.read(fd, 1 << 20)
        except OSError:
            return None if not chunks else b"".join(chunks)
        if not piece:
            return b"".join(chunks)
        size += len(piece)
        if size > MAX_STDIN_BYTES:
            raise StdinTooLarge()
        chunks.append(piece)


def exec_body(
    command: list[str], cwd: str | None, timeout_s: float | None, tty: bool, forward_stdin: bool
) -> dict[str, Any]:
    """What `POST /exec` gets: the command, and with ``tty`` a pseudo-terminal of this
    terminal's size (120x40 when there is none)."""
    body: dict[str, Any] = {"argv": command, "cwd": cwd}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if tty:
        cols, rows = shutil.get_terminal_size((120, 40))
        body["tty"] = {"cols": max(1, min(cols, 1000)), "rows": max(1, min(rows, 1000))}
    data = piped_stdin() if forward_stdin else None
    if data is not None:
        body["stdin_b64"] = base64.b64encode(data).decode("ascii")
    return body
