"""The worker's local spool: every framed record is appended here before it is shipped.

The spool is the source of truth while the run lives. Shipping reads ranges back from it, so
if the API or the object store is down the command keeps running, the file grows, and the
backlog goes out in order once they are back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class Spool:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._reader = open(path, "rb")  # noqa: SIM115 - lives as long as the spool
        self._size = os.fstat(self._fd).st_size
        self._closed = False
        self.changed = threading.Condition()
        self.lines = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, framed: bytes) -> None:
        """Append whole records (each ends with a newline) and wake the shipper."""
        if not framed:
            return
        with self.changed:
            os.write(self._fd, framed)
            self._size += len(framed)
            self.lines += framed.count(b"\n")
            self.changed.notify_all()

    def read(self, start: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``start``, cut at the last whole record."""
        with self.changed:
            end = min(self._size, start + limit)
        self._reader.seek(start)
        data = self._reader.read(end - start)
        cut = data.rfind(b"\n")
        if cut < 0:
            # One record longer than the limit: ship it whole rather than split it.
            self._reader.seek(start)
            data = self._reader.read(self._size - start)
            cut = data.find(b"\n")
        return data[: cut + 1]

    def close(self) -> None:
        """No more records will come; the shipper drains what is left."""
        with self.changed:
            self._closed = True
            self.changed.notify_all()

    def release(self) -> None:
        os.close(self._fd)
        self._reader.close()
