"""``WS /pty``: an interactive shell in a new pseudo-terminal, relayed over a WebSocket.

Binary messages carry terminal bytes both ways; text messages from the client are JSON control
messages (``resize``, ``signal``). The PTY is read with an event-loop reader callback (no thread
per terminal); when the client reads slower than the shell writes, reading pauses. The shell is
the leader of its own session with the PTY as its controlling terminal, so job control works
and a hang-up reaches everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import shutil
import signal
import struct
import subprocess
import termios
import time
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from devserver.responses import error_response, refuse_websocket
from devserver.state import ServerState

log = logging.getLogger("devyard.devserver")

READ_SIZE = 64 * 1024
HIGH_WATER = 1024 * 1024  # pause reading the PTY when this much output waits for the client
DRAIN_GRACE_S = 0.5  # after the shell exits, how long to wait for the last output
HANGUP_GRACE_S = 1.0  # SIGHUP, then SIGKILL for whatever is left of the session
SIGNALS = {"INT": signal.SIGINT, "TERM": signal.SIGTERM, "HUP": signal.SIGHUP, "KILL": signal.SIGKILL}
MAX_SIZE = 1000
# Terminals one develop server holds at once; one more is refused (429) before a shell is spawned.
# Spawning hundreds at once took longer than the gateway waits, and those shells outlived callers
# who had already been told 502.
MAX_TERMINALS = 32


class TerminalApi:
    """``WS /pty?cols=80&rows=24``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.open = 0  # terminals being served (changed on the event loop only)

    def routes(self) -> list[BaseRoute]:
        """The routes of this API."""
        return [WebSocketRoute("/pty", self.terminal)]

    async def terminal(self, websocket: WebSocket) -> None:
        """Open a shell for this WebSocket and relay until one side ends."""
        try:
            cols = _size(websocket.query_params.get("cols"), 80)
            rows = _size(websocket.query_params.get("rows"), 24)
        except ValueError:
            message = f"cols and rows must be integers from 1 to {MAX_SIZE}."
            await refuse_websocket(websocket, error_response(400, "bad_request", message))
            return
        if self.open >= MAX_TERMINALS:
            message = f"This develop server already has {MAX_TERMINALS} terminals open; close one first."
            await refuse_websocket(websocket, error_response(429, "too_many_terminals", message), 4429)
            return
        self.open += 1
        try:
            await websocket.accept()
            await TerminalSession(self.state, websocket, cols, rows).run()
        finally:
            self.open -= 1


