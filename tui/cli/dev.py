"""`yard dev ...`: your develop server for a project — start, stop, status, ls, exec, shell, logs."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from control.client import ControlClient, DevyardError, NotFound
from control.wire.devservers import DevServerOut
from control.wire.errors import PROJECT_NOT_FOUND
from tui.cli.context import default_project, state
from tui.cli.exec_output import CONNECTION_LOST
from tui.cli.output import console, details, errors, fail, print_json, table

app = typer.Typer(
    help="Your develop server for a project: start, stop, status, exec, shell, logs, ports, forward, preview.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project", "-p", help="Project \\[default: DEVYARD_PROJECT, else the current git repository's name]."
    ),
]
COLUMNS = ["id", "state", "project", "user", "restart_count", "last_activity_at", "error"]
SHOW = [
    "id",
    "state",
    "project",
    "environment",
    "user",
    "workspace",
    "substrate",
    "restart_count",
    "idle_timeout_s",
    "last_activity_at",
    "started_at",
    "stopped_at",
    "error",
]
START_TIMEOUT_S = 60.0
# Exit code when the connection drops before the command's own exit code arrived (like ssh).


def find_server(client: ControlClient, project: str) -> DevServerOut | None:
    servers = client.list_devservers(project=project)
    return servers[0] if servers else None


def running_server(client: ControlClient, project: str | None) -> DevServerOut:
    name = project or default_project()
    server = find_server(client, name)
    if server is None and not project_exists(client, name):
        fail(
            f"Project {name} does not exist; create it with `yard projects add {name}`, then `yard dev start -p {name}`."
        )
    if server is None or server.state != "running":
        state_text = f"is {server.state}" if server else "does not exist"
        fail(f"Your develop server for project {name} {state_text}; start it with `yard dev start -p {name}`.")
    return server


def project_exists(client: ControlClient, name: str) -> bool:
    try:
        client.get_project(name)
    except NotFound:
        return False
    return True


def wait_for(client: ControlClient, server_id: int, wanted: set[str], timeout: float) -> DevServerOut:
    """Poll until the server reaches one of ``wanted`` (or failed); the poll is cheap and short."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        server = client.get_devserver(server_id)
        if server.state in wanted or server.state == "failed":
            return server
        if time.monotonic() > deadline:
            fail(f"Develop server {server_id} is still {server.state} after {timeout:.0f} s; see `yard dev logs`.")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


