"""The extra API processes of one server: started, watched, started again, stopped with it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from compose.stack.http_server import api_server, exit_on_signal, tune_gc
from compose.stack.sockets import sibling_socket
from control.datadir import DataDir, private_umask
from control.settings import Settings

logger = logging.getLogger("devyard.supervisor")

STOP_TIMEOUT_S = 15.0
# Under the data dir's state/: the SQLite wake-up bus between API processes (control.localbus).
BUS_FOLDER = "bus"


class ApiProcesses:
    """The extra API processes of one server, each accepting on a listening socket of its own.

    With ``SO_REUSEPORT`` (Linux) every process has its own socket on the shared port and the
    kernel spreads new connections over them by address hash, so no process takes a whole burst
    of connections and none forwards requests for another. The server opens these sockets and
    keeps them, so connections that arrive while a process restarts wait in its queue instead of
    being refused. Without ``SO_REUSEPORT`` all processes share the server's socket.

    Only the server runs the agent and the scheduler; wake-ups and events reach every process
    through PostgreSQL NOTIFY or, on SQLite, the local bus. A process gets its settings as one
    JSON line on stdin and keeps stdin open as a lifeline: when the server exits in any way,
    stdin ends and the process shuts down. A process that dies is started again, with a growing
    pause if it keeps dying.
    """

    def __init__(self, settings: Settings, sock: socket.socket, count: int) -> None:
        self.settings = settings
        self.sock = sock
        self.count = max(0, count)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._processes]

    def start(self) -> None:
        if not self.count:
            return
        self._sockets = [sibling_socket(self.sock) for _ in range(self.count)]
        with self._lock:
            self._processes = [self._spawn(index) for index in range(self.count)]
        threading.Thread(target=self._watch, name="api-processes", daemon=True).start()

    def stop_soon(self) -> None:
        """Ask every process to finish (SIGTERM); :meth:`wait` waits for them."""
        self._stopping.set()
        with self._lock:
            for process in self._processes:
                if process.poll() is None:
                    process.terminate()

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.stop_soon()
        deadline = time.monotonic() + timeout
        for process in self._processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()
        for sock in self._sockets:
            if sock is not self.sock:
                sock.close()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        fd = self._sockets[index].fileno()
        command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(self.settings.data_dir)]
        command += ["--api-process", "--socket-fd", str(fd)]
        # A group of its own: a terminal's Ctrl-C reaches the server alone, which stops its processes
        # (an interrupt while one still imports would end it with a traceback).
        process = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=[fd], process_group=0)
        assert process.stdin is not None
        # Settings travel on stdin, not in argv or the environment (the database URL may hold a password).
        process.stdin.write(self.settings.model_dump_json().encode() + b"\n")
        process.stdin.flush()
        return process

    def _watch(self) -> None:
        pause, last_crash = 1.0, 0.0
        while not self._stopping.wait(0.5):
            with self._lock:
                # Exit code 0 is a process that was asked to stop.
                crashed = [i for i, p in enumerate(self._processes) if p.poll() not in (None, 0)]
            for index in crashed:
                if time.monotonic() - last_crash > 60:
                    pause = 1.0  # not a crash loop: start a new one promptly
                last_crash = time.monotonic()
                gone = self._processes[index]
                logger.warning(
                    "API process %d exited with code %s; starting another in %.0f s", gone.pid, gone.returncode, pause
                )
                if self._stopping.wait(pause) or self.sock.fileno() < 0:
                    return  # this server is stopping too
                if gone.stdin is not None:
                    gone.stdin.close()
                with self._lock:
                    self._processes[index] = self._spawn(index)
                pause = min(pause * 2, 30.0)


class Lifeline:
    """Ends this API process when the server's end of its stdin closes: the server exited in
    whatever way, ``kill -9`` included. Watching starts before the slow imports and set-up, so an
    orphan never outlives its server by more than that."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        threading.Thread(target=self._watch, name="lifeline", daemon=True).start()

    def hold(self, server: Any) -> None:
        """From now on, the end of stdin stops ``server`` (a uvicorn server) gracefully."""
        with self._lock:
            self._server = server

    def _watch(self) -> None:
        # os.read, not sys.stdin: a thread blocked inside the buffered reader holds its lock,
        # which the interpreter needs at exit.
        while os.read(0, 512):
            pass
        with self._lock:
            if self._server is None:
                os._exit(0)  # nothing served yet: nothing to finish
            self._server.should_exit = True


def serve_api_process(settings: Settings, sock: socket.socket) -> None:
    """One extra API process: the API alone on the server's socket, until the server stops it
    (SIGTERM) or disappears (see :class:`Lifeline`)."""
    lifeline = Lifeline()
    from control.api.app import create_app
    from control.api.services import Services

    private_umask()
    tune_gc()
    services = Services.from_settings(settings, bus_dir=DataDir(settings.data_dir).state / BUS_FOLDER)
    server = api_server(create_app(services), settings, services.begin_shutdown)
    lifeline.hold(server)
    # An interrupt sent to this process by pid ends it quietly, as SIGTERM does.
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGINT, exit_on_signal)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        pass
    finally:
        services.engine.dispose()