def _size(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    value = int(raw)
    if not 1 <= value <= MAX_SIZE:
        raise ValueError(raw)
    return value


def shell_path() -> str:
    """The user's shell: ``$SHELL`` if usable, else bash, else sh."""
    for candidate in (os.environ.get("SHELL"), "/bin/bash", "/bin/sh"):
        if candidate and os.path.isabs(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sh") or "/bin/sh"


def _login_environment(state: ServerState, shell: str) -> dict[str, str]:
    extra = {"TERM": "xterm-256color", "SHELL": shell, "PWD": str(state.root)}
    try:
        account = pwd.getpwuid(os.getuid())
        extra.setdefault("HOME", os.environ.get("HOME") or account.pw_dir)
        extra.update(USER=account.pw_name, LOGNAME=account.pw_name)
    except KeyError:
        pass  # a uid without a passwd entry (some containers): keep what the environment has
    return state.child_environment(extra)


def _take_terminal() -> None:
    """In the child: lead a new session whose controlling terminal is the PTY on fd 0.

    fd 0 is already the PTY here: asyncio's spawn (subprocess.Popen) redirects the standard
    descriptors before it calls ``preexec_fn`` (uvloop does not, which is one reason the server
    runs on the asyncio loop).
    """
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_window(fd: int, cols: int, rows: int) -> None:
    # The kernel sends SIGWINCH to the foreground process group when the size changes.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _ShellWatch(asyncio.SubprocessProtocol):
    """Notices when the shell exits (its I/O goes through the PTY, not through pipes)."""

    def __init__(self) -> None:
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        self.exited.set()


class TerminalSession:
    """One shell in one PTY, bound to one WebSocket."""

    def __init__(self, state: ServerState, websocket: WebSocket, cols: int, rows: int) -> None:
        self.state = state
        self.websocket = websocket
        self.cols, self.rows = cols, rows
        self.loop = asyncio.get_running_loop()
        self.master = -1
        self.output = bytearray()
        self.input = bytearray()
        self.wakeup = asyncio.Event()
        self.eof = False
        self.reading = False
        self.client_gone = False

    async def run(self) -> None:
        """Start the shell, relay until it exits or the client leaves, then clean up."""
        master, slave = os.openpty()
        self.master = master
        try:
            _set_window(master, self.cols, self.rows)
            os.set_blocking(master, False)
            shell = shell_path()
            transport, watch = await self.loop.subprocess_exec(
                _ShellWatch,
                shell,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self.state.root,
                env=_login_environment(self.state, shell),
                preexec_fn=_take_terminal,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(master)
            log.warning("pty: could not start a shell: %s", exc)
            await self.websocket.close(code=1011, reason="Could not start a shell.")
            return
        finally:
            os.close(slave)
        pid = transport.get_pid()
        self.state.sessions.add(pid, signal.SIGHUP)
        log.info("pty open: pid %d, %dx%d", pid, self.cols, self.rows)
        started = time.monotonic()
        self._resume_reading()
        receiver = asyncio.ensure_future(self._receive())
        try:
            await self._send_output(watch)
        finally:
            receiver.cancel()
            self._close_terminal()
            self.state.sessions.stop(pid, signal.SIGHUP, HANGUP_GRACE_S)
        code = transport.get_returncode()
        if code is None:
            log.info("pty close: pid %d, client left after %.1f s", pid, time.monotonic() - started)
            await self._reap(transport, watch)
            return
        transport.close()
        self.state.sessions.discard(pid)
        code = 128 - code if code < 0 else code
        log.info("pty close: pid %d, shell exited %d after %.1f s", pid, code, time.monotonic() - started)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.websocket.send_text(json.dumps({"type": "exit", "code": code}))
            await self.websocket.close(code=1000)

    # -------------------------------------------------------------- PTY -> client

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: every process holding the PTY's other end has closed it.
            if exc.errno != errno.EIO:
                log.warning("pty read failed: %s", exc)
            data = b""
        if not data:
            self.eof = True
            self._pause_reading()
        else:
            self.output += data
            if len(self.output) > HIGH_WATER:
                self._pause_reading()
        self.wakeup.set()

    def _pause_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.master)
            self.reading = False

    def _resume_reading(self) -> None:
        if not self.reading and not self.eof and self.master >= 0:
            self.loop.add_reader(self.master, self._on_readable)
            self.reading = True

    async def _send_output(self, watch: _ShellWatch) -> None:
        """Relay output until the shell has exited and its output is drained, or the client is gone."""
        drain_deadline: float | None = None
        while not self.client_gone:
            self.wakeup.clear()
            if self.output:
                data = bytes(self.output)
                self.output.clear()
                self._resume_reading()
                try:
                    await self.websocket.send_bytes(data)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    self.client_gone = True
                    return
                self.state.touch()
                continue
            if watch.exited.is_set():
                if self.eof:
                    return
                drain_deadline = drain_deadline or self.loop.time() + DRAIN_GRACE_S
                if self.loop.time() >= drain_deadline:
                    return  # a background job still holds the terminal; the hang-up deals with it
            waiter = asyncio.ensure_future(self.wakeup.wait())
            exited = asyncio.ensure_future(watch.exited.wait())
            timeout = None if drain_deadline is None else max(0.0, drain_deadline - self.loop.time())
            await asyncio.wait({waiter, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            exited.cancel()

    # -------------------------------------------------------------- client -> PTY

    async def _receive(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self.state.touch()
                if message.get("bytes") is not None:
                    self._write(message["bytes"])
                elif message.get("text") is not None:
                    self._control(message["text"])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        self.client_gone = True
        self.wakeup.set()

    def _write(self, data: bytes) -> None:
        self.input += data
        self._flush_input()

    def _flush_input(self) -> None:
        if self.master < 0:
            return
        try:
            while self.input:
                del self.input[: os.write(self.master, self.input)]
        except BlockingIOError:
            # The terminal's input queue is full (the shell is not reading): retry when writable.
            self.loop.add_writer(self.master, self._on_writable)
            return
        except OSError:
            self.input.clear()  # the terminal is gone; the exit is reported separately
        self.loop.remove_writer(self.master)

    def _on_writable(self) -> None:
        self._flush_input()

    def _control(self, raw: str) -> None:
        try:
            message: Any = json.loads(raw)
        except ValueError:
            log.info("pty: ignoring a control message that is not JSON")
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "resize":
            cols, rows = message.get("cols"), message.get("rows")
            if isinstance(cols, int) and isinstance(rows, int) and 1 <= cols <= MAX_SIZE and 1 <= rows <= MAX_SIZE:
                self.cols, self.rows = cols, rows
                with contextlib.suppress(OSError):
                    _set_window(self.master, cols, rows)
        elif kind == "signal":
            number = SIGNALS.get(str(message.get("name", "")).upper())
            if number is not None:
                with contextlib.suppress(OSError):
                    os.killpg(os.tcgetpgrp(self.master), number)
        else:
            log.info("pty: ignoring control message of type %r", kind)

    # -------------------------------------------------------------- teardown

    def _close_terminal(self) -> None:
        """Close the PTY (a hang-up for the session)."""
        if self.master < 0:
            return
        self._pause_reading()
        self.loop.remove_writer(self.master)
        os.close(self.master)
        self.master = -1

    async def _reap(self, transport: asyncio.SubprocessTransport, watch: _ShellWatch) -> None:
        """Wait (briefly) for a hung-up shell to exit, then release it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANGUP_GRACE_S + 2):
                await watch.exited.wait()
        self.state.sessions.discard(transport.get_pid())
        transport.close()
