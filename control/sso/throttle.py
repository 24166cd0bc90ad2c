"""Guessing user codes (RFC 8628 section 5.1): each client address may type a few wrong ones.

A user code has about 34 bits (8 letters of 20); whoever guesses a waiting one could sign their
own identity into someone else's terminal. So after :data:`MAX_WRONG` wrong codes within
:data:`WINDOW_S`, an address gets no more answers until the window has passed. Per API process,
in memory: a replica restarts the count, which still leaves guessing hopeless.
"""

from __future__ import annotations

import threading
import time

MAX_WRONG = 10
WINDOW_S = 300.0
MAX_ADDRESSES = 10_000


class WrongCodes:
    """Recent wrong user codes per client address."""

    def __init__(self, max_wrong: int = MAX_WRONG, window_s: float = WINDOW_S) -> None:
        self.max_wrong = max_wrong
        self.window_s = window_s
        self._times: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address)) >= self.max_wrong

    def wrong(self, address: str) -> None:
        with self._lock:
            if len(self._times) >= MAX_ADDRESSES:
                self._times.clear()
            self._times[address] = [*self._recent(address), time.monotonic()]

    def _recent(self, address: str) -> list[float]:
        since = time.monotonic() - self.window_s
        return [t for t in self._times.get(address, ()) if t > since]
