"""``yard up`` / ``yard down``: the embedded stack.

The supervisor prepares the data dir, migrates the database, makes sure the local profile holds a
working admin token, binds the API socket itself (so "port in use" is detected before anything
starts, and port 0 picks a free one) and serves the control API with uvicorn. The agent and the
scheduler run in the same process. With ``api_workers`` above 1 it also starts that many minus one
API-only worker processes that accept connections on the same socket (see :class:`ApiWorkers`).
``--detach`` re-executes this module in a new session and waits until the child answers its
health check.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from control.datadir import DataDir, make_private, private_umask, sqlite_files
from control.settings import Settings, load_settings

logger = logging.getLogger("devyard.supervisor")

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Under the data dir's state/: the SQLite wake-up bus between API processes (control.localbus).
BUS_FOLDER = "bus"


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
    """Whether ``pid`` runs. A zombie does not: a detached server's parent is init, which may
    take a second to reap it (`yard down` waited for that)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except ProcessLookupError:
        return False  # it went away while the file was read
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all there is
    return state != "Z"


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


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind the API socket, turning "address in use" into one clear sentence.

    ``reuse_port``: bind with ``SO_REUSEPORT`` so that :func:`sibling_socket` can give every API
    process a listening socket of its own on the same port (see :class:`ApiWorkers`).
    """
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        # SO_REUSEPORT would let this bind succeed next to another server of the same user on
        # the same port, silently sharing it: probe with a plain socket first, which fails if
        # anything holds the port (and picks the port when 0 was asked for).
        probe = bind_socket(host, port)
        port = probe.getsockname()[1]
        probe.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it small responses can wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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


def sibling_socket(sock: socket.socket) -> socket.socket:
    """Another listening socket on ``sock``'s address, if ``sock`` was bound with ``SO_REUSEPORT``;
    otherwise ``sock`` itself (the processes then share one accept queue)."""
    if not hasattr(socket, "SO_REUSEPORT") or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        return sock
    host, port = sock.getsockname()[:2]
    sibling = socket.socket(sock.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sibling.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sibling.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sibling.bind((host, port))
    except OSError:
        sibling.close()
        return sock
    sibling.listen(2048)
    sibling.set_inheritable(True)
    return sibling


def client_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def prepare(settings: Settings) -> DataDir:
    """Data dir, database schema and object store; raises on any problem. The local profile is
    not touched here: :func:`serve` writes it once the server holds its port, so a `yard up`
    that fails (port in use, another data dir) leaves a working profile as it was."""
    from control.bootstrap import prepare_database
    from control.db.engine import make_engine
    from control.objectstore import ObjectStore

    private_umask()
    data_dir = DataDir(settings.data_dir)
    data_dir.prepare()
    for database_file in sqlite_files(settings.effective_database_url):
        make_private(database_file)  # an earlier version left it 0644
    if settings.agent and settings.substrate != "local":
        _check_substrate(settings)
    engine = make_engine(settings.effective_database_url, pool=False)
    try:
        # With the settings: the secret keys are checked (a lost or damaged key is one sentence
        # here, not a server that fails to start) and secrets left in plain text are sealed.
        prepare_database(engine, settings)
        ObjectStore.from_url(
            settings.effective_object_store_url, s3_endpoint=settings.s3_endpoint, s3_region=settings.s3_region
        )
    finally:
        engine.dispose()
    return data_dir


def multi_user_warning(settings: Settings) -> str | None:
    """The warning for a local substrate opened to every user (None when it is not)."""
    if not (settings.local_multi_user and settings.agent and settings.substrate == "local"):
        return None
    return (
        "DEVYARD_LOCAL_MULTI_USER is on: every user's develop servers and runs execute as this"
        " operating-system user and can read each other's workspaces and this server's files;"
        " use the Docker or Kubernetes substrate for a team."
    )


def save_local_profile(engine: Any, url: str) -> None:
    """Point the local profile at ``url`` with a working admin token of this stack's database,
    keeping the current token when it still works there. Called by a server that holds its port."""
    from control import profiles
    from control.bootstrap import local_admin_token

    try:
        current: profiles.Profile | None = profiles.load_profiles()[1].get(profiles.LOCAL)
    except profiles.ProfileProblem:
        current = None
    token = local_admin_token(engine, admin_name(), current.token if current else None)
    if current is None or current.token != token or current.url != url:
        profiles.save_profile(profiles.Profile(profiles.LOCAL, url, token), make_default=current is None)


def serve(settings: Settings, sock: socket.socket | None = None, ready: Any = None, local_profile: bool = True) -> None:
    """Serve the control API in this process (and its API workers) until SIGINT/SIGTERM.

    ``local_profile``: write the local profile (embedded shape). API replicas of a cluster pass
    False: they have no user to write it for, and minting a token per pod start piles tokens up."""
    from control.api.app import create_app
    from control.api.services import Services

    # A service starts with no signal blocked, whatever its parent left blocked: the mask is
    # inherited, and with SIGTERM blocked `yard down` could not stop this process, nor the develop
    # servers and runs it starts (they inherit it from here).
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    private_umask()
    warning = multi_user_warning(settings)
    if warning:
        logger.warning("%s", warning)
    data_dir = DataDir(settings.data_dir)
    sock = sock or bind_socket(settings.host, settings.port, reuse_port=settings.effective_api_workers > 1)
    _host, port = sock.getsockname()[:2]
    url = client_url(settings.host, port)
    # Started first, so they import and connect while this process does the same.
    workers = ApiWorkers(settings, sock, settings.effective_api_workers - 1)
    workers.start()
    try:
        _tune_gc()
        services = Services.from_settings(settings, bus_dir=data_dir.state / BUS_FOLDER)
        agent = _local_agent(settings, services, url) if settings.agent else None

        def stopping() -> None:
            # The agent first: its long-poll would otherwise fail against a stopping API.
            if agent is not None:
                agent.stop_event.set()
            services.begin_shutdown()

        server = _uvicorn_server(create_app(services), settings, stopping)
        if local_profile:
            save_local_profile(services.engine, url)
    except BaseException:
        workers.wait()
        raise
    if agent is not None:
        threading.Thread(target=_serve_agent_when_up, args=(server, agent), name="local-agent", daemon=True).start()
    scheduler_stop = threading.Event()
    if settings.scheduler:
        scheduler = _local_scheduler(settings, services)
        threading.Thread(target=scheduler.serve, args=(scheduler_stop,), name="scheduler", daemon=True).start()
    data_dir.server_file.write_text(json.dumps({"pid": os.getpid(), "url": url, "started": time.time()}))
    try:
        # From "devyard is up" on, Ctrl-C is a stop, also before uvicorn has its own handlers.
        if ready is not None:
            ready(url)
        if threading.current_thread() is threading.main_thread():
            # uvicorn re-raises SIGTERM after its graceful shutdown; make that an exit that still
            # runs the cleanup below instead of killing the process on the spot.
            signal.signal(signal.SIGTERM, _exit_on_signal)
        server.run(sockets=[sock])
    except (SystemExit, KeyboardInterrupt):
        pass  # uvicorn re-raises the signal after its graceful shutdown: a stop, not a failure
    finally:
        if agent is not None:
            agent.stop()  # first: its next long-poll would otherwise go to a worker that is stopping
        workers.stop_soon()
        scheduler_stop.set()
        if agent is not None:
            _stop_devservers(agent, services)
        workers.wait()
        try:
            info = json.loads(data_dir.server_file.read_text())
            if info.get("pid") == os.getpid():
                data_dir.server_file.unlink()
        except (OSError, ValueError):
            pass
        services.engine.dispose()


def serve_worker(settings: Settings, sock: socket.socket) -> None:
    """One extra API process: the API alone on the primary's socket, until the primary stops it
    (SIGTERM) or disappears (its end of our stdin closes, even after ``kill -9``)."""
    from control.api.app import create_app
    from control.api.services import Services

    private_umask()
    _tune_gc()
    services = Services.from_settings(settings, bus_dir=DataDir(settings.data_dir).state / BUS_FOLDER)
    server = _uvicorn_server(create_app(services), settings, services.begin_shutdown)

    def exit_when_orphaned() -> None:
        # os.read, not sys.stdin: a thread blocked inside the buffered reader holds its lock,
        # which the interpreter needs at exit.
        while os.read(0, 512):
            pass
        server.should_exit = True

    threading.Thread(target=exit_when_orphaned, name="lifeline", daemon=True).start()
    # Its own process group keeps a terminal's Ctrl-C away; a SIGINT sent to it directly ends it quietly too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        pass
    finally:
        services.engine.dispose()


def _tune_gc() -> None:
    # The server allocates many short-lived objects per request; the default generation-0
    # threshold (700) runs the cycle collector thousands of times a second under load, and
    # its older-generation passes show up as 100+ ms stalls in p99 latency.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _uvicorn_server(app: Any, settings: Settings, on_stopping: Callable[[], None] | None = None) -> Any:
    import uvicorn

    from control.api.app import MAX_CONCURRENT_REQUESTS
    from control.api.connections import protected_protocol

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn waits (up to timeout_graceful_shutdown) for requests in flight; long-polls
            # and streams would hold it the whole time, so tell them to finish first.
            if on_stopping is not None:
                on_stopping()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
        limit_concurrency=MAX_CONCURRENT_REQUESTS,
        http=protected_protocol(settings.header_timeout_s, settings.max_connections_per_client),
    )
    return Server(config)


class ApiWorkers:
    """The extra API processes of one server, each accepting on a listening socket of its own.

    With ``SO_REUSEPORT`` (Linux) every process has its own socket on the shared port and the
    kernel spreads new connections evenly over them by address hash, so no process forwards
    requests for another. (On one shared socket, whichever process wakes first takes a whole
    burst of connections: 50 clients connecting at once ended up 40 on one process and 12 on the
    other, and the busy one set the tail latency.) The primary opens the workers' sockets and
    keeps them, so connections that arrive while a worker restarts wait in its queue instead of
    being refused. Without ``SO_REUSEPORT`` all processes share the primary's socket. Only the primary runs the agent and the scheduler; wake-ups
    and events reach every process through PostgreSQL NOTIFY or, on SQLite, the local bus. A
    worker gets its settings as one JSON line on stdin and keeps stdin open as a lifeline: when the
    primary exits in any way, stdin ends and the worker shuts down. A worker that dies is
    started again, with a growing pause if it keeps dying.
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
        threading.Thread(target=self._watch, name="api-workers", daemon=True).start()

    def stop_soon(self) -> None:
        """Ask every worker to finish (SIGTERM); :meth:`wait` waits for them."""
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
        command += ["--api-worker", "--socket-fd", str(fd)]
        # A process group of its own: a terminal's Ctrl-C reaches only the primary, which stops
        # the workers with SIGTERM (one still importing printed a KeyboardInterrupt traceback).
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
                # Exit code 0 is a worker that was asked to stop (Ctrl-C reaches the whole group).
                crashed = [i for i, p in enumerate(self._processes) if p.poll() not in (None, 0)]
            for index in crashed:
                if time.monotonic() - last_crash > 60:
                    pause = 1.0  # not a crash loop: start a new one promptly
                last_crash = time.monotonic()
                gone = self._processes[index]
                logger.warning(
                    "API worker %d exited with code %s; starting another in %.0f s", gone.pid, gone.returncode, pause
                )
                if self._stopping.wait(pause) or self.sock.fileno() < 0:
                    return  # this server is stopping too
                if gone.stdin is not None:
                    gone.stdin.close()
                with self._lock:
                    self._processes[index] = self._spawn(index)
                pause = min(pause * 2, 30.0)


