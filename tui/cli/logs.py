"""Printing run logs: raw bytes, or as a terminal would show them, with optional timestamps."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import BinaryIO

from control.logformat import MERGED, STEP, complete_only, decode
from tui.cli.closed_pipe import exit_quietly

MERGED_NOTE = (
    "note: this run's stdout and stderr were read together to keep their order; --stream cannot split them,"
    " so every line is printed to stdout.\n"
)
RENDER_LIMIT = 64 * 1024
ERASE_TO_END = b"\x1b[K"


def overlay(line: bytes) -> bytes:
    """What a terminal shows for ``line`` (no newline) once it is finished: each carriage
    return goes back to the start and what follows overwrites what is there. A piece with
    colour codes replaces the whole line (its width in cells is not known from its bytes)."""
    if b"\r" not in line:
        return line
    shown = ""
    for piece in line.decode("utf-8", "surrogateescape").split("\r"):
        if not piece:
            continue
        whole = "\x1b" in piece or "\x1b" in shown or len(piece) >= len(shown)
        shown = piece if whole else piece + shown[len(piece) :]
    return shown.encode("utf-8", "surrogateescape")


class TerminalLines:
    """Raw output in, what a terminal would show out: a line rewritten with ``\\r`` (a
    progress bar) is printed as its final state, and while it is still being written it is
    redrawn in place. A line longer than 64 KiB is passed through as it comes."""

    def __init__(self) -> None:
        self.line = b""
        self.shown = False
        """Part of the current line is already on the screen."""
        self.passthrough = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            piece = data[start:end]
            if self.passthrough or len(self.line) + len(piece) > RENDER_LIMIT:
                if not self.passthrough and not self.shown:
                    out += self.line
                self.passthrough, self.line = True, b""
                out += piece
            elif b"\r" in piece or b"\r" in self.line:
                self.line += piece
                if self.shown or newline < 0:
                    # Still being drawn, or drawn before: redrawn in place.
                    out += b"\r" + overlay(self.line) + ERASE_TO_END
                else:
                    out += overlay(self.line)
                self.shown = newline < 0
            else:
                self.line += piece
                out += piece
                self.shown = self.shown or bool(piece)
            if newline < 0:
                break
            out += b"\n"
            self.line, self.shown, self.passthrough = b"", False, False
            start = newline + 1
        return bytes(out)


def renders(raw: bool) -> bool:
    """Whether to show the log as a terminal would: on a terminal, unless ``--raw``."""
    return not raw and sys.stdout.isatty()


def tty_fields(tty: bool) -> dict[str, object]:
    """The run fields of ``--tty``: the pseudo-terminal gets this terminal's size (120x40 when
    there is none), so what it draws fits the screen it is followed on."""
    if not tty:
        return {}
    import shutil

    cols, rows = shutil.get_terminal_size((120, 40))
    return {"tty": True, "tty_cols": max(10, min(cols, 1000)), "tty_rows": max(2, min(rows, 1000))}


class LogPrinter:
    """Writes decoded records: merged records (stdout and stderr in order) and stdout records to
    stdout, stderr records of older logs to stderr. ``render`` shows carriage-return rewrites
    as a terminal would (for a terminal); otherwise the stored bytes go out untouched."""

    def __init__(
        self, timestamps: bool = False, streams: str = "oe", merge: bool = False, render: bool = False
    ) -> None:
        self.timestamps = timestamps
        self.streams = streams
        self.merge = merge
        self.lines = 0
        self.next_seq = 1
        """The first log chunk not yet printed; following resumes here after an interruption."""
        self._out: BinaryIO = sys.stdout.buffer
        self._err: BinaryIO = sys.stdout.buffer if merge else sys.stderr.buffer
        self._at_line_start = {"o": True, "e": True, MERGED: True}
        self._screens = {"o": TerminalLines(), "e": TerminalLines(), MERGED: TerminalLines()} if render else None
        self._noted = False

    def write(self, blob: bytes) -> None:
        try:
            self._write(blob)
        except BrokenPipeError:
            exit_quietly()  # `yard runs logs -f | head`: the reader is gone, the run goes on

    def _write(self, blob: bytes) -> None:
        if not self.timestamps:
            for fast in (MERGED, "o") if "o" in self.streams else (MERGED,):
                raw = complete_only(blob, fast)
                if raw is not None:  # only complete lines of one stream: the common case, at C speed
                    self._note(fast)
                    self._out.write(self._shown(fast, raw))
                    self._out.flush()
                    self.lines += raw.count(b"\n")
                    self._at_line_start[fast] = True
                    return
        # Records of one stream that follow each other are written as one piece, so a line
        # stored in pieces (a progress bar that paused) is rendered in its final state.
        run_stream, run_bytes = "", bytearray()
        for record in decode(blob):
            if record.stream == STEP and self._screens is not None:
                # Where a step starts, on a terminal only: piped output stays the command's bytes.
                self._put(run_stream, bytes(run_bytes))
                run_stream, run_bytes = "", bytearray()
                self._out.write(self._step_line(record.text))
                continue
            if record.stream != MERGED and record.stream not in self.streams:
                continue
            self._note(record.stream)
            if record.stream != run_stream:
                self._put(run_stream, bytes(run_bytes))
                run_stream, run_bytes = record.stream, bytearray()
            if self.timestamps and self._at_line_start.get(record.stream, True):
                stamp = datetime.fromtimestamp(record.ts_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
                run_bytes += f"{stamp} ".encode()
            run_bytes += record.raw
            self._at_line_start[record.stream] = record.complete
            self.lines += record.complete
        self._put(run_stream, bytes(run_bytes))
        self._out.flush()
        if self._err is not self._out:
            self._err.flush()

    def _step_line(self, text: bytes) -> bytes:
        """A step marker as a bold line of its own (after the line a step left unfinished)."""
        screen = self._screens[MERGED] if self._screens is not None else None
        before = b"\n" if screen is not None and screen.shown else b""
        if screen is not None:
            screen.line, screen.shown, screen.passthrough = b"", False, False
        self._at_line_start[MERGED] = True
        return before + b"\x1b[1m\xe2\x96\xb6 step " + text + b"\x1b[0m\n"

    def _put(self, stream: str, raw: bytes) -> None:
        if raw:
            (self._err if stream == "e" else self._out).write(self._shown(stream, raw))

    def _shown(self, stream: str, raw: bytes) -> bytes:
        return self._screens[stream].feed(raw) if self._screens is not None else raw

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
