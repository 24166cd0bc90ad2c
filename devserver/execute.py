"""``POST /exec``: run a command in the workspace and stream its output as frames.

The command runs as the leader of a new session, so a timeout, a client hang-up or a server
shutdown can stop everything it started. Output is framed as it arrives (no waiting for exit);
when the client reads slower than the command writes, the pipes are paused instead of buffering
without limit. With ``tty`` the command's stdout and stderr are one pseudo-terminal of the given
size (output processing off, so the bytes are the command's), framed as stdout. ``stdin_b64``
(or ``stdin`` text) is written to the command's stdin, which is then closed (EOF).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import subprocess
import termios
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from control.wire import frames
from devserver.payload import bad_request, json_object, number, text, text_list, text_map
from devserver.processes import KILL_GRACE_S, Sessions
from devserver.responses import ApiError, wait_for_disconnect
from devserver.state import ServerState

log = logging.getLogger("devyard.devserver")

MEDIA_TYPE = "application/x-devyard-frames"
EXIT_TIMEOUT = 124
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127
# Pause the pipes when this much output is waiting for a slow client.
HIGH_WATER = 1024 * 1024
# After the command exits, how long to wait for background processes still holding its pipes.
PIPES_GRACE_S = 0.5

# Tasks that close the transports of commands whose client went away (kept so they are not collected).
_reapers: set[asyncio.Future[None]] = set()


class ExecApi:
    """``POST /exec``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [Route("/exec", self.execute, methods=["POST"])]

    async def execute(self, request: Request) -> Response:
        """Validate the request, then stream the command's frames."""
        body = await json_object(request)
        argv = text_list(body, "argv", required=True)
        assert argv is not None
        if any("\x00" in arg for arg in argv):
            raise ApiError(400, "bad_request", "'argv' items must not contain NUL bytes.")
        cwd_path = text(body, "cwd") or ""
        cwd = self.state.workspace.resolve(cwd_path, allow_root=True)
        if not os.path.isdir(cwd):
            raise ApiError(400, "bad_cwd", f"The working directory {cwd_path!r} is not a directory in the workspace.")
        command = Command(
            argv=argv,
            cwd=cwd,
            env=self.state.child_environment(text_map(body, "env")),
            timeout_s=number(body, "timeout_s"),
            stdin=_stdin(body),
            tty=_tty(body),
        )
        return ExecResponse(self.state, command)


def _stdin(body: dict[str, object]) -> bytes | None:
    encoded = text(body, "stdin_b64")
    if encoded is not None:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("'stdin_b64' is not valid base64.") from None
    plain = text(body, "stdin")
    return plain.encode("utf-8") if plain is not None else None


def _tty(body: dict[str, object]) -> tuple[int, int] | None:
    """``(rows, columns)`` of the pseudo-terminal asked for, or None."""
    tty = body.get("tty")
    if tty is None or tty is False:
        return None
    if tty is True:
        return 40, 120
    if not isinstance(tty, dict) or not all(
        isinstance(tty.get(key), int) and not isinstance(tty.get(key), bool) and 1 <= tty[key] <= 1000
        for key in ("cols", "rows")
    ):
        raise bad_request('\'tty\' must be true or {"cols": 1-1000, "rows": 1-1000}.')
    return int(tty["rows"]), int(tty["cols"])


