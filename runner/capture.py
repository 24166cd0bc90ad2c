"""Reading a command's stdout or stderr and turning it into framed records.

Complete lines are framed as soon as they arrive; a partial line (no newline yet) is held back
briefly so it is not split needlessly, and flushed as a partial record if the command pauses
(a progress bar, a prompt) or at the end of output. Secret values are masked before anything
touches the disk.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

from control.logformat import encode_lines, encode_partial

READ_SIZE = 256 * 1024
PARTIAL_HOLD_S = 0.1
MAX_PENDING = 64 * 1024


def masker(secrets: list[str]) -> Callable[[bytes], bytes]:
    """A function that replaces every secret value with ``***``."""
    values = sorted({s.encode() for s in secrets if len(s) >= 3}, key=len, reverse=True)
    if not values:
        return lambda data: data

    def mask(data: bytes) -> bytes:
        for value in values:
            if value in data:
                data = data.replace(value, b"***")
        return data

    return mask


class StreamReader(threading.Thread):
    """Drain one pipe into the spool until EOF."""

    def __init__(self, fd: int, stream: str, emit: Callable[[bytes], None], mask: Callable[[bytes], bytes]) -> None:
        super().__init__(name=f"capture-{stream}", daemon=True)
        self.fd = fd
        self.stream = stream
        self.emit = emit
        self.mask = mask
        self.bytes_read = 0

    def run(self) -> None:
        pending = b""
        pending_since = 0.0
        while True:
            wait = None if not pending else max(0.0, PARTIAL_HOLD_S - (time.monotonic() - pending_since))
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                self.emit(encode_partial(self.mask(pending), self.stream, time.time_ns() // 1_000_000))
                pending = b""
                continue
            try:
                data = os.read(self.fd, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                break
            self.bytes_read += len(data)
            now_ms = time.time_ns() // 1_000_000
            if not pending:
                pending_since = time.monotonic()
            data = pending + data
            cut = data.rfind(b"\n")
            if cut >= 0:
                self.emit(encode_lines(self.mask(data[: cut + 1]), self.stream, now_ms))
                pending = data[cut + 1 :]
                pending_since = time.monotonic()
            else:
                pending = data
            if len(pending) >= MAX_PENDING:
                # A very long line without a newline: ship it in pieces rather than hold it all.
                self.emit(encode_partial(self.mask(pending), self.stream, now_ms))
                pending = b""
        if pending:
            self.emit(encode_partial(self.mask(pending), self.stream, time.time_ns() // 1_000_000))
        os.close(self.fd)
