"""Ending a TCP connection with a reset, for both ends of a port forward (no imports of weight)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST), not an orderly end (FIN): the program on the other end must
    not take a stream that was cut short for a whole one."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