class Command:
    """What to run."""

    def __init__(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        timeout_s: float | None,
        stdin: bytes | None,
        tty: tuple[int, int] | None = None,
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.timeout_s = timeout_s
        self.stdin = stdin
        self.tty = tty
        """``(rows, columns)`` of a pseudo-terminal for stdout and stderr, or None for two pipes."""


class OutputFramer(asyncio.SubprocessProtocol):
    """Turns pipe output into frames as it arrives and wakes the sender."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.wakeup = asyncio.Event()
        self.exit_event = asyncio.Event()
        self.client_gone = False
        self.open_pipes = 2
        self.transport: asyncio.SubprocessTransport | None = None
        self.terminal: asyncio.ReadTransport | None = None
        """The pseudo-terminal's master when the command has one (its output arrives there)."""
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self.pending.append(frames.encode(frames.STDOUT if fd == 1 else frames.STDERR, data))
        self.pending_bytes += len(data)
        if self.pending_bytes > HIGH_WATER and not self._paused:
            self._set_paused(True)
        self.wakeup.set()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in (1, 2):
            self.open_pipes -= 1
            self.wakeup.set()

    @property
    def exited(self) -> bool:
        """Whether the command (the session leader) has exited."""
        return self.exit_event.is_set()

    def process_exited(self) -> None:
        self.exit_event.set()
        self.wakeup.set()

    def take(self) -> bytes:
        """All frames waiting to be sent, as one chunk."""
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        if self._paused:
            self._set_paused(False)
        return data

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        assert self.transport is not None
        pipes = [self.transport.get_pipe_transport(fd) for fd in (1, 2)] + [self.terminal]
        for pipe in pipes:
            if isinstance(pipe, asyncio.ReadTransport) and not pipe.is_closing():
                if paused:
                    pipe.pause_reading()
                else:
                    pipe.resume_reading()


class TerminalOutput(asyncio.Protocol):
    """The master side of the command's pseudo-terminal, fed to the framer as stdout. Reading it
    fails with EIO once every holder of the terminal closed it: that is its end of output."""

    def __init__(self, framer: OutputFramer) -> None:
        self.framer = framer

    def data_received(self, data: bytes) -> None:
        self.framer.pipe_data_received(1, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.framer.pipe_connection_lost(1, None)


def open_terminal(rows: int, cols: int) -> tuple[int, int]:
    """``(master, slave)`` of a pseudo-terminal of that size, output processing off (no
    ``\\n`` → ``\\r\\n``: the bytes the command writes are the bytes sent)."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~(termios.OPOST | termios.ONLCR)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    termios.tcsetwinsize(slave, (rows, cols))
    return master, slave


class ExecResponse(Response):
    """Runs the command while streaming, so output goes out as it is produced."""

    def __init__(self, state: ServerState, command: Command) -> None:
        self.state = state
        self.command = command
        self.status_code = 200
        self.background = None
        self.init_headers({"content-type": MEDIA_TYPE, "cache-control": "no-store"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        started = time.perf_counter()
        try:
            code = await self._run(receive, send)
        except _ClientGone:
            log.info("exec %s: client went away after %.1f ms", self.command.argv[0], _ms(started))
            return
        await send({"type": "http.response.body", "body": frames.encode_exit(code), "more_body": False})
        log.info(
            "exec %s (%d args): exit %d in %.1f ms", self.command.argv[0], len(self.command.argv), code, _ms(started)
        )

    async def _run(self, receive: Receive, send: Send) -> int:
        loop = asyncio.get_running_loop()
        command = self.command
        master, slave = open_terminal(*command.tty) if command.tty else (None, None)
        env = {**command.env, "TERM": command.env.get("TERM", "xterm-256color")} if command.tty else command.env
        try:
            transport, framer = await loop.subprocess_exec(
                OutputFramer,
                *command.argv,
                cwd=command.cwd,
                env=env,
                stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
                stdout=slave if slave is not None else subprocess.PIPE,
                stderr=slave if slave is not None else subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            _close(master)
            await _send_error(send, f"Command not found: {command.argv[0]}.")
            return EXIT_NOT_FOUND
        except OSError as exc:
            _close(master)
            await _send_error(send, f"Cannot run {command.argv[0]}: {exc.strerror or exc}.")
            return EXIT_CANNOT_RUN
        finally:
            _close(slave)
        if master is not None:
            framer.open_pipes = 1
            reader = os.fdopen(master, "rb", buffering=0)
            framer.terminal, _ = await loop.connect_read_pipe(lambda: TerminalOutput(framer), reader)
        sid = transport.get_pid()
        self.state.sessions.add(sid)
        if command.stdin is not None:
            stdin = transport.get_pipe_transport(0)
            assert isinstance(stdin, asyncio.WriteTransport)
            stdin.write(command.stdin)
            stdin.write_eof()
        watcher = asyncio.ensure_future(_set_on_disconnect(receive, framer))
        try:
            timed_out = await self._pump(sid, framer, send)
        except BaseException:
            # The client is gone (or the server is stopping): stop the command, reap it later.
            self.state.sessions.stop(sid)
            reaper = asyncio.ensure_future(_close_after_exit(transport, framer, self.state.sessions))
            _reapers.add(reaper)
            reaper.add_done_callback(_reapers.discard)
            raise
        finally:
            watcher.cancel()
        self.state.sessions.discard(sid)
        transport.close()
        if framer.terminal is not None:
            framer.terminal.close()
        code = transport.get_returncode()
        if timed_out:
            # Said in words: exit code 124 alone looked like the command's own failure.
            await _send_error(
                send,
                f"Timed out: {self.command.argv[0]} ran longer than {self.command.timeout_s:g} s and was stopped.",
            )
            return EXIT_TIMEOUT
        assert code is not None
        return 128 - code if code < 0 else code

    async def _pump(self, sid: int, framer: OutputFramer, send: Send) -> bool:
        """Send output until the command has exited and its pipes are drained; True if it timed out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.command.timeout_s if self.command.timeout_s else None
        timed_out = False
        pipes_deadline: float | None = None
        while True:
            framer.wakeup.clear()
            if framer.client_gone:
                raise _ClientGone
            if framer.pending:
                await send({"type": "http.response.body", "body": framer.take(), "more_body": True})
            if framer.exited:
                if framer.open_pipes <= 0 and not framer.pending:
                    return timed_out
                pipes_deadline = pipes_deadline or loop.time() + PIPES_GRACE_S
                if loop.time() >= pipes_deadline and not framer.pending:
                    return timed_out
            if deadline is not None and not timed_out and loop.time() >= deadline:
                timed_out = True
                log.info("exec %s: timed out after %.1f s", self.command.argv[0], self.command.timeout_s)
                self.state.sessions.stop(sid)
            wake_at = min((t for t in (None if timed_out else deadline, pipes_deadline) if t is not None), default=None)
            try:
                async with asyncio.timeout_at(wake_at):
                    await framer.wakeup.wait()
            except TimeoutError:
                pass


class _ClientGone(Exception):
    """The client disconnected mid-stream."""


async def _set_on_disconnect(receive: Receive, framer: OutputFramer) -> None:
    await wait_for_disconnect(receive)
    framer.client_gone = True
    framer.wakeup.set()


async def _close_after_exit(transport: asyncio.SubprocessTransport, framer: OutputFramer, sessions: Sessions) -> None:
    """Release the transport once the stopped command has exited (SIGKILL follows the grace period)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_GRACE_S + 2):
            await framer.exit_event.wait()
    sessions.discard(transport.get_pid())
    transport.close()
    if framer.terminal is not None:
        framer.terminal.close()


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


async def _send_error(send: Send, message: str) -> None:
    await send({"type": "http.response.body", "body": frames.encode_error(message), "more_body": True})


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
