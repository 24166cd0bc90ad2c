"""Reading a command's output and turning it into framed records.

The command's stdout and stderr reach the worker through one channel (one pipe, or a
pseudo-terminal with ``--tty``), read by one thread: the kernel keeps the order of the
command's writes, so the stored log has the order the command wrote in (see
docs/architecture.md, "Run output: one channel"). Records are tagged ``m`` (merged).

Complete lines are framed as soon as they arrive; a partial line (no newline yet) is held back
briefly so it is not split needlessly, and flushed as a partial record if the command pauses
(a progress bar, a prompt) or at the end of output. Secret values are masked before anything
touches the disk, also when a value is split across two reads.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

from control.logformat import MERGED, encode_lines, encode_partial

READ_SIZE = 256 * 1024
PARTIAL_HOLD_S = 0.1
MAX_PENDING = 64 * 1024
MASK = b"***"


def open_channel(tty: dict[str, Any] | None) -> tuple[int, int]:
    """``(read end, write end)`` of the one channel the command writes stdout and stderr to.

    Without ``tty``: a pipe. With ``tty`` (``{"cols": C, "rows": R}``): a pseudo-terminal of
    that window size whose output processing is off (``OPOST``), so ``\\n`` is not turned into
    ``\\r\\n`` and the stored bytes are the command's. It is not made the controlling terminal
    and stdin stays ``/dev/null``: nobody can type into a run, so a program that opens
    ``/dev/tty`` to ask something fails at once instead of waiting forever.
    """
    if not tty:
        return os.pipe()
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~(termios.OPOST | termios.ONLCR)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        termios.tcsetwinsize(slave, (int(tty.get("rows", 40)), int(tty.get("cols", 120))))
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return master, slave


class SecretMasker:
    """Replaces every secret value with ``***`` in a byte stream that arrives in pieces.

    Invariant: bytes are only released once no secret value can still be completed by bytes
    yet to come. The end of the released output never is a proper prefix of a secret, so
    ``printf "A:Sup3rS3cr"; sleep 1; printf "etValue42"`` is masked like one write. The held
    tail is at most the longest secret minus one byte, and it waits for more output or the
    end of output (a pause right after a secret's first bytes delays those bytes, never
    leaks them).
    """

    def __init__(self, secrets: list[str]) -> None:
        # Longest first: a secret containing another is masked whole.
        self.values = sorted({s.encode() for s in secrets if len(s) >= 3}, key=len, reverse=True)
        self.held = b""

    def feed(self, data: bytes) -> bytes:
        """The masked bytes that can be released now; the rest is held back."""
        if not self.values:
            return data
        data = self._replace(self.held + data)
        keep = self._unfinished(data)
        self.held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]

    def flush(self) -> bytes:
        """End of output: what was held back is not a secret (it never completed one)."""
        held, self.held = self.held, b""
        return held

    def _replace(self, data: bytes) -> bytes:
        for value in self.values:
            if value in data:
                data = data.replace(value, MASK)
        return data

    def _unfinished(self, data: bytes) -> int:
        """Length of the longest end of ``data`` that is a proper prefix of a secret."""
        best = 0
        for value in self.values:
            first = value[:1]
            pos = data.find(first, max(0, len(data) - len(value) + 1))
            while pos >= 0 and len(data) - pos > best:
                if value.startswith(data[pos:]):
                    best = len(data) - pos
                    break
                pos = data.find(first, pos + 1)
        return best


def masker(secrets: list[str]) -> Callable[[bytes], bytes]:
    """A function that replaces every secret value in one whole piece of bytes with ``***``."""
    whole = SecretMasker(secrets)

    def mask(data: bytes) -> bytes:
        return whole.feed(data) + whole.flush()

    return mask


class OutputReader(threading.Thread):
    """Drain one channel (a pipe's read end or a pseudo-terminal's master) into the spool."""

    def __init__(self, fd: int, emit: Callable[[bytes], None], secrets: list[str], stream: str = MERGED) -> None:
        super().__init__(name="capture", daemon=True)
        self.fd = fd
        self.stream = stream
        self.emit = emit
        self.masker = SecretMasker(secrets)
        self.bytes_read = 0

    def run(self) -> None:
        try:
            self._drain()
        finally:
            os.close(self.fd)

    def _drain(self) -> None:
        pending = b""
        pending_since = 0.0
        while True:
            wait = None if not pending else max(0.0, PARTIAL_HOLD_S - (time.monotonic() - pending_since))
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                self.emit(encode_partial(pending, self.stream, _now_ms()))
                pending = b""
                continue
            data = _read(self.fd)
            if not data:
                break
            self.bytes_read += len(data)
            now_ms = _now_ms()
            if not pending:
                pending_since = time.monotonic()
            data = pending + self.masker.feed(data)
            cut = data.rfind(b"\n")
            if cut >= 0:
                self.emit(encode_lines(data[: cut + 1], self.stream, now_ms))
                pending = data[cut + 1 :]
                pending_since = time.monotonic()
            else:
                pending = data
            while len(pending) >= MAX_PENDING:
                # A very long line without a newline: ship it in pieces rather than hold it all.
                self.emit(encode_partial(pending[:MAX_PENDING], self.stream, now_ms))
                pending = pending[MAX_PENDING:]
        rest = pending + self.masker.flush()
        for start in range(0, len(rest), MAX_PENDING):
            piece = rest[start : start + MAX_PENDING]
            cut = piece.rfind(b"\n")
            if cut >= 0:
                self.emit(encode_lines(piece[: cut + 1], self.stream, _now_ms()))
                piece = piece[cut + 1 :]
            if piece:
                self.emit(encode_partial(piece, self.stream, _now_ms()))


def _read(fd: int) -> bytes:
    """The next bytes, or b"" at the end: a pseudo-terminal's master answers EIO once every
    holder of the terminal has closed it, a pipe answers b""."""
    try:
        return os.read(fd, READ_SIZE)
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.EBADF):
            return b""
        raise


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
