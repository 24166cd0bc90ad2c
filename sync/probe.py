"""Questions to the develop server sent before the local walk, answers read after it.

A no-change re-sync asks the develop server two things (has the workspace changed since this
manifest token? where are its git refs?) while it walks the local tree. Asked from threads, the
questions cost more than their answers: starting the threads, and above all the HTTP client's
Python work competing for the GIL with a walk that gives the GIL up at every ``lstat``, made the
walk 10-20 % slower. Here each question is written to its own connection up front (the
standard library's ``http.client`` sends on ``request()`` and reads on ``getresponse()``), the
server answers while the walk runs, and the answers are read afterwards: no thread, no GIL
contention, and the round trips overlap the walk all the same.

Anything but a clean answer (no connection, an error status, a body that is not JSON) is
reported as ``None``: the caller then runs the full sync, which reports errors properly.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

TIMEOUT_S = 30.0


class Question:
    """One GET sent to a develop server through the gateway; :meth:`answer` reads its reply."""

    def __init__(self, api_url: str, token: str, server_id: int, path: str, params: dict[str, str] | None) -> None:
        self._connection: http.client.HTTPConnection | None = None  # None: the question could not be sent
        url = urlsplit(api_url)
        target = f"{url.path.rstrip('/')}/api/v1/devservers/{server_id}/{path.lstrip('/')}"
        if params:
            target += "?" + urlencode(params)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        try:
            connection = kind(url.hostname or "127.0.0.1", url.port, timeout=TIMEOUT_S)
            connection.request(
                "GET", target, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
        except (OSError, http.client.HTTPException):
            return
        self._connection = connection

    def answer(self) -> tuple[int, Any] | None:
        """``(status, JSON body)``, or None if there was no usable answer."""
        connection = self._connection
        if connection is None:
            return None
        try:
            response = connection.getresponse()
            body = response.read()
            return response.status, json.loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            connection.close()
            self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
