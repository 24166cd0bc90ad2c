"""The exec output stream format: ``kind (1 byte) + length (4 bytes, big-endian) + payload``.

Kinds: ``o`` stdout bytes, ``e`` stderr bytes, ``!`` an error sentence (UTF-8), ``x`` the exit
code as ASCII decimal, always last. Pure functions, no web framework: the CLI imports this.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

STDOUT = b"o"
STDERR = b"e"
ERROR = b"!"
EXIT = b"x"
KINDS = frozenset({STDOUT, STDERR, ERROR, EXIT})

_HEADER = struct.Struct(">cI")
HEADER_SIZE = _HEADER.size
# One frame never needs to be bigger than a pipe read; a larger length means a corrupt stream.
MAX_PAYLOAD = 64 * 1024 * 1024


class FrameError(ValueError):
    """The byte stream is not a valid frame sequence."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame."""

    kind: bytes
    payload: bytes

    @property
    def exit_code(self) -> int:
        """The exit code carried by an ``x`` frame."""
        if self.kind != EXIT:
            raise FrameError("only an exit frame carries an exit code")
        return int(self.payload.decode("ascii"))

    @property
    def text(self) -> str:
        """The payload as text (for ``!`` frames; lenient for output)."""
        return self.payload.decode("utf-8", errors="replace")


def encode(kind: bytes, payload: bytes) -> bytes:
    """One frame as bytes."""
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind!r}")
    return _HEADER.pack(kind, len(payload)) + payload


def encode_exit(code: int) -> bytes:
    """The final frame carrying ``code``."""
    return encode(EXIT, str(code).encode("ascii"))


def encode_error(message: str) -> bytes:
    """A frame carrying one error sentence."""
    return encode(ERROR, message.encode("utf-8"))


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, get whole frames back."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.exit_code: int | None = None

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Frames completed by ``data`` (possibly none)."""
        self._buffer += data
        while len(self._buffer) >= HEADER_SIZE:
            kind, length = _HEADER.unpack_from(self._buffer)
            if kind not in KINDS:
                raise FrameError(f"unknown frame kind {kind!r}")
            if length > MAX_PAYLOAD:
                raise FrameError(f"frame of {length} bytes is larger than the {MAX_PAYLOAD} byte limit")
            end = HEADER_SIZE + length
            if len(self._buffer) < end:
                return
            frame = Frame(kind, bytes(self._buffer[HEADER_SIZE:end]))
            del self._buffer[:end]
            if frame.kind == EXIT:
                self.exit_code = frame.exit_code
            yield frame

    def close(self) -> None:
        """Check the stream ended cleanly: no partial frame, and an exit frame was seen."""
        if self._buffer:
            raise FrameError(f"stream ended inside a frame ({len(self._buffer)} bytes left over)")
        if self.exit_code is None:
            raise FrameError("stream ended without an exit frame")
