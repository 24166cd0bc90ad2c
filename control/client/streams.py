"""Sans-IO decoders of the API's two streams, fed by the sync and the async client alike.

:class:`SSEDecoder` takes Server-Sent Events line by line (``/events``, followed logs);
:class:`LogFrameDecoder` takes the ``format=frames`` log stream in pieces that end anywhere:
``<event> <size> <seq> <lines>\\n`` then ``size`` payload bytes per frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LogFrame = tuple[str, int, bytes]
"""``(event, seq, payload)``: ``chunk`` with raw stored records, ``error`` or ``end`` with JSON."""


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


@dataclass
class SSEDecoder:
    """Incremental Server-Sent Events parser fed line by line."""

    _event: SSEEvent = field(default_factory=SSEEvent)
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data and self._event.id is None:
                self._event = SSEEvent()
                return None
            done = self._event
            done.data = "\n".join(self._data)
            self._event, self._data = SSEEvent(), []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event.event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._event.id = value
        return None


@dataclass
class LogFrameDecoder:
    """Incremental decoder of the ``format=frames`` log stream; keepalive frames are dropped."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, piece: bytes) -> Iterator[LogFrame]:
        """The frames ``piece`` completes (possibly none); a partial frame waits for more."""
        buffer = self._buffer
        buffer += piece
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                return
            event, size, seq, _lines = bytes(buffer[:newline]).split()
            end = newline + 1 + int(size)
            if len(buffer) < end:
                return
            payload = bytes(buffer[newline + 1 : end])
            del buffer[:end]
            if event != b"keepalive":
                yield event.decode(), int(seq), payload
