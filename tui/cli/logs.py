"""Printing run logs: raw bytes to the terminal, optionally with timestamps and stream filters."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import BinaryIO

from control.logformat import MERGED, complete_only, decode

MERGED_NOTE = (
    "note: this run's stdout and stderr were read together to keep their order; --stream cannot split them,"
    " so every line is printed to stdout.\n"
)


class LogPrinter:
    """Writes decoded records: merged records (stdout and stderr in order) and stdout records to
    stdout, stderr records of older logs to stderr."""

    def __init__(self, timestamps: bool = False, streams: str = "oe", merge: bool = False) -> None:
        self.timestamps = timestamps
        self.streams = streams
        self.merge = merge
        self.lines = 0
        self.next_seq = 1
        """The first log chunk not yet printed; following resumes here after an interruption."""
        self._out: BinaryIO = sys.stdout.buffer
        self._err: BinaryIO = sys.stdout.buffer if merge else sys.stderr.buffer
        self._at_line_start = {"o": True, "e": True, MERGED: True}
        self._noted = False

    def write(self, blob: bytes) -> None:
        if not self.timestamps:
            for fast in (MERGED, "o") if "o" in self.streams else (MERGED,):
                raw = complete_only(blob, fast)
                if raw is not None:  # only complete lines of one stream: the common case, at C speed
                    self._note(fast)
                    self._out.write(raw)
                    self._out.flush()
                    self.lines += raw.count(b"\n")
                    self._at_line_start[fast] = True
                    return
        for record in decode(blob):
            if record.stream != MERGED and record.stream not in self.streams:
                continue
            self._note(record.stream)
            target = self._err if record.stream == "e" else self._out
            if self.timestamps and self._at_line_start.get(record.stream, True):
                stamp = datetime.fromtimestamp(record.ts_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
                target.write(f"{stamp} ".encode())
            target.write(record.raw)
            self._at_line_start[record.stream] = record.complete
            self.lines += record.complete
        self._out.flush()
        if self._err is not self._out:
            self._err.flush()

    def _note(self, stream: str) -> None:
        if stream == MERGED and self.streams != "oe" and not self._noted:
            self._noted = True
            sys.stderr.write(MERGED_NOTE)
            sys.stderr.flush()

    def write_chunk(self, seq: int, blob: bytes) -> None:
        """Write chunk ``seq`` unless it was printed already (a resumed stream)."""
        if seq >= self.next_seq:
            self.write(blob)
            self.next_seq = seq + 1