def _spawn(settings: Settings, log: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(settings.data_dir)]
    command += ["--host", settings.host, "--port", str(settings.port)]
    if settings.api_workers is not None:
        command += ["--workers", str(settings.api_workers)]
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
        publish=services.events.publish,
        wake=services.hub.publish,
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
    parser.add_argument("--workers", type=int, help="API processes sharing the port (default: settings)")
    parser.add_argument("--api-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--socket-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per agent long-poll would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic announces each of its plugins at INFO on every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.api_worker:
        # Started by ApiWorkers: settings on the first line of stdin, the socket inherited.
        settings = Settings.model_validate_json(sys.stdin.buffer.readline())
        serve_worker(settings, socket.socket(fileno=args.socket_fd))
        return 0
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "api_workers": args.workers}
    if args.replica:
        overrides.update(agent=False, scheduler=False)
    settings = load_settings(args.data_dir, **overrides)
    if args.replica:
        from control.secretbox import SecretKeyProblem, require_shared_keys

        try:
            require_shared_keys(settings)
        except SecretKeyProblem as exc:
            print(exc, file=sys.stderr)
            return 2
    if args.replica and settings.api_workers is None:
        # A cluster scales by replicas; one process each unless api_workers says otherwise.
        settings = settings.model_copy(update={"api_workers": 1})
    prepare(settings)
    if args.admin_token:
        print(new_admin_token(settings, args.admin_token))
        return 0
    serve(settings, local_profile=not args.replica)
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
