"""A run's stored log held in memory for the log viewer: indexing, search and filters.

The log is kept as it arrives from the API, framed records (``control.logformat``), in blocks
of about 64 KiB cut at record boundaries. Each block knows how many lines it holds, so finding
line *n* is a bisect over the blocks and a split of one block (cached), and nothing about a
line is decoded until it is shown. A million-line log costs its bytes plus a few kilobytes of
index; searching it is ``bytes.find`` over the blocks, at C speed, with Python touching only the
blocks that contain the needle.

A line is what a terminal would show as one line: pieces of a line stored as partial records
(a progress bar that paused, see ``control.logformat``) are joined into one line as they arrive,
so ``\r`` rewrites show their final state instead of one row per piece. Until its newline comes,
a line being drawn is the model's last line and is replaced as it grows (``generation`` moves).

This module never imports Textual: the widget (``tui.widgets.log_view``) only reads from it.
"""

from __future__ import annotations

import contextlib
import re
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

from control.logformat import STEP, is_merged

BLOCK_BYTES = 64 * 1024
JOIN_LIMIT = 256 * 1024
"""A line stored in pieces is joined up to this size; beyond it, the pieces are rows of their own."""
PARTIAL_TAG = b" M "
"""Partial records of merged logs; older logs' partial stdout/stderr pieces (``O``/``E``) stay rows
of their own, which spares a second and third pass over every block that arrives."""
STEP_TAG = b" s "
"""Step markers (``control.logformat.STEP``): where each step of a run of several starts."""
SPLIT_CACHE_BLOCKS = 48
ERROR_PATTERN = re.compile(rb"(?i)\b(error|errors|exception|traceback|fatal|failed|failure|panic)\b")


class LogLine(NamedTuple):
    """One record, decoded only as far as the viewer needs it."""

    ts_ms: int
    stream: str
    """``m`` (stdout and stderr read in order through one channel), or ``o`` / ``e`` in older logs."""
    complete: bool
    """False for a piece of a line that was flushed without a newline."""
    text: bytes
    """The bytes the command wrote, ANSI escapes included, without the newline."""


def parse_record(raw: bytes) -> LogLine:
    """Decode one framed record (without its newline); anything malformed is shown as stdout."""
    space = raw.find(b" ")
    if space > 0 and raw[space + 2 : space + 3] == b" " and raw[:space].isdigit():
        stream = raw[space + 1 : space + 2].decode("ascii", "replace")
        return LogLine(int(raw[:space]), stream.lower(), stream.islower(), raw[space + 3 :])
    return LogLine(0, "o", True, raw)


def _text_start(raw: bytes) -> int:
    """Where the command's bytes begin inside a framed record."""
    return raw.find(b" ") + 3


def _smart_case(needle: str) -> tuple[bytes, bool]:
    """Like vim's smartcase: a needle with a capital letter is case-sensitive."""
    sensitive = needle != needle.lower()
    return (needle if sensitive else needle.lower()).encode("utf-8", "surrogateescape"), sensitive


