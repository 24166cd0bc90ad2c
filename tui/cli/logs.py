"""Printing run logs: raw bytes to the terminal, optionally with timestamps and stream filters."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import BinaryIO

from control.logformat import complete_only, decode


class LogPrinter:
    """Writes decoded records: stdout records to stdout, stderr records to stderr."""

    def __init__(self, timestamps: bool = False, streams: str = "oe", merge: bool = False) -> None:
        self.timestamps = timestamps
        self.streams = streams
        self.merge = merge
        self.lines = 0
        self.next_seq = 1
        """The first log chunk not yet printed; following resumes here after an interruption."""
        self._out: BinaryIO = sys.stdout.buffer
        self._err: BinaryIO = sys.stdout.buffer if merge else sys.stderr.buffer
        self._at_line_start = {"o": True, "e": True}

    def write(self, blob: bytes) -> None:
        if not self.timestamps and "o" in self.streams:
            raw = complete_only(blob, "o")
            if raw is not None:  # only complete stdout lines: the common case, at C speed
                self._out.write(raw)
                self._out.flush()
                self.lines += raw.count(b"\n")
                self._at_line_start["o"] = True
                return
        for record in decode(blob):
            if record.stream not in self.streams:
                continue
            target = self._out if record.stream == "o" else self._err
            if self.timestamps and self._at_line_start[record.stream]:
                stamp = datetime.fromtimestamp(record.ts_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
                target.write(f"{stamp} ".encode())
            target.write(record.raw)
            self._at_line_start[record.stream] = record.complete
            self.lines += record.complete
        self._out.flush()
        if self._err is not self._out:
            self._err.flush()

    def write_chunk(self, seq: int, blob: bytes) -> None:
        """Write chunk ``seq`` unless it was printed already (a resumed stream)."""
        if seq >= self.next_seq:
            self.write(blob)
            self.next_seq = seq + 1
