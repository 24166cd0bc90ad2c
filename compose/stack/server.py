"""The server of the embedded stack: the control API, and in the same process the local agent
and the scheduler, until SIGINT or SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from compose.stack.api_processes import BUS_FOLDER, ApiProcesses
from compose.stack.http_server import api_server, exit_on_signal, tune_gc
from compose.stack.local_profile import save_local_profile
from compose.stack.problem import UpProblem
from compose.stack.sockets import bind_socket, client_url
from compose.stack.tls import plan, with_plan
from control.datadir import DataDir, make_private, private_umask, sqlite_files
from control.settings import Settings
from control.trust import Trust

logger = logging.getLogger("devyard.supervisor")


def prepare(settings: Settings) -> DataDir:
    """Data dir, database schema and object store; raises on any problem. The local profile is
    not touched here: :func:`serve` writes it once the server holds its port, so a `yard up`
    that fails (port in use, another data dir) leaves a working profile as it was."""
    from control.bootstrap import prepare_stack

    private_umask()
    data_dir = DataDir(settings.data_dir)
    data_dir.prepare()
    for database_file in sqlite_files(settings.effective_database_url):
        make_private(database_file)  # an earlier version left it 0644
    if settings.agent and settings.substrate != "local":
        _check_substrate(settings)
    prepare_stack(settings)
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


def serve(settings: Settings, sock: socket.socket | None = None, ready: Any = None, local_profile: bool = True) -> None:
    """Serve the control API in this process (and its extra API processes) until SIGINT/SIGTERM.

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
    tls = plan(settings)
    settings = with_plan(settings, tls)  # the API processes serve the same files
    sock = sock or bind_socket(settings.host, settings.port, reuse_port=settings.effective_api_workers > 1)
    url = client_url(settings.host, sock.getsockname()[1], tls.scheme)
    # Started first, so they import and connect while this process does the same.
    processes = ApiProcesses(settings, sock, settings.effective_api_workers - 1)
    processes.start()
    try:
        tune_gc()
        services = Services.from_settings(settings, bus_dir=data_dir.state / BUS_FOLDER)
        agent = _local_agent(settings, services, url) if settings.agent else None

        def stopping() -> None:
            # The agent first: its long-poll would otherwise fail against a stopping API.
            if agent is not None:
                agent.stop_event.set()
            services.begin_shutdown()

        server = api_server(create_app(services), settings, stopping)
        if local_profile:
            save_local_profile(services.engine, url, own_trust(settings))
    except BaseException:
        processes.wait()
        raise
    scheduler_stop = threading.Event()
    if settings.scheduler:
        _start_scheduler(settings, services, scheduler_stop)
    data_dir.server_file.write_text(json.dumps({"pid": os.getpid(), "url": url, "started": time.time()}))
    # Only once uvicorn serves (and handles SIGINT/SIGTERM): the user is told it is up, and may
    # stop it cleanly from then on; the agent's first long-poll finds the API.
    after_start: list[Callable[[], object]] = []
    if ready is not None:
        after_start.append(lambda: ready(url))
    if agent is not None:
        after_start.append(agent.serve)
    threading.Thread(target=_after_start, args=(server, after_start), name="after-start", daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises SIGTERM after its graceful shutdown; make that an exit that still
        # runs the cleanup below instead of killing the process on the spot.
        signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        server.run(sockets=[sock])
    except (SystemExit, KeyboardInterrupt):
        pass  # uvicorn re-raises the signal after its graceful shutdown: a stop, not a failure
    finally:
        if agent is not None:
            agent.stop()  # first: its next long-poll would otherwise go to a process that is stopping
        processes.stop_soon()
        scheduler_stop.set()
        if agent is not None:
            _stop_devservers(agent, services)
        processes.wait()
        _forget_server(data_dir)
        services.engine.dispose()


def own_trust(settings: Settings) -> Trust:
    """How this server's own clients (its agent and run workers, the local profile) trust it:
    exactly the certificate file it serves, read again when renewed; or plain HTTP, which the
    server was allowed to serve."""
    if settings.tls_cert:
        return Trust(pin_file=str(settings.tls_cert))
    return Trust(insecure_http=settings.insecure_http)


def _check_substrate(settings: Settings) -> None:
    """`yard up` with a container substrate: say now, in one sentence, if it cannot work."""
    from compose.launcher import LaunchError
    from compose.substrates import make_launcher

    try:
        make_launcher(settings.substrate, settings)
    except LaunchError as exc:
        raise UpProblem(str(exc)) from exc


def _local_agent(settings: Settings, services: Any, url: str) -> Any:
    from compose.agent import agent_for
    from control.bootstrap import local_agent_token
    from control.client import ControlClient

    client = ControlClient(url, local_agent_token(services.engine), trust=own_trust(settings))
    return agent_for(settings, client)


def _after_start(server: Any, actions: list[Callable[[], object]]) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.01)
    if not server.should_exit:
        for action in actions:
            action()


def _start_scheduler(settings: Settings, services: Any, stop: threading.Event) -> None:
    from control.schedules.scheduler import Scheduler
    from runner.scheduler import serve

    scheduler = Scheduler(
        services.engine, services.store, settings, publish=services.events.publish, wake=services.hub.publish
    )
    threading.Thread(target=serve, args=(scheduler, stop), name="scheduler", daemon=True).start()


def _stop_devservers(agent: Any, services: Any) -> None:
    """`yard down` stops the develop servers this stack started (their workspaces stay). The API
    is already gone, so their rows are recorded as stopped directly."""
    from control.devservers.lifecycle import record_stopped

    record_stopped(services.engine, agent.devservers.shutdown())


def _forget_server(data_dir: DataDir) -> None:
    """Remove the server file if it still names this process."""
    try:
        info = json.loads(data_dir.server_file.read_text())
        if info.get("pid") == os.getpid():
            data_dir.server_file.unlink()
    except (OSError, ValueError):
        pass