class LogModel:
    """Framed log records in blocks, with line lookup, search and filtering."""

    def __init__(self, data: bytes = b"") -> None:
        self._blocks: list[bytes] = []
        self._lower: list[bytes | None] = []
        # Caches are keyed by a block's length too: the last block grows as a followed log
        # arrives, and a filter reading in a worker thread must never keep a stale copy.
        self._first_line = array("q")
        self._line_count = 0
        self._byte_count = 0
        self._pending = b""
        self._split_cache: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        self._open_line = False
        """The last line is a partial record: the next records may continue it."""
        self.generation = 0
        """Bumped whenever existing lines change (not when lines are appended)."""
        if data:
            self.extend(data)

    # ---------------------------------------------------------------- building

    def extend(self, data: bytes) -> int:
        """Append framed records (a trailing partial record waits for the rest); returns lines added."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self._pending = data[end:]
            data = data[:end]
        if not data:
            return 0
        before = self._line_count
        if self._open_line or PARTIAL_TAG in data:
            data = self._join(self._take_open_line() + data)
        pos = 0
        # Grow a small last block rather than keep many tiny ones (a followed log arrives in
        # small chunks); a block that changes drops its cached split and lowered copy.
        if self._blocks and len(self._blocks[-1]) + len(data) <= BLOCK_BYTES:
            last = len(self._blocks) - 1
            added = data.count(b"\n")
            self._blocks[last] += data
            self._line_count += added
            self._byte_count += len(data)
            return self._line_count - before
        while pos < len(data):
            cut = data.rfind(b"\n", pos, pos + BLOCK_BYTES) + 1
            if cut <= pos:
                cut = data.find(b"\n", pos + BLOCK_BYTES) + 1 or len(data)
            block = data[pos:cut]
            self._first_line.append(self._line_count)
            self._blocks.append(block)
            self._lower.append(None)
            self._line_count += block.count(b"\n")
            self._byte_count += len(block)
            pos = cut
        return self._line_count - before

    def _take_open_line(self) -> bytes:
        """Remove the last line when it is still being drawn, and return its framed record."""
        if not self._open_line:
            return b""
        self._open_line = False
        last = len(self._blocks) - 1
        block = self._blocks[last]
        start = block.rfind(b"\n", 0, len(block) - 1) + 1
        self._blocks[last] = block[:start]
        self._line_count -= 1
        self._byte_count -= len(block) - start
        if not self._blocks[last]:
            self._blocks.pop()
            self._lower.pop()
            self._first_line.pop()
        self.generation += 1
        return block[start:]

    def _join(self, data: bytes) -> bytes:
        """``data`` with each partial record joined to the records that continue its line."""
        out: list[bytes] = []
        carry: tuple[bytes, bytes, bytearray] | None = None  # time, stream, text of an unfinished line
        for raw in data.split(b"\n")[:-1]:
            space = raw.find(b" ")
            tag = raw[space + 1 : space + 2]
            if space <= 0 or raw[space + 2 : space + 3] != b" ":
                tag = b""
            text = raw[space + 3 :]
            if carry is not None and tag.lower() == carry[1] and len(carry[2]) + len(text) <= JOIN_LIMIT:
                carry[2].extend(text)
                if tag.islower():
                    out.append(carry[0] + b" " + tag + b" " + bytes(carry[2]))
                    carry = None
                continue
            if carry is not None:
                out.append(carry[0] + b" " + carry[1].upper() + b" " + bytes(carry[2]))
                carry = None
            if tag == b"M":
                carry = (raw[:space], b"m", bytearray(text))
            else:
                out.append(raw)
        if carry is not None:
            out.append(carry[0] + b" " + carry[1].upper() + b" " + bytes(carry[2]))
            self._open_line = len(carry[2]) < JOIN_LIMIT
        return b"\n".join(out) + b"\n" if out else b""

    # ---------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self._line_count

    @property
    def merged(self) -> bool:
        """Whether stdout and stderr were captured through one channel: the log keeps their
        order but cannot tell them apart, so a stream filter has nothing to split."""
        return bool(self._blocks) and is_merged(self._blocks[0])

    @property
    def byte_count(self) -> int:
        """Bytes of framed records held."""
        return self._byte_count

    def raw(self, index: int) -> bytes:
        """The framed record of line ``index`` (no newline)."""
        block = bisect_right(self._first_line, index) - 1
        if block < 0 or index >= self._line_count:
            raise IndexError(index)
        return self._split(block)[index - self._first_line[block]]

    def line(self, index: int) -> LogLine:
        """Line ``index``, decoded."""
        return parse_record(self.raw(index))

    def _split(self, block: int) -> list[bytes]:
        data = self._blocks[block]
        key = (block, len(data))
        cache = self._split_cache
        lines = cache.get(key)
        if lines is None:
            lines = data.split(b"\n")
            lines.pop()
            cache[key] = lines
            while len(cache) > SPLIT_CACHE_BLOCKS:
                with contextlib.suppress(KeyError):  # another thread trimmed it first
                    cache.popitem(last=False)
        return lines

    def _haystack(self, block: int, sensitive: bool) -> bytes:
        data = self._blocks[block]
        if sensitive:
            return data
        lowered = self._lower[block]
        if lowered is None or len(lowered) != len(data):
            lowered = self._lower[block] = data.lower()
        return lowered

    # ---------------------------------------------------------------- search

    def _walk(self, start: int, backwards: bool) -> Iterable[tuple[int, int, int]]:
        """``(block, first, last)`` stretches covering every line once, beginning next to
        ``start`` and wrapping around the end (or the beginning, ``backwards``)."""
        count = self._line_count
        if backwards:
            stretches = [(start - 1, 0), (count - 1, max(start, 0))]
        else:
            stretches = [(start + 1, count - 1), (0, min(start, count - 1))]
        for first, last in stretches:
            if (first > last) if not backwards else (first < last):
                continue
            if not 0 <= first < count:
                continue
            yield from self._blocks_between(first, last, backwards)

    def _blocks_between(self, first: int, last: int, backwards: bool) -> Iterable[tuple[int, int, int]]:
        step = -1 if backwards else 1
        block = bisect_right(self._first_line, first) - 1
        index = first
        while (index <= last) if not backwards else (index >= last):
            block_first = self._first_line[block]
            block_last = self._first_line[block + 1] - 1 if block + 1 < len(self._blocks) else self._line_count - 1
            stop = min(last, block_last) if not backwards else max(last, block_first)
            yield block, index, stop
            index = stop + step
            block += step

    def find(
        self, needle: str, start: int, *, backwards: bool = False, allowed: VisibleLines | None = None
    ) -> int | None:
        """The first line after ``start`` (before it, ``backwards``) whose text contains ``needle``,
        wrapping around; None when no line does. Smart case; only ``allowed`` lines count."""
        if not needle or not self._line_count:
            return None
        pattern, sensitive = _smart_case(needle)
        step = -1 if backwards else 1
        for block, first, last in self._walk(start, backwards):
            # The block test runs at C speed; Python looks at lines only where the needle is.
            if pattern not in self._haystack(block, sensitive):
                continue
            lines = self._split(block)
            base = self._first_line[block]
            for index in range(first, last + step, step):
                raw = lines[index - base]
                text = raw[_text_start(raw) :]
                if pattern in (text if sensitive else text.lower()) and (allowed is None or index in allowed):
                    return index
        return None

    def step_starts(self) -> dict[int, int]:
        """Step number (1 = the first) → the line of its step marker, for the markers loaded so far
        (a run of one command has none). A block without a marker costs one ``bytes.find``."""
        found: dict[int, int] = {}
        for block, data in enumerate(self._blocks):
            if STEP_TAG not in data:
                continue
            base = self._first_line[block]
            for at, raw in enumerate(self._split(block)):
                line = parse_record(raw)
                if line.stream == STEP:
                    number = line.text.split(b"/", 1)[0]
                    if number.isdigit():
                        found[int(number)] = base + at
        return found

    def first_error(self, after: int = -1, allowed: VisibleLines | None = None) -> int | None:
        """The next line after ``after`` that looks like an error (wrapping around); else the first
        stderr line; None when neither exists."""
        if not self._line_count:
            return None
        for block, first, last in self._walk(min(after, self._line_count - 1), False):
            if not ERROR_PATTERN.search(self._blocks[block]):
                continue
            lines = self._split(block)
            base = self._first_line[block]
            for index in range(first, last + 1):
                raw = lines[index - base]
                if ERROR_PATTERN.search(raw, _text_start(raw)) and (allowed is None or index in allowed):
                    return index
        for index in self.matching(streams="e"):
            if allowed is None or index in allowed:
                return int(index)
        return None

    def matching(self, needle: str = "", streams: str = "oe", start: int = 0, stop: int | None = None) -> array[int]:
        """Indices of the lines in ``[start, stop)`` of ``streams`` whose text contains ``needle``."""
        stop = self._line_count if stop is None else min(stop, self._line_count)
        out = array("q")
        if start >= stop:
            return out
        pattern, sensitive = _smart_case(needle) if needle else (b"", True)
        stream_codes = {ord(s) for s in streams} | {ord(s.upper()) for s in streams}
        every_stream = set(streams) >= {"o", "e"}
        first_block = bisect_right(self._first_line, start) - 1
        last_block = bisect_right(self._first_line, stop - 1) - 1
        for block in range(first_block, last_block + 1):
            if pattern and pattern not in self._haystack(block, sensitive):
                continue
            base = self._first_line[block]
            lines = self._split(block)
            low, high = max(start - base, 0), min(stop - base, len(lines))
            if not pattern and (
                every_stream or (b" e " not in self._blocks[block] and b" E " not in self._blocks[block])
            ):
                # No stderr record in the block (the test is at C speed): all or nothing.
                if every_stream or "o" in streams:
                    out.extend(range(base + low, base + high))
                continue
            for at in range(low, high):
                raw = lines[at]
                cut = raw.find(b" ")
                if not every_stream and raw[cut + 1] not in stream_codes:
                    continue
                if pattern:
                    text = raw[cut + 3 :]
                    if pattern not in (text if sensitive else text.lower()):
                        continue
                out.append(base + at)
        return out


class VisibleLines:
    """The lines a filter lets through: a sorted array of line indices with fast membership."""

    def __init__(self, indices: array[int] | None = None) -> None:
        self.indices: array[int] = indices if indices is not None else array("q")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, row: int) -> int:
        return self.indices[row]

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        at = bisect_right(self.indices, index) - 1
        return at >= 0 and self.indices[at] == index

    def row_of(self, index: int) -> int:
        """The row showing line ``index``, or the row of the nearest line before it."""
        return max(bisect_right(self.indices, index) - 1, 0)

    def extend(self, indices: array[int]) -> None:
        self.indices.extend(indices)

    def drop_from(self, index: int) -> None:
        """Forget the lines from ``index`` on (they changed and are matched again)."""
        del self.indices[bisect_right(self.indices, index - 1) :]
