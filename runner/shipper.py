"""Ship the spool to the control API as numbered chunks, in order, retrying forever.

Flushing adapts to the output: when the command is quiet every record goes out at once (one
small chunk), and while a chunk is in flight new output accumulates, so under load chunks grow
up to ``MAX_CHUNK`` and the number of requests stays small. A chunk's bytes are fixed when it is
first cut, so a retry after a timeout sends the very same bytes under the same sequence number
and the API recognises it: lines are never lost and never duplicated.
"""

from __future__ import annotations

import threading
import time

from control.workerclient import RequestRefused, Transient, WorkerApi
from runner.spool import Spool

MAX_CHUNK = 4 * 1024 * 1024
HEARTBEAT_S = 5.0
BACKOFF_MAX_S = 5.0


class Shipper(threading.Thread):
    def __init__(self, spool: Spool, api: WorkerApi, start_seq: int = 0) -> None:
        super().__init__(name="shipper", daemon=True)
        self.spool = spool
        self.api = api
        self.seq = start_seq
        self.offset = 0
        self.error: str | None = None
        self.outage_started: float | None = None
        self.give_up_at: float | None = None
        """Set when the worker is told to stop after its command ended: stop retrying then."""
        self._last_contact = time.monotonic()

    def run(self) -> None:
        backoff = 0.05
        while True:
            with self.spool.changed:
                while self.offset >= self.spool.size and not self.spool.closed:
                    if not self.spool.changed.wait(HEARTBEAT_S):
                        break
                drained = self.offset >= self.spool.size
                done = drained and self.spool.closed
            if done:
                return
            if drained:
                self._heartbeat()
                continue
            chunk = self.spool.read(self.offset, MAX_CHUNK)
            while True:
                try:
                    self.api.put_chunk(self.seq + 1, chunk)
                    break
                except Transient as exc:
                    self.outage_started = self.outage_started or time.monotonic()
                    self.error = str(exc)
                    if self.give_up_at is not None and time.monotonic() > self.give_up_at:
                        return  # the spool stays on disk; the outcome report says what is missing
                    time.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                except RequestRefused as exc:
                    # The API will never accept this chunk (e.g. the run was deleted); keep the
                    # spool on disk and stop shipping rather than spin.
                    self.error = str(exc)
                    return
            self.seq += 1
            self.offset += len(chunk)
            self.outage_started, self.error, backoff = None, None, 0.05
            self._last_contact = time.monotonic()

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_contact < HEARTBEAT_S:
            return
        try:
            self.api.heartbeat()
            self._last_contact = time.monotonic()
        except (Transient, RequestRefused):
            pass
