"""The local-process launcher: work runs as a child process in its own session.

Handles are ``<pid>:<start-time>``; the start time (from /proc) guards against a recycled pid
after the agent restarts. Resource limits use setrlimit, which is what a plain process gets:
``memory_mb`` (address space), ``cpu_seconds``, ``open_files`` and ``processes``.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from typing import Any

from compose.launcher import LaunchError, LaunchSpec, LaunchState, LaunchStatus
from runner.procfs import signal_group, start_time

LIMITS = {
    "memory_mb": (resource.RLIMIT_AS, 1024 * 1024),
    "cpu_seconds": (resource.RLIMIT_CPU, 1),
    "open_files": (resource.RLIMIT_NOFILE, 1),
    "processes": (resource.RLIMIT_NPROC, 1),
}


def _limits(resources: dict[str, Any]) -> list[tuple[int, int]]:
    limits = []
    for key, value in resources.items():
        if key in LIMITS:
            kind, scale = LIMITS[key]
            limits.append((kind, int(value) * scale))
    return limits


class LocalLauncher:
    substrate = "local"
    devserver_port = 0  # the develop server binds an ephemeral port and reports it

    def __init__(self, devserver_host: str = "127.0.0.1") -> None:
        # Develop servers listen on this address and the API's gateway reaches them there:
        # loopback when the API runs on this machine, an address of this machine the API hosts
        # can reach when it does not (the server still requires its per-server secret).
        self.bind_host = devserver_host
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def endpoint(self, handle: str, port: int) -> str:
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"https://{host}:{port}"

    def start(self, spec: LaunchSpec) -> str:
        limits = _limits(spec.resources)

        def apply_limits() -> None:
            for kind, value in limits:
                resource.setrlimit(kind, (value, value))

        log = None
        try:
            if spec.log_path is not None:
                spec.log_path.parent.mkdir(parents=True, exist_ok=True)
                log = open(spec.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
            child = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=True,
                # The server runs with umask 077 (its data dir is private); the user's commands
                # get the usual 022 (their folders are inside that private data dir anyway).
                umask=0o022,
                preexec_fn=apply_limits if limits else None,
            )
        except OSError as exc:
            raise LaunchError(f"Cannot start {spec.argv[0]}: {exc.strerror}.") from exc
        finally:
            if log is not None:
                log.close()
        handle = f"{child.pid}:{start_time(child.pid, live=True) or 0}"
        with self._lock:
            self._children[handle] = child
        return handle

    def _pid(self, handle: str) -> int | None:
        pid_text, _, started = handle.partition(":")
        try:
            pid = int(pid_text)
        except ValueError:
            return None
        with self._lock:
            child = self._children.get(handle)
        if child is not None:
            return pid if child.poll() is None else None
        # Adopted after a restart: trust the pid only if it is the same process.
        return pid if str(start_time(pid, live=True)) == started else None

    def signal(self, handle: str, signum: int) -> bool:
        pid = self._pid(handle)
        if pid is None:
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def stop(self, handle: str, grace_s: float = 10.0) -> None:
        pid = self._pid(handle)
        if pid is None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            if not signal_group(pid, sig):
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.status(handle).state is not LaunchState.running:
                    return
                time.sleep(0.05)

    def status(self, handle: str) -> LaunchStatus:
        with self._lock:
            child = self._children.get(handle)
        if child is not None:
            code = child.poll()
            if code is None:
                return LaunchStatus(LaunchState.running)
            with self._lock:
                self._children.pop(handle, None)
            return LaunchStatus(LaunchState.exited, code if code >= 0 else 128 - code)
        return LaunchStatus(LaunchState.running if self._pid(handle) is not None else LaunchState.unknown)
