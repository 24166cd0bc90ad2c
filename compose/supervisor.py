"""``yard up`` / ``yard down``: the embedded stack in one process.

The supervisor prepares the data dir, migrates the database, makes sure the local profile holds a
working admin token, binds the API socket itself (so "port in use" is detected before anything
starts, and port 0 picks a free one) and serves the control API with uvicorn. Later components
(agent, scheduler) run in the same process. ``--detach`` re-executes this module in a new session
and waits until the child answers its health check.
"""

from __future__ import annotations

import errno
import gc
import getpass
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from control.datadir import DataDir
from control.settings import Settings, load_settings

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class UpProblem(Exception):
    """The stack cannot start or stop; one sentence for the user."""


@dataclass(frozen=True)
class RunningServer:
    pid: int
    url: str
    data_dir: Path

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "url": self.url, "data_dir": str(self.data_dir)}


def admin_name() -> str:
    """The operating-system user, shaped into a valid devyard user name."""
    try:
        raw = getpass.getuser()
    except (KeyError, OSError):
        raw = "admin"
    name = re.sub(r"[^a-z0-9._-]", "-", raw.lower()).strip("-._")[:64]
    return name or "admin"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the API socket, turning "address in use" into one clear sentence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it small responses can wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UpProblem(
                f"Port {port} on {host} is already in use; pass --port with a free port or stop the other process."
            ) from exc
        raise UpProblem(f"Cannot listen on {host}:{port} ({exc.strerror}); pass --host/--port.") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def client_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def prepare(settings: Settings, local_profile: bool = True) -> DataDir:
    """Data dir, database schema and (embedded shape) the local profile's admin token; raises
    on any problem. API replicas of a cluster pass ``local_profile=False``: they have no user to
    write a profile for, and minting a token on every pod start would pile tokens up."""
    from control import profiles
    from control.bootstrap import local_admin_token, prepare_database
    from control.db.engine import make_engine
    from control.objectstore import ObjectStore

    data_dir = DataDir(settings.data_dir)
    data_dir.prepare()
    if settings.agent and settings.substrate != "local":
        _check_substrate(settings)
    engine = make_engine(settings.effective_database_url, pool=False)
    try:
        prepare_database(engine)
        ObjectStore.from_url(
            settings.effective_object_store_url, s3_endpoint=settings.s3_endpoint, s3_region=settings.s3_region
        )
        if not local_profile:
            return data_dir
        try:
            current: str | None = profiles.load_profiles()[1][profiles.LOCAL].token
        except (KeyError, profiles.ProfileProblem):
            current = None
        token = local_admin_token(engine, admin_name(), current)
    finally:
        engine.dispose()
    if token != current:
        profiles.save_profile(
            profiles.Profile(profiles.LOCAL, client_url(settings.host, settings.port), token),
            make_default=current is None,
        )
    return data_dir


def _write_profile_url(url: str) -> None:
    from control import profiles

    _, known = profiles.load_profiles()
    local = known.get(profiles.LOCAL)
    if local is not None and local.url != url:
        profiles.save_profile(profiles.Profile(profiles.LOCAL, url, local.token))


def serve(settings: Settings, sock: socket.socket | None = None, ready: Any = None) -> None:
    """Serve the control API in this process until SIGINT/SIGTERM."""
    import uvicorn

    from control.api.app import MAX_CONCURRENT_REQUESTS, create_app
    from control.api.services import Services

    data_dir = DataDir(settings.data_dir)
    sock = sock or bind_socket(settings.host, settings.port)
    # The server allocates many short-lived objects per request; the default generation-0
    # threshold (700) runs the cycle collector thousands of times a second under load, and
    # its older-generation passes show up as 100+ ms stalls in p99 latency.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    _host, port = sock.getsockname()[:2]
    url = client_url(settings.host, port)
    services = Services.from_settings(settings)
    app = create_app(services)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
        limit_concurrency=MAX_CONCURRENT_REQUESTS,
    )
    server = uvicorn.Server(config)
    agent = _local_agent(settings, services, url) if settings.agent else None
    if agent is not None:
        threading.Thread(target=_serve_agent_when_up, args=(server, agent), name="local-agent", daemon=True).start()
    scheduler_stop = threading.Event()
    if settings.scheduler:
        scheduler = _local_scheduler(settings, services)
        threading.Thread(target=scheduler.serve, args=(scheduler_stop,), name="scheduler", daemon=True).start()
    data_dir.server_file.write_text(json.dumps({"pid": os.getpid(), "url": url, "started": time.time()}))
    _write_profile_url(url)
    if ready is not None:
        ready(url)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises SIGTERM after its graceful shutdown; make that an exit that still
        # runs the cleanup below instead of killing the process on the spot.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        pass
    finally:
        scheduler_stop.set()
        if agent is not None:
            agent.stop()
            _stop_devservers(agent, services)
        try:
            info = json.loads(data_dir.server_file.read_text())
            if info.get("pid") == os.getpid():
                data_dir.server_file.unlink()
        except (OSError, ValueError):
            pass
        services.engine.dispose()