@app.command()
def start(
    project: ProjectOption = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment whose variables the server gets.")] = None,
    idle_timeout: Annotated[
        int | None, typer.Option("--idle-timeout", min=60, help="Stop after this many idle seconds \\[default: 3600].")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the start is requested.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start your develop server for the project (or return the running one) and wait until it is up.

    In a terminal, it then offers to sync the repository you are in (`yard sync`).
    """
    name = project or default_project()
    with state.client() as client:
        try:
            server = client.start_devserver(name, environment=env, idle_timeout_s=idle_timeout)
        except NotFound as exc:
            if exc.code == PROJECT_NOT_FOUND:  # not an unknown --env
                fail(f"Project {name} does not exist; create it with `yard projects add {name}` first.")
            raise
        if not no_wait and server.state != "running":
            server = wait_for(client, server.id, {"running"}, START_TIMEOUT_S)
    if as_json:
        print_json(server)
    elif server.state == "failed":
        fail(f"Develop server {server.id} failed to start: {server.error or 'see `yard dev logs`'}")
    else:
        console.print(
            f"Develop server {server.id} for project {server.project} is {server.state} (workspace {server.workspace})."
        )
    if server.state == "failed":
        raise typer.Exit(1)
    if not as_json and server.state == "running" and sys.stdin.isatty():
        from tui.cli.sync import offer

        offer(server.project)


@app.command()
def stop(
    project: ProjectOption = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the stop is requested.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop your develop server for the project; the workspace stays on the volume."""
    name = project or default_project()
    with state.client() as client:
        server = find_server(client, name)
        if server is None:
            fail(f"You have no develop server for project {name}.")
        server = client.stop_devserver(server.id)
        if not no_wait and server.state == "stopping":
            server = wait_for(client, server.id, {"stopped"}, START_TIMEOUT_S)
    if as_json:
        print_json(server)
    else:
        console.print(f"Develop server {server.id} for project {server.project} is {server.state}.")


@app.command()
def status(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show your develop server for the project, with its own health when it is running."""
    name = project or default_project()
    with state.client() as client:
        server = find_server(client, name)
        if server is None:
            if as_json:
                print_json(None)
                raise typer.Exit(3)
            if not project_exists(client, name):
                fail(f"Project {name} does not exist; create it with `yard projects add {name}`.", 3)
            fail(f"You have no develop server for project {name}; start one with `yard dev start -p {name}`.", 3)
        health = None
        if server.state == "running":
            try:
                health = client.devserver_call(server.id, "GET", "/health")
            except DevyardError as exc:
                health = {"ok": False, "error": str(exc)}
    shown = {**server.model_dump(mode="json"), "health": health}
    if as_json:
        print_json(shown)
        return
    details(shown, SHOW)
    if health is not None:
        console.print(f"health: {'ok' if health.get('ok') else health.get('error', 'not ok')}", highlight=False)
    if server.stale_environment:
        console.print(STALE.format(env=server.environment, project=server.project), highlight=False, soft_wrap=True)


STALE = (
    "Environment {env} changed after this server started; it still has the old values."
    " `yard dev restart -p {project}` gives it the new ones (the workspace stays)."
)


@app.command()
def restart(
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop your develop server and start it again: it gets its environment's current values.

    The workspace stays; open shells and commands in it end.
    """
    name = project or default_project()
    with state.client() as client:
        server = find_server(client, name)
        if server is None:
            fail(f"You have no develop server for project {name}; start one with `yard dev start -p {name}`.")
        if server.state not in ("stopped", "failed"):
            stopping = client.stop_devserver(server.id)
            if stopping.state != "stopped":
                wait_for(client, server.id, {"stopped"}, START_TIMEOUT_S)
        server = client.start_devserver(name, environment=server.environment)
        if server.state != "running":
            server = wait_for(client, server.id, {"running"}, START_TIMEOUT_S)
    if as_json:
        print_json(server)
    elif server.state == "failed":
        fail(f"Develop server {server.id} failed to start: {server.error or 'see `yard dev logs`'}")
    else:
        console.print(
            f"Develop server {server.id} for project {server.project} restarted"
            f" with environment {server.environment or '(none)'}'s current values."
        )
    if server.state == "failed":
        raise typer.Exit(1)


@app.command("ls")
def list_servers(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Admins: every user's servers.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List your develop servers."""
    with state.client() as client:
        servers = client.list_devservers(project=project, all_users=all_users)
    if as_json:
        print_json(servers)
    elif not servers:
        console.print("No develop servers; start one with `yard dev start`.")
    else:
        table(servers, COLUMNS)


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    project: ProjectOption = None,
    cwd: Annotated[str | None, typer.Option("--cwd", help="Working directory inside the workspace.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.1, help="Stop the command after SECONDS.")] = None,
    tty: Annotated[
        bool, typer.Option("--tty", help="Give the command a pseudo-terminal (colours, progress bars, line buffering).")
    ] = False,
    no_stdin: Annotated[
        bool, typer.Option("--no-stdin", "-n", help="Do not forward stdin (it is forwarded when not a terminal).")
    ] = False,
) -> None:
    """Run COMMAND in your develop server's workspace; its output streams here, its exit code is yours.

    stdin is forwarded when it is not a terminal (`echo hi | yard dev exec -- cat`); its end closes
    the command's stdin."""
    from control.wire.frames import FrameDecoder
    from tui.cli.closed_pipe import exit_quietly, watch_stdout
    from tui.cli.exec_request import StdinTooLarge, exec_body

    if not command or not command[0].strip():
        fail("Give the command to run after --, e.g. `yard dev exec -- ls -la`.")
    from tui.cli.exec_output import write_exec_frames

    with state.client() as client:
        server = running_server(client, project)
        try:
            body = exec_body(command, cwd, timeout, tty, not no_stdin)
        except StdinTooLarge as exc:
            fail(str(exc))
        decoder = FrameDecoder()
        stream = client.devserver_stream(server.id, "POST", "/exec", json=body)
        pieces = ((frame.kind, frame.payload) for piece in stream for frame in decoder.feed(piece))
        watch_stdout()  # `yard dev exec ... | head -1`: leave when the reader does (the command is stopped)
        try:
            code = write_exec_frames(pieces)
        except KeyboardInterrupt:
            # Closing the stream makes the develop server stop the command's process group.
            raise typer.Exit(130) from None
        except BrokenPipeError:
            exit_quietly()
    raise typer.Exit(code)


@app.command()
def shell(project: ProjectOption = None) -> None:
    """An interactive shell in your develop server's workspace (a real PTY; resizes follow yours)."""
    from tui.cli.terminal import ShellLost, open_shell

    if not sys.stdin.isatty():
        # Without a terminal the remote shell would wait for input that never comes.
        fail(
            "`yard dev shell` needs a terminal (stdin is not one); in scripts use `yard dev exec -- CMD` instead.",
            code=2,
        )
    with state.client() as client:
        server = running_server(client, project)
        url = client.websocket_url(f"/devservers/{server.id}/pty")
        headers = client.auth_headers
        ssl_context = client.ssl_context
    try:
        code = open_shell(url, headers, ssl_context)
    except ShellLost as exc:
        errors.print(str(exc), highlight=False)
        raise typer.Exit(CONNECTION_LOST) from None
    raise typer.Exit(code)


@app.command()
def logs(
    project: ProjectOption = None,
    tail: Annotated[int, typer.Option("--tail", "-n", min=1, max=10_000, help="How many lines.")] = 200,
) -> None:
    """The develop server's own log (requests, commands, shells, restarts)."""
    with state.client() as client:
        server = running_server(client, project)
        out = sys.stdout.buffer
        for piece in client.devserver_stream(server.id, "GET", "/logs", params={"tail": tail}):
            out.write(piece)
        out.flush()
