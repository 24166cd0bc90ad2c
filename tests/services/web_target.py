"""A web app to preview, run inside a develop server: ``python web_target.py STATE_DIR``.

It serves HTTP on one free port and a WebSocket echo on another, and writes
``{"http", "ws", "pid"}`` to ``STATE_DIR/ready.json``. HTTP paths:
- ``/headers``: the request's method, path, headers and body as JSON (what the app was given);
- ``/redirect``: 302 to ``/landing``; ``/absolute``: 302 to ``http://localhost:PORT/landing``;
- ``/cookie``: sets ``flavour=oat; Path=/``;
- anything else: a small HTML page with a relative link.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        port = int(self.server.server_address[1])  # type: ignore[index]
        if self.path == "/redirect":
            self._send(302, b"", [("Location", "/landing")])
        elif self.path == "/absolute":
            self._send(302, b"", [("Location", f"http://localhost:{port}/landing")])
        elif self.path == "/cookie":
            self._send(200, b"ok", [("Set-Cookie", "flavour=oat; Path=/")])
        elif self.path.startswith("/headers"):
            shown = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            self._send(200, json.dumps(shown).encode(), [("Content-Type", "application/json")])
        else:
            page = b'<html><body><a href="headers">headers</a></body></html>'
            self._send(200, page, [("Content-Type", "text/html")])

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


async def websocket_echo(ready: asyncio.Future[int]) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        ready.set_result(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


def main() -> None:
    state = Path(sys.argv[1])
    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()

    async def run() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(websocket_echo(ready))
        ws_port = await ready
        info = {"http": http.server_address[1], "ws": ws_port, "pid": os.getpid()}
        (state / "ready.tmp").write_text(json.dumps(info))
        os.replace(state / "ready.tmp", state / "ready.json")
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
