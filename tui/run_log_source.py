"""Where the run view's log comes from: the API, read in the order that paints fastest.

1. :meth:`RunLogSource.open` fetches the last :data:`TAIL_LINES` lines (the API reads only the
   chunks at the end), so the view paints at once however long the log is.
2. :meth:`RunLogSource.load_history` then streams the whole stored log into a second model in
   the background and swaps it in (with anything followed meanwhile appended), so search and
   filters see every line.
3. :meth:`RunLogSource.follow` follows new chunks of a run that is still going (binary frames,
   not base64 SSE), reconnecting from the next chunk after a drop: no gap, no duplicate.

No Textual here: the screen runs these in workers and tells the log widget what changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from control.client import AsyncControlClient, ConnectionFailed, DevyardError
from control.logformat import count_records
from tui.log_model import LogModel

TAIL_LINES = 2000
RECONNECT_MAX_S = 5.0


@dataclass(frozen=True)
class Appended:
    """Lines were appended to the current model."""

    lines: int


@dataclass(frozen=True)
class Ended:
    """The run finished and every chunk was received."""

    outcome: dict[str, Any]


@dataclass(frozen=True)
class Interrupted:
    """Following stopped for now (``retrying``) or for good; ``reason`` is one sentence."""

    reason: str
    retrying: bool


FollowItem = Appended | Ended | Interrupted


class RunLogSource:
    """A run's log, as one :class:`LogModel` that grows and is swapped for the full log once loaded."""

    def __init__(self, client: AsyncControlClient, run_id: int) -> None:
        self.client = client
        self.run_id = run_id
        self.model = LogModel()
        """What the view shows now."""
        self.complete = False
        """Whether :attr:`model` holds the whole log from the first line (not only its tail)."""
        self.last_seq = 0
        """The last chunk in :attr:`model`."""
        self._history_seq = 0
        self._since_tail: list[bytes] | None = None

    async def open(self) -> None:
        """Load the tail of the log."""
        data, seq = await self.client.read_logs(self.run_id, tail=TAIL_LINES)
        self.model = LogModel(data)
        self.last_seq = self._history_seq = seq
        self.complete = count_records(data) < TAIL_LINES
        self._since_tail = None if self.complete else []

    async def load_history(self) -> int:
        """Load the whole stored log up to the tail's chunk and make it the model; returns how
        many lines came before the tail (how far the view's rows moved down)."""
        if self.complete:
            return 0
        full = LogModel()
        async for piece in self.client.stream_logs(self.run_id, to_seq=self._history_seq):
            full.extend(piece)
        # No await from here on: follow() cannot append between the join and the swap.
        since = b"".join(self._since_tail or [])
        shift = len(full) - (len(self.model) - count_records(since))
        full.extend(since)
        self.model, self.complete, self._since_tail = full, True, None
        return max(shift, 0)

    async def follow(self) -> AsyncIterator[FollowItem]:
        """New lines of a run that is still going, until it ends."""
        delay = 0.25
        while True:
            try:
                async for event, seq, payload in self.client.follow_log_frames(self.run_id, self.last_seq + 1):
                    if event == "chunk":
                        if seq <= self.last_seq:
                            continue
                        self.last_seq = seq
                        if self._since_tail is not None:
                            self._since_tail.append(payload)
                        yield Appended(self.model.extend(payload))
                        delay = 0.25
                    elif event == "end":
                        yield Ended(json.loads(payload or b"{}"))
                        return
                    elif event == "error":
                        yield Interrupted(json.loads(payload or b"{}").get("message", "The log stream failed."), False)
                        return
                reason = "The log stream closed; reconnecting."
            except ConnectionFailed as exc:
                reason = f"{exc} Reconnecting."
            except DevyardError as exc:
                yield Interrupted(str(exc), False)
                return
            yield Interrupted(reason, True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
