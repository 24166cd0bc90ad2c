"""The run worker's view of the control API, on the standard library only.

The worker starts once per run, so its import time is launch latency: ``httpx`` alone costs
about 110 ms to import, ``http.client`` a few. This client speaks to the handful of worker
routes with one keep-alive connection and classifies failures as *transient* (retry: the API
or the store is down) or *refused* (a 4xx the worker cannot fix by retrying).
"""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit


class Transient(Exception):
    """The API could not be reached or answered 5xx; try again later."""


class RequestRefused(Exception):
    """The API refused the request (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WorkerApi:
    def __init__(self, url: str, token: str, run_id: int, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._https = parts.scheme == "https"
        self._base = parts.path.rstrip("/") + f"/api/v1/runs/{run_id}"
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "devyard-worker"}
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        # One keep-alive connection shared by the worker's threads, one request at a time.
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | Any = None,
        content_type: str | None = None,
        length: int | None = None,
    ) -> Any:
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        with self._lock:
            return self._send(method, path, body, headers)

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        try:
            conn = self._connection()
            conn.request(method, self._base + path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            raise Transient(f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 500:
            self.close()
            raise Transient(f"API answered {response.status}")
        if response.status >= 400:
            try:
                message = json.loads(payload)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"API answered {response.status}"
            raise RequestRefused(response.status, message)
        return json.loads(payload) if payload else None

    def _json(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self._request(method, path, json.dumps(body).encode(), "application/json")

    def started(self, pid: int, started_at: str) -> Any:
        return self._json("POST", "/worker/started", {"pid": pid, "started_at": started_at})

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
