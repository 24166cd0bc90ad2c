"""Telling the control API, as it happens, that a step started or ended.

Reports go out from a thread of their own, in order, so a quiet or unreachable API never holds
up the next step. They are a live view only: the outcome report at the end carries every
step's final state, so a report lost to an outage (or refused because the run already ended)
loses nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from control.workerclient import RequestRefused, Transient, WorkerApi

BACKOFF_MAX_S = 5.0


class StepReporter(threading.Thread):
    def __init__(self, api: WorkerApi) -> None:
        super().__init__(name="step-reports", daemon=True)
        self.api = api
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._closed = False

    def report(self, body: dict[str, Any]) -> None:
        if not self._closed:
            self._queue.put(dict(body))

    def close(self) -> None:
        """Send nothing more: the outcome report says it all from here."""
        self._closed = True
        self._queue.put(None)

    def run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            delay = 0.1
            while not self._closed:
                try:
                    self.api.step(body)
                    break
                except Transient:
                    time.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_S)
                except RequestRefused:
                    break
