"""`yard up --detach` and `yard down`: the server as a process of its own, found through the
server file of its data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from compose.stack.problem import UpProblem
from compose.stack.sockets import bind_socket
from control.datadir import DataDir
from control.settings import Settings
from control.trust import client_context
from runner.procfs import pid_alive

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunningServer:
    pid: int
    url: str
    data_dir: Path

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "url": self.url, "data_dir": str(self.data_dir)}


def is_devyard_server(pid: int) -> bool:
    """Whether ``pid`` is alive and still a devyard server (not a recycled pid)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    return b"compose.supervisor" in cmdline or b"yard" in cmdline


def running_server(data_dir: DataDir) -> RunningServer | None:
    """The server recorded in the data dir, if its process is still alive."""
    try:
        info = json.loads(data_dir.server_file.read_text())
        server = RunningServer(int(info["pid"]), str(info["url"]), data_dir.root)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if is_devyard_server(server.pid) else None


def start_detached(settings: Settings) -> RunningServer:
    """Start the stack in the background and wait until it answers its health check."""
    from compose.stack.server import own_trust

    data_dir = DataDir(settings.data_dir)
    # Binding here first gives the user the "port in use" sentence instead of a dead child.
    bind_socket(settings.host, settings.port).close()
    with open(data_dir.server_log, "ab") as log:
        child = _spawn(settings, log)
    # Its own certificate, exactly (see compose.stack.server.own_trust).
    verify = client_context(own_trust(settings)) if settings.tls_cert else False
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise UpProblem(
                f"The devyard server exited during start (code {child.returncode}); see {data_dir.server_log}."
            )
        server = running_server(data_dir)
        if server is not None and server.pid == child.pid:
            try:
                if httpx.get(server.url + "/api/v1/health", timeout=2, verify=verify).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    child.terminate()
    raise UpProblem(
        f"The devyard server did not become healthy within {START_TIMEOUT_S:.0f} s; see {data_dir.server_log}."
    )


def stop(data_dir: DataDir) -> RunningServer | None:
    """Stop the server recorded in the data dir (SIGTERM, then SIGKILL); None if none was running."""
    server = running_server(data_dir)
    if server is None:
        return None
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and pid_alive(server.pid):
        time.sleep(0.05)
    if pid_alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
    data_dir.server_file.unlink(missing_ok=True)
    return server


def _sso_environment(settings: Settings) -> dict[str, str]:
    """Single sign-on given as `yard up` options: to the server through its environment, never
    its command line (which every user of the machine can read)."""
    if not settings.sso_enabled:
        return {}
    env = {"DEVYARD_OIDC_ISSUER": settings.oidc_issuer, "DEVYARD_OIDC_CLIENT_ID": settings.oidc_client_id}
    if settings.oidc_client_secret:
        env["DEVYARD_OIDC_CLIENT_SECRET"] = settings.oidc_client_secret
    return env


def _spawn(settings: Settings, log: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(settings.data_dir)]
    command += ["--host", settings.host, "--port", str(settings.port)]
    if settings.api_workers is not None:
        command += ["--workers", str(settings.api_workers)]
    if settings.tls_cert and settings.tls_key:
        command += ["--tls-cert", str(settings.tls_cert), "--tls-key", str(settings.tls_key)]
    if settings.insecure_http:
        command.append("--insecure-http")
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **_sso_environment(settings)},
    )
