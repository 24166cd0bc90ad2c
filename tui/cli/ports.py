"""`yard dev forward|ports|preview`: reach ports of your develop server from this machine."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from control.client.forward import Forwarder, ForwardEvent, LocalPortTaken, PortSpec, follow_ports
from tui.cli.context import state
from tui.cli.dev import ProjectOption, running_server
from tui.cli.output import console, errors, fail, print_json, table

# Exit codes: 1 a problem before forwarding began, 3 the API refused the forward while running.
REFUSED_WHILE_RUNNING = 3


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def ports(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the TCP ports programs in your develop server listen on (process, port, since when)."""
    with state.client() as client:
        server = running_server(client, project)
        listening = client.list_ports(server.id)
    if as_json:
        print_json(listening)
    elif not listening:
        console.print(
            f"Nothing listens in develop server {server.id} yet; start a program there"
            " (e.g. `yard dev exec -- python -m http.server 8000`), then `yard dev forward 8000`."
        )
    else:
        table(listening, ["port", "address", "pid", "since", "process"])


def forward(
    ports: Annotated[
        list[str] | None,
        typer.Argument(help="LOCAL[:REMOTE] port pairs, e.g. 8080 or 8081:8080 (LOCAL 0: any free port)."),
    ] = None,
    project: ProjectOption = None,
    auto: Annotated[
        bool, typer.Option("--auto", help="Also forward every port that starts listening, until it stops.")
    ] = False,
    retry: Annotated[
        float,
        typer.Option("--retry", min=0, help="Seconds a new connection waits for the API or server to come back."),
    ] = 30.0,
) -> None:
    """Forward local ports to ports inside your develop server until Ctrl-C.

    Each connection to 127.0.0.1:LOCAL is tunnelled through the control API, with your token, to
    REMOTE on the develop server's loopback. Many connections and ports at once; when the API or
    the server restarts, new connections wait for it to be back."""
    specs: list[PortSpec] = []
    for text in ports or []:
        try:
            specs.append(PortSpec.parse(text))
        except ValueError as exc:
            fail(str(exc))
    if not specs and not auto:
        fail(
            "Give at least one port to forward, e.g. `yard dev forward 8080` or `yard dev forward 8081:8080`,"
            " or --auto to forward each one that listens."
        )
    remotes = [spec.remote for spec in specs]
    if len(set(remotes)) != len(remotes):
        fail("Each remote port can be forwarded once per command; drop the repeated one.")
    with state.client() as client:
        server = running_server(client, project)
        forwarder = Forwarder(client.websocket_url, client.auth_headers, server.id, retry_s=retry)
    where = f"develop server {server.id} (project {server.project})"
    watch = _port_lister(server.id) if auto else None
    code = asyncio.run(_forward(forwarder, specs, where, watch))
    raise typer.Exit(code)


def _port_lister(server_id: int) -> Callable[[], Awaitable[list[int]]]:
    client = state.client()

    async def listening() -> list[int]:
        return [p.port for p in await asyncio.to_thread(client.list_ports, server_id)]

    return listening


async def _forward(
    forwarder: Forwarder, specs: list[PortSpec], where: str, watch: Callable[[], Awaitable[list[int]]] | None
) -> int:
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def notify(event: ForwardEvent) -> None:
        out = console if event.kind in ("forwarding", "stopped") else errors
        out.print(event.message, highlight=False, soft_wrap=True)
        if event.kind == "fatal" and not stopped.done():
            stopped.set_result(REFUSED_WHILE_RUNNING)

    forwarder.notify = notify
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if not stopped.done():
            stopped.set_result(0)

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop)
    try:
        for spec in specs:
            try:
                bound = await forwarder.listen(spec)
            except LocalPortTaken as exc:
                errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
                return 1
            console.print(f"Forwarding 127.0.0.1:{bound.local} -> port {bound.remote} in {where}.", highlight=False)
        if watch is not None:
            console.print(f"Forwarding each port that listens in {where}, as it appears.", highlight=False)
            follower = asyncio.ensure_future(
                follow_ports(forwarder, watch, exclude=frozenset(spec.remote for spec in specs))
            )
            stopped.add_done_callback(lambda _: follower.cancel())
        console.print("Press Ctrl-C to stop.", highlight=False)
        return await stopped
    finally:
        await forwarder.close()
