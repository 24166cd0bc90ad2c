"""The agent's side of develop servers: start, health-check, restart with back-off, stop, adopt.

A develop server is ``python -m devserver`` started through the agent's :class:`Launcher`. The
agent writes the per-server secret to a 0600 file the server reads and deletes, waits for the
server's ready file (it binds an ephemeral port itself, so no port is ever raced, and makes a
TLS certificate of its own), checks ``/health`` over HTTPS pinning that certificate's fingerprint
(from the ready file) with the secret, and reports the endpoint with the fingerprint, which the
gateway then pins on every connection. A monitor thread restarts a crashed
server with exponential back-off; the workspace lives on the shared volume, so it survives.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from compose.launcher import Launcher, LaunchError, LaunchSpec, LaunchState, command_home
from control.client import ControlClient, DevyardError
from control.tlspin import pinned_context
from control.wire.devservers import AdoptedDevServer
from control.wire.work import DevServerSpec, DevServerStartWork, DevServerStopWork

log = logging.getLogger("devyard.agent.devservers")

READY_TIMEOUT_S = 20.0
MONITOR_EVERY_S = 0.25
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# A server that stayed up this long is healthy again: its next crash restarts quickly.
STABLE_AFTER_S = 60.0
MAX_QUICK_FAILURES = 8
STOP_GRACE_S = 5.0
SERVER_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL", "PYTHONPATH")


class StartFailed(Exception):
    """The develop server did not come up; one sentence for the server's error."""


@dataclass
class Managed:
    id: int
    workspace: Path
    secret: str
    env: dict[str, str]
    resources: dict[str, Any]
    image: str | None = None
    restart_count: int = 0
    handle: str | None = None
    endpoint: str | None = None
    fingerprint: str | None = None
    up_since: float = 0.0
    quick_failures: int = 0
    restart_at: float | None = None
    stopping: bool = False

    @classmethod
    def of(cls, spec: DevServerSpec | AdoptedDevServer, volume: Path) -> Managed | None:
        """The server a start item or an adoption describes; None without a workspace or secret."""
        if not spec.workspace or not spec.secret:
            return None
        return cls(
            id=spec.id,
            workspace=volume / spec.workspace,
            secret=spec.secret,
            env=dict(spec.env),
            resources=dict(spec.resources),
            image=spec.image,
            restart_count=spec.restart_count,
            handle=spec.handle,
        )


class ReportItem(Protocol):
    """Tells the API what became of a work item (the agent's ``_report``)."""

    def __call__(self, item_id: int, handle: str | None = None, error: str | None = None) -> None: ...


