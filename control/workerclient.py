"""The run worker's view of the control API, on :mod:`control.transport` (standard library only).

The worker starts once per run, so its import time is launch latency (``httpx`` alone costs
about 110 ms to import). This client speaks to the handful of worker routes with one keep-alive
connection and classifies failures as *transient* (retry: the API or the store is down) or
*refused* (a 4xx the worker cannot fix by retrying).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from control.transport import Connection, Unreachable, error_of
from control.trust import Trust


class Transient(Exception):
    """The API could not be reached or answered 5xx; try again later."""


class RequestRefused(Exception):
    """The API refused the request (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WorkerApi:
    def __init__(self, url: str, token: str, run_id: int, timeout: float = 15.0, trust: Trust | None = None) -> None:
        self._connection = Connection(url, token, timeout=timeout, agent="devyard-worker", trust=trust)
        self._base = f"/api/v1/runs/{run_id}"
        # One keep-alive connection shared by the worker's threads, one request at a time.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        length: int | None = None,
    ) -> Any:
        with self._lock:
            try:
                status, payload = self._connection.call(
                    method, self._base + path, body, content_type=content_type, length=length
                )
            except Unreachable as exc:
                raise Transient(str(exc)) from exc
        if status >= 500:
            self._connection.close()
            raise Transient(f"API answered {status}")
        if status >= 400:
            raise RequestRefused(status, error_of(status, payload)[1])
        return json.loads(payload) if payload else None

    def _json(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self._request(method, path, json.dumps(body).encode(), "application/json")

    def started(self, pid: int, started_at: str) -> Any:
        return self._json("POST", "/worker/started", {"pid": pid, "started_at": started_at})

    def step(self, body: dict[str, Any]) -> Any:
        return self._json("POST", "/worker/step", body)

    def heartbeat(self) -> None:
        self._request("POST", "/worker/heartbeat")

    def put_chunk(self, seq: int, data: bytes) -> Any:
        return self._request("PUT", f"/logs/{seq}", data, "application/octet-stream")

    def put_artifact(self, rel_path: str, file: Path) -> Any:
        with open(file, "rb") as handle:
            size = file.stat().st_size
            # A declared length lets the API stream the body to disk instead of buffering it.
            return self._request("PUT", f"/artifacts?path={quote(rel_path)}", handle, "application/octet-stream", size)

    def finish(self, body: dict[str, Any]) -> Any:
        return self._json("POST", "/worker/finish", body)
