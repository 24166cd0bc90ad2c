"""Questions to the develop server sent before the local walk, answers read after it.

A no-change re-sync asks the develop server two things (has the workspace changed since this
manifest token? where are its git refs?) while it walks the local tree. Asked from threads, the
questions cost more than their answers: starting the threads, and above all the HTTP client's
Python work competing for the GIL with a walk that gives the GIL up at every ``lstat``, made the
walk 10-20 % slower. Here each question is written to its own connection up front, the server
answers while the walk runs (the reply waits in the socket), and the answers are read
afterwards: no thread, no GIL contention, and the round trips overlap the walk all the same.

A question is one GET through :mod:`control.transport` (standard library only: this module is
imported by ``yard sync``'s fast start, :mod:`tui.cli.quick_sync`).

Anything but a clean answer (no connection, an error status, a body that is not JSON) is
reported as ``None``: the caller then runs the full sync, which reports errors properly.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from control.transport import Connection, Unreachable
from control.trust import Trust, TrustProblem

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast start does without importing typing
if TYPE_CHECKING:
    from typing import Any

TIMEOUT_S = 30.0


class Question:
    """One GET sent to a develop server through the gateway; :meth:`answer` reads its reply."""

    def __init__(
        self,
        api_url: str,
        token: str,
        server_id: int,
        path: str,
        params: dict[str, str] | None,
        trust: Trust | None = None,
    ) -> None:
        self._connection: Connection | None = None  # None: the question could not be sent
        target = f"/api/v1/devservers/{server_id}/{path.lstrip('/')}"
        if params:
            target += "?" + urlencode(params)
        try:
            connection = Connection(api_url, token, timeout=TIMEOUT_S, trust=trust)
            connection.send("GET", target, last=True)
        except (Unreachable, ValueError, UnicodeEncodeError, TrustProblem):  # ValueError: not a usable URL
            return
        self._connection = connection

    def answer(self) -> tuple[int, Any] | None:
        """``(status, JSON body)``, or None if there was no usable answer."""
        if self._connection is None:
            return None
        try:
            status, body = self._connection.receive()
            return status, json.loads(body)
        except (Unreachable, ValueError):
            return None
        finally:
            self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
