"""`yard dev forward|ports|preview`: reach ports of your develop server from this machine."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

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
        forwarder = Forwarder(
            client.websocket_url, client.auth_headers, server.id, retry_s=retry, ssl_context=client.ssl_context
        )
    where = f"develop server {server.id} (project {server.project})"
    watch = _port_lister(server.id) if auto else None
    code = _run(_forward(forwarder, specs, where, watch))
    raise typer.Exit(code)


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (it comes with uvicorn[standard]): every byte of every
    forwarded connection passes this loop, and uvloop relays it with less CPU (bench/forward.py)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


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


TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """``90``, ``30m``, ``8h`` or ``2d`` as seconds; ValueError with one sentence otherwise."""
    text = text.strip().lower()
    unit = TTL_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise ValueError(f"--ttl {text!r} is not a duration; give e.g. 30m, 8h or 2d.")
    return int(number) * (unit or 1)


def preview(
    port: Annotated[str | None, typer.Argument(help="The port inside the develop server to open in a browser.")] = None,
    project: ProjectOption = None,
    ttl: Annotated[str, typer.Option("--ttl", help="How long the link works: 30m, 8h, 2d (1m to 7d).")] = "8h",
    list_links: Annotated[bool, typer.Option("--list", help="List the links that still work.")] = False,
    revoke: Annotated[int | None, typer.Option("--revoke", help="Revoke the link with this id.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a link that opens PORT of your develop server in a browser (no token in it).

    The link is for that server and port only, works for --ttl, and can be revoked. Anyone who
    has it can open the app until then: share it as you would share the app."""
    from control.wire.ports import port_problem

    if port is None and not list_links and revoke is None:
        fail("Give the port to preview, e.g. `yard dev preview 8000` (or --list, or --revoke ID).")
    if port is not None and port_problem(port):
        fail(str(port_problem(port)))
    try:
        ttl_s = parse_ttl(ttl)
    except ValueError as exc:
        fail(str(exc))
    if not 60 <= ttl_s <= 7 * 86400:
        fail(f"--ttl {ttl} is out of range; a link works from one minute to seven days.")
    with state.client() as client:
        server = running_server(client, project)
        if revoke is not None:
            revoked = client.revoke_preview(server.id, revoke)
            if as_json:
                print_json(revoked)
            else:
                console.print(f"Preview link {revoked.id} (port {revoked.port}) is revoked.", highlight=False)
            return
        if list_links:
            links = client.list_previews(server.id)
            if as_json:
                print_json(links)
            elif not links:
                console.print("No preview links work now; `yard dev preview PORT` makes one.")
            else:
                table(links, ["id", "port", "created_at", "expires_at", "path"])
            return
        assert port is not None
        issued = client.create_preview(server.id, int(port), ttl_s)
        listening = {p.port for p in client.list_ports(server.id)}
    if as_json:
        print_json(issued)
        return
    console.print(issued.url, highlight=False, soft_wrap=True)
    errors.print(
        f"Preview link {issued.id} opens port {issued.port} until"
        f" {issued.expires_at.astimezone().isoformat(sep=' ', timespec='minutes')};"
        f" revoke it with `yard dev preview --revoke {issued.id}`.",
        highlight=False,
        soft_wrap=True,
    )
    if issued.port not in listening:
        errors.print(
            f"Nothing listens on port {issued.port} in the develop server yet; the link works once something does.",
            highlight=False,
            soft_wrap=True,
        )
