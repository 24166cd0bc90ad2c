"""`yard dev forward|ports|preview`: reach ports of your develop server from this machine."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from control.client.forward import Forwarder, ForwardEvent, LocalPortTaken, PortSpec
from tui.cli.context import state
from tui.cli.dev import ProjectOption, running_server
from tui.cli.output import console, errors, fail

# Exit codes: 1 a problem before forwarding began, 3 the API refused the forward while running.
REFUSED_WHILE_RUNNING = 3


def forward(
    ports: Annotated[
        list[str] | None,
        typer.Argument(help="LOCAL[:REMOTE] port pairs, e.g. 8080 or 8081:8080 (LOCAL 0: any free port)."),
    ] = None,
    project: ProjectOption = None,
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
    if not specs:
        fail("Give at least one port to forward, e.g. `yard dev forward 8080` or `yard dev forward 8081:8080`.")
    remotes = [spec.remote for spec in specs]
    if len(set(remotes)) != len(remotes):
        fail("Each remote port can be forwarded once per command; drop the repeated one.")
    with state.client() as client:
        server = running_server(client, project)
        forwarder = Forwarder(client.websocket_url, client.auth_headers, server.id, retry_s=retry)
    code = asyncio.run(_forward(forwarder, specs, f"develop server {server.id} (project {server.project})"))
    raise typer.Exit(code)


async def _forward(forwarder: Forwarder, specs: list[PortSpec], where: str) -> int:
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def notify(event: ForwardEvent) -> None:
        errors.print(event.message, highlight=False, soft_wrap=True)
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
        console.print("Press Ctrl-C to stop.", highlight=False)
        return await stopped
    finally:
        await forwarder.close()
