"""``python -m devserver``: run one develop server for one workspace.

The secret arrives in a file (deleted once read) so it never shows in argv or the environment.
The server binds its own socket (port 0 = any free port), makes a certificate of its own next to
the ready file (devserver.tls; it always serves HTTPS) and writes ``{"port", "pid",
"fingerprint"}`` to the ready file once it accepts connections; the agent waits for that file,
then calls ``/health`` pinning that fingerprint, and reports both to the control plane.
SIGTERM stops it gracefully: running commands and shells are stopped, then it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

import uvicorn

from devserver.app import create_app
from devserver.paths import Workspace
from devserver.state import ServerState
from devserver.tls import make_certificate
from devserver.writer import remove_stale_temporaries

log = logging.getLogger("devyard.devserver")

SHUTDOWN_GRACE_S = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m devserver", description="Run a devyard develop server.")
    parser.add_argument("--workspace", required=True, type=Path, help="the workspace directory to serve")
    parser.add_argument("--secret-file", required=True, type=Path, help="file holding the bearer secret (deleted)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", default=0, type=int, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--ready-file", required=True, type=Path, help='written with {"port", "pid", "fingerprint"} when ready'
    )
    parser.add_argument("--log-file", type=Path, help="the file stderr goes to (served by GET /logs)")
    return parser.parse_args(argv)


def read_secret(path: Path) -> bytes:
    """The secret from ``path``, which is deleted right away."""
    try:
        secret = path.read_bytes().strip()
    finally:
        path.unlink(missing_ok=True)
    if not secret:
        raise ValueError(f"the secret file {path} is empty")
    return secret


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; with port 0 the kernel picks a free port, so no port is ever raced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto is
    # IPPROTO_TCP, and without it every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def write_ready(path: Path, port: int, fingerprint: str) -> None:
    """Write the ready file atomically (write a temporary file, rename it into place)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0600: it sits next to the server's secret in the agent's private state, and this process
    # runs with the users' umask.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"port": port, "pid": os.getpid(), "fingerprint": fingerprint}))
    os.replace(temp, path)


class DevServer(uvicorn.Server):
    """uvicorn's server, plus the ready file and stopping our process sessions on SIGTERM."""

    def __init__(
        self, config: uvicorn.Config, state: ServerState, ready_file: Path, port: int, fingerprint: str
    ) -> None:
        super().__init__(config)
        self.state = state
        self.ready_file = ready_file
        self.port = port
        self.fingerprint = fingerprint
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            write_ready(self.ready_file, self.port, self.fingerprint)
            log.info("develop server ready on port %d for %s", self.port, self.state.workspace.root)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in a signal handler: only hand the work to the event loop, which is safe here.
        if not self.should_exit and self.loop is not None:
            self.loop.call_soon_threadsafe(self.state.sessions.stop_all)
        super().handle_exit(sig, frame)


class _DenialNoise(logging.Filter):
    """Drops uvicorn's false alarm after a WebSocket denial response.

    uvicorn's websockets-sansio protocol logs "returned without completing handshake" even when
    the app answered the handshake with an HTTP response (our 401/400), which it sent correctly.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def _exit_quietly(sig: int, frame: FrameType | None) -> None:
    """Installed before uvicorn's handlers: uvicorn re-raises the signal once it has shut down,
    and this makes that a no-op, so a graceful SIGTERM stop exits 0 instead of dying by signal."""


def _clean_up(state: ServerState) -> None:
    removed = remove_stale_temporaries(state.root)
    if removed:
        log.info("removed %d temporary files left by an earlier server", removed)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    args = parse_args(argv)
    # No signal blocked, whatever the parent left blocked (the mask is inherited): SIGTERM must
    # stop this server, and the commands and shells it starts inherit the mask from here.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").addFilter(_DenialNoise())
    try:
        secret = read_secret(args.secret_file)
        args.workspace.mkdir(parents=True, exist_ok=True)
        sock = bind(args.host, args.port)
        # A new key at every start, in the agent's private folder for this server (0700).
        cert, key, fingerprint = make_certificate(args.ready_file.parent)
    except (OSError, ValueError) as exc:
        print(f"devserver: cannot start: {exc}", file=sys.stderr)
        return 2
    state = ServerState(Workspace(args.workspace), secret, log_file=args.log_file)
    # Files a killed predecessor was writing; in the background, so a big workspace does not
    # delay the start (this process's own temporary names are never touched).
    threading.Thread(target=_clean_up, args=(state,), name="temp-cleanup", daemon=True).start()
    config = uvicorn.Config(
        create_app(state),
        loop="asyncio",  # asyncio's subprocess spawn (vfork) beats uvloop's for short commands
        http="auto",
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # terminal traffic is small and latency-bound
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
    server = DevServer(config, state, args.ready_file, sock.getsockname()[1], fingerprint)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _exit_quietly)
    try:
        server.run(sockets=[sock])
    finally:
        state.sessions.kill_all()
    log.info("develop server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