@dataclass
class DevServerKeeper:
    client: ControlClient
    launcher: Launcher
    volume: Path
    state_dir: Path
    stop_event: threading.Event
    servers: dict[int, Managed] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _monitor: threading.Thread | None = None

    # ------------------------------------------------------------------ work items

    def start_item(self, item: DevServerStartWork, report_item: ReportItem) -> None:
        """Handle a ``devserver_start`` item in its own thread (a start takes a moment)."""
        server = Managed.of(item.run, self.volume)
        if server is None:
            report_item(item.id, error=f"Develop server {item.run.id} has no workspace or secret yet.")
            return
        server.handle = None  # a start launches anew

        def work() -> None:
            try:
                self._launch(server)
            except StartFailed as exc:
                self._report(server.id, "failed", error=str(exc))
                report_item(item.id, error=str(exc))
                return
            with self.lock:
                self.servers[server.id] = server
            self._report(
                server.id, "running", handle=server.handle, endpoint=server.endpoint, tls_fingerprint=server.fingerprint
            )
            report_item(item.id, handle=server.handle)
            self.ensure_monitor()

        threading.Thread(target=work, name=f"devserver-start-{server.id}", daemon=True).start()

    def stop_item(self, item: DevServerStopWork, report_item: ReportItem) -> None:
        server_id = item.run.id
        with self.lock:
            server = self.servers.pop(server_id, None)
        handle = server.handle if server else item.run.handle
        if server is not None:
            server.stopping = True

        def work() -> None:
            if handle:
                self.launcher.stop(handle, grace_s=STOP_GRACE_S)
            (self.state_dir / str(server_id) / "ready.json").unlink(missing_ok=True)
            self._report(server_id, "stopped")
            report_item(item.id, handle=handle or "gone")

        threading.Thread(target=work, name=f"devserver-stop-{server_id}", daemon=True).start()

    def shutdown(self) -> list[int]:
        """Stop every server this keeper runs, in parallel; returns their ids."""
        with self.lock:
            servers = list(self.servers.values())
            self.servers.clear()
        threads = []
        for server in servers:
            server.stopping = True
            if server.handle:
                thread = threading.Thread(target=self.launcher.stop, args=(server.handle, STOP_GRACE_S), daemon=True)
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join(STOP_GRACE_S + 6)
        return [s.id for s in servers]

    # ------------------------------------------------------------------ adoption

    def adopt(self, agent_id: int) -> None:
        """After (re)registering: keep servers still running and healthy, restart the others."""
        try:
            listed = self.client.agent_devservers(agent_id)
        except DevyardError as exc:
            log.warning("cannot list this agent's develop servers: %s", exc)
            return
        for info in listed:
            server = Managed.of(info, self.volume)
            if server is None:
                continue
            server.endpoint, server.fingerprint, server.up_since = info.endpoint, info.tls_fingerprint, time.monotonic()
            alive = (
                server.handle is not None
                and self.launcher.status(server.handle).state is LaunchState.running
                and server.endpoint is not None
                and self._healthy(server.endpoint, server.secret, server.fingerprint)
            )
            if not alive:
                if server.handle:
                    self.launcher.stop(server.handle, grace_s=1.0)
                server.restart_at = time.monotonic()
            with self.lock:
                self.servers[server.id] = server
            log.info("develop server %s %s", server.id, "re-adopted" if alive else "will be restarted")
        self.ensure_monitor()

    # ------------------------------------------------------------------ process

    def _files(self, server_id: int) -> tuple[Path, Path, Path]:
        folder = self.state_dir / str(server_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder / "secret", folder / "ready.json", folder / "server.log"

    def _launch(self, server: Managed) -> None:
        secret_file, ready_file, log_file = self._files(server.id)
        ready_file.unlink(missing_ok=True)
        try:
            server.workspace.mkdir(parents=True, exist_ok=True)
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(server.secret)
        except OSError as exc:
            raise StartFailed(f"Cannot prepare the workspace {server.workspace}: {exc.strerror}.") from exc
        env = {k: v for k, v in os.environ.items() if k in SERVER_ENV}
        env["HOME"] = str(command_home(self.volume))
        env.update(server.env)
        argv = [sys.executable, "-m", "devserver", "--workspace", str(server.workspace)]
        argv += ["--secret-file", str(secret_file), "--host", self.launcher.bind_host]
        argv += ["--port", str(self.launcher.devserver_port)]
        argv += ["--ready-file", str(ready_file), "--log-file", str(log_file)]
        spec = LaunchSpec(
            name=f"devyard-devserver-{server.id}",
            argv=argv,
            env=env,
            cwd=server.workspace,
            labels={"devyard.devserver": str(server.id)},
            resources=server.resources,
            log_path=log_file,
            paths=(server.workspace, secret_file.parent),
            image=server.image,
        )
        try:
            handle = self.launcher.start(spec)
        except LaunchError as exc:
            raise StartFailed(str(exc)) from exc
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready_file.exists():
            status = self.launcher.status(handle)
            if status.state is not LaunchState.running:
                secret_file.unlink(missing_ok=True)
                raise StartFailed(
                    f"The develop server exited with code {status.exit_code} while starting; {_tail(log_file)}"
                )
            if time.monotonic() > deadline or self.stop_event.is_set():
                self.launcher.stop(handle, grace_s=1.0)
                secret_file.unlink(missing_ok=True)
                raise StartFailed(f"The develop server did not start within {READY_TIMEOUT_S:.0f} s; {_tail(log_file)}")
            time.sleep(0.01)
        ready = json.loads(ready_file.read_text())
        port, fingerprint = int(ready["port"]), str(ready.get("fingerprint") or "")
        endpoint = self.launcher.endpoint(handle, port)
        if not fingerprint or not self._healthy(endpoint, server.secret, fingerprint):
            self.launcher.stop(handle, grace_s=1.0)
            raise StartFailed("The develop server started but does not answer its health check.")
        server.handle, server.endpoint, server.fingerprint = handle, endpoint, fingerprint
        server.up_since = time.monotonic()
        log.info("develop server %s running at %s (handle %s)", server.id, endpoint, handle)

    @staticmethod
    def _healthy(endpoint: str, secret: str, fingerprint: str | None) -> bool:
        """Whether the server answers ``/health``; over HTTPS only with the certificate of
        ``fingerprint`` (the secret is never sent to anything else)."""
        if endpoint.startswith("https://") and not fingerprint:
            return False
        verify = pinned_context(fingerprint) if fingerprint else True
        try:
            response = httpx.get(
                f"{endpoint}/health", headers={"Authorization": f"Bearer {secret}"}, timeout=3.0, verify=verify
            )
        except (httpx.HTTPError, ssl.SSLError):
            return False
        return response.status_code == 200

    # ------------------------------------------------------------------ crash restarts

    def ensure_monitor(self) -> None:
        with self.lock:
            if self._monitor is None or not self._monitor.is_alive():
                self._monitor = threading.Thread(target=self._watch, name="devserver-monitor", daemon=True)
                self._monitor.start()

    def _watch(self) -> None:
        while not self.stop_event.wait(MONITOR_EVERY_S):
            with self.lock:
                servers = list(self.servers.values())
            for server in servers:
                if server.stopping:
                    continue
                try:
                    if server.restart_at is None:
                        self._check(server)
                    elif time.monotonic() >= server.restart_at:
                        self._restart(server)
                except Exception:
                    # One server's trouble (an engine restarting under us, ...) must never stop
                    # the watch over all the others; the next round tries again.
                    log.exception("develop server %s: check failed", server.id)

    def _check(self, server: Managed) -> None:
        assert server.handle is not None
        status = self.launcher.status(server.handle)
        if status.state is LaunchState.running:
            return
        uptime = time.monotonic() - server.up_since
        server.quick_failures = 0 if uptime >= STABLE_AFTER_S else server.quick_failures + 1
        if server.quick_failures >= MAX_QUICK_FAILURES:
            with self.lock:
                self.servers.pop(server.id, None)
            message = (
                f"The develop server crashed {server.quick_failures} times in a row; last exit code {status.exit_code}."
            )
            self._report(server.id, "failed", error=message)
            return
        delay = min(BACKOFF_FIRST_S * 2 ** max(server.quick_failures - 1, 0), BACKOFF_MAX_S)
        server.restart_at = time.monotonic() + delay
        message = f"The develop server exited with code {status.exit_code}; restarting in {delay:g} s."
        log.warning("develop server %s: %s", server.id, message)
        self._report(server.id, "starting", error=message, restart_count=server.restart_count)

    def _restart(self, server: Managed) -> None:
        server.restart_at = None
        server.restart_count += 1
        try:
            self._launch(server)
        except StartFailed as exc:
            log.warning("develop server %s did not restart: %s", server.id, exc)
            server.quick_failures += 1
            delay = min(BACKOFF_FIRST_S * 2**server.quick_failures, BACKOFF_MAX_S)
            server.restart_at = time.monotonic() + delay
            return
        self._report(
            server.id,
            "running",
            handle=server.handle,
            endpoint=server.endpoint,
            tls_fingerprint=server.fingerprint,
            restart_count=server.restart_count,
        )

    def _report(self, server_id: int, state: str, **details: Any) -> None:
        delay = 0.1
        while not self.stop_event.is_set():
            try:
                self.client.report_devserver(server_id, state, **details)
                return
            except DevyardError as exc:
                if getattr(exc, "status", None) in (404, 409, 422):
                    log.info("develop server %s: report %s refused: %s", server_id, state, exc)
                    if getattr(exc, "status", None) == 409 and state in ("starting", "running"):
                        # The control plane has it stopping or stopped: do not keep it alive.
                        self._forget(server_id)
                    return
                self.stop_event.wait(delay)
                delay = min(delay * 2, 5.0)

    def _forget(self, server_id: int) -> None:
        with self.lock:
            server = self.servers.pop(server_id, None)
        if server is not None and server.handle:
            server.stopping = True
            self.launcher.stop(server.handle, grace_s=STOP_GRACE_S)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        text = []
    return "its log says: " + " | ".join(text) if text else "its log is empty."