def _spawn(settings: Settings, log: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(settings.data_dir)]
    command += ["--host", settings.host, "--port", str(settings.port)]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _check_substrate(settings: Settings) -> None:
    """`yard up` with a container substrate: say now, in one sentence, if it cannot work."""
    from compose.launcher import LaunchError
    from compose.substrates import make_launcher

    try:
        make_launcher(settings.substrate, settings)
    except LaunchError as exc:
        raise UpProblem(str(exc)) from exc


def _local_agent(settings: Settings, services: Any, url: str) -> Any:
    from compose.agent import Agent, AgentConfig
    from compose.substrates import make_launcher
    from control.bootstrap import local_agent_token
    from control.client import ControlClient

    data_dir = DataDir(settings.data_dir)
    token = local_agent_token(services.engine)
    config = AgentConfig(
        name=f"{socket.gethostname()}-{settings.substrate}",
        queue="default",
        api_url=url,
        volume=data_dir.volume,
        spool=data_dir.spool,
    )
    return Agent(config, ControlClient(url, token), make_launcher(settings.substrate, settings))


def _local_scheduler(settings: Settings, services: Any) -> Any:
    from runner.scheduler import Scheduler

    return Scheduler(
        services.engine,
        services.store,
        settings,
        publish=lambda kind, data: services.events.publish(kind, data),
        wake_agents=lambda: services.hub.publish("work"),
    )


def _stop_devservers(agent: Any, services: Any) -> None:
    """`yard down` stops the develop servers this stack started (their workspaces stay). The API
    is already gone, so their rows are marked stopped here, directly."""
    from sqlmodel import Session

    from control.devservers import lifecycle

    stopped = agent.devservers.shutdown()
    if stopped:
        with Session(services.engine) as session:
            lifecycle.mark_stopped(session, stopped)
            session.commit()


def _serve_agent_when_up(server: Any, agent: Any) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.01)
    if not server.should_exit:
        agent.serve()


def start_detached(settings: Settings) -> RunningServer:
    """Start the stack in the background and wait until it answers its health check."""
    data_dir = DataDir(settings.data_dir)
    # Binding here first gives the user the "port in use" sentence instead of a dead child.
    bind_socket(settings.host, settings.port).close()
    with open(data_dir.server_log, "ab") as log:
        child = _spawn(settings, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise UpProblem(
                f"The devyard server exited during start (code {child.returncode}); see {data_dir.server_log}."
            )
        server = running_server(data_dir)
        if server is not None and server.pid == child.pid:
            try:
                if httpx.get(server.url + "/api/v1/health", timeout=2).status_code == 200:
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


def _main(argv: list[str]) -> int:
    """Entry point of the detached child: ``python -m compose.supervisor --data-dir D ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="compose.supervisor")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--replica", action="store_true", help="API only (no agent, no scheduler, no local profile): a cluster replica"
    )
    parser.add_argument(
        "--admin-token", metavar="NAME", help="print a new admin token for NAME (created if needed), then exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per agent long-poll would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.replica:
        overrides.update(agent=False, scheduler=False)
    settings = load_settings(args.data_dir, **overrides)
    prepare(settings, local_profile=not (args.replica or args.admin_token))
    if args.admin_token:
        print(new_admin_token(settings, args.admin_token))
        return 0
    serve(settings)
    return 0


def new_admin_token(settings: Settings, name: str) -> str:
    """A fresh admin token for ``name`` (the first admin of a cluster comes from here)."""
    from control.bootstrap import local_admin_token
    from control.db.engine import make_engine

    engine = make_engine(settings.effective_database_url, pool=False)
    try:
        return local_admin_token(engine, name, None)
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
