"""The stored log format, shared by the run worker, the API and every reader.

A log is a sequence of records, one per output line::

    <milliseconds since the epoch> <stream> <raw bytes of the line>\\n

``stream`` is ``m`` for a line that ended with a newline in the command's output, and ``M`` for a
piece that did not (a partial line flushed because the command paused, or the end of output
without a final newline). ``m`` means merged: the worker reads stdout and stderr through one
channel so their order is exact, and one channel cannot say which of the two wrote a byte (see
docs/architecture.md). Logs written before that carry ``o`` / ``e`` (``O`` / ``E``) for stdout and
stderr read apart; every reader still understands them. The raw bytes are kept as they
were: ANSI colours, carriage returns and invalid UTF-8 survive, so the original output is
``b"".join(text + (b"\\n" if complete else b""))`` over the records, byte for byte. A run of
several steps also has a step marker record (``s``) where each step starts; it is not output.

Encoding works on whole read() buffers with ``bytes.replace`` so its cost is C-speed per
buffer, not Python-speed per line: a million-line log costs milliseconds to frame.
This module imports nothing beyond the standard library (the worker starts fast).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

STDOUT = "o"
STDERR = "e"
MERGED = "m"
STEP = "s"
"""A step marker (not output): ``<n>/<steps> <name>: <command>`` where step n of a run of several
steps starts. Readers that rebuild the command's bytes skip it; runs of one step have none."""
ALL_STREAMS = "oem"


class Record(NamedTuple):
    """One decoded record. A NamedTuple rather than a dataclass: the run worker imports this
    module at start, and ``dataclasses`` (with ``inspect``) costs it about 14 ms."""

    ts_ms: int
    stream: str  # "m" (stdout and stderr in order), or "o" / "e" in older logs
    complete: bool
    text: bytes

    @property
    def raw(self) -> bytes:
        """The bytes the command wrote for this record."""
        return self.text + b"\n" if self.complete else self.text


def encode_lines(data: bytes, stream: str, ts_ms: int) -> bytes:
    """Frame complete lines: ``data`` must end with ``\\n`` (it may hold many lines)."""
    prefix = b"%d %s " % (ts_ms, stream.encode())
    return prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def encode_partial(data: bytes, stream: str, ts_ms: int) -> bytes:
    """Frame a piece of a line that has no newline (yet); ``data`` must not contain ``\\n``."""
    return b"%d %s " % (ts_ms, stream.upper().encode()) + data + b"\n"


def decode(blob: bytes) -> Iterator[Record]:
    """Records of a stored log or chunk; a trailing incomplete record (torn write) is skipped."""
    start = 0
    end = len(blob)
    while start < end:
        newline = blob.find(b"\n", start)
        if newline < 0:
            return
        first = blob.find(b" ", start, newline)
        second = first + 2
        if first < 0 or second > newline or blob[second : second + 1] != b" ":
            start = newline + 1
            continue
        stream = blob[first + 1 : second].decode("ascii", "replace")
        yield Record(int(blob[start:first]), stream.lower(), stream.islower(), blob[second + 1 : newline])
        start = newline + 1


def complete_only(blob: bytes, stream: str = MERGED) -> bytes | None:
    """The command's bytes if ``blob`` holds only complete records of ``stream``, else None.

    The records of one read share one prefix, so each run of them is unframed with one
    ``bytes.replace``: C speed per run instead of Python speed per line. Anything unusual
    (another stream, a partial line, timestamps out of order) answers None: use :func:`decode`.
    """
    if blob and not blob.endswith(b"\n"):
        return None
    parts: list[bytes] = []
    pos, end, window = 0, len(blob), 4096
    tag = b" " + stream.encode() + b" "
    while pos < end:
        space = blob.find(b" ", pos, pos + 21)
        if space <= pos or blob[space : space + 3] != tag or not blob[pos:space].isdigit():
            return None
        prefix = blob[pos : space + 3]
        last = blob.rfind(b"\n" + prefix, pos, min(end, pos + window))
        stop = blob.find(b"\n", last + 1 if last >= 0 else pos) + 1
        segment = blob[pos:stop]
        body = segment.replace(b"\n" + prefix, b"\n")
        # Every newline but the last must have been followed by the prefix, or a line's own
        # bytes contained something prefix-like: then the slow path decides.
        if len(segment) - len(body) != (segment.count(b"\n") - 1) * len(prefix):
            return None
        parts.append(body[len(prefix) :])
        window = min(1 << 20, window * 2) if stop - pos > window // 2 else max(4096, 2 * (stop - pos))
        pos = stop
    return b"".join(parts)


def raw_output(blob: bytes, streams: str = ALL_STREAMS) -> bytes:
    """The command's original bytes for the chosen streams."""
    for stream in streams:
        fast = complete_only(blob, stream)
        if fast is not None:
            return fast
    return b"".join(r.raw for r in decode(blob) if r.stream in streams)


def count_records(blob: bytes) -> int:
    return blob.count(b"\n")


def tail_records(blob: bytes, n: int) -> bytes:
    """The last ``n`` records of a framed log."""
    if n <= 0:
        return b""
    cut = len(blob) - 1
    for _ in range(n):
        cut = blob.rfind(b"\n", 0, cut)
        if cut < 0:
            return blob
    return blob[cut + 1 :]


def is_merged(blob: bytes) -> bool:
    """Whether the first record of ``blob`` is of the merged stream (stdout and stderr not told apart)."""
    space = blob.find(b" ", 0, 21)
    return space > 0 and blob[space + 1 : space + 2] in (b"m", b"M")
