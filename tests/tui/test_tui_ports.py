"""The develop server view lists listening ports and forwards the selected one with `f`."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from control.profiles import Profile
from tests.compose.forward_helpers import forward_env, target_in_devserver
from tests.tui.test_tui_snapshots import until
from tui.app import DevyardApp
from tui.screens.devserver_view import DevServerScreen
from tui.widgets.ports_table import PortsTable


def _exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := conn.recv(65536):
            received += chunk
    return bytes(received)


def test_the_view_lists_ports_and_f_forwards_the_selected_one(tmp_path: Path) -> None:
    with forward_env(tmp_path / "env") as env, env.stack.client(env.token) as client:
        server = client.get_devserver(env.server_id)
        with target_in_devserver(client, env.server_id, "echo", tmp_path / "echo") as echo:

            async def scenario() -> None:
                app = DevyardApp(Profile("alice", env.stack.url, env.token))
                async with app.run_test(size=(140, 44)) as pilot:
                    app.open_devserver(server)
                    await until(lambda: isinstance(app.screen, DevServerScreen) and app.screen.query(PortsTable))
                    table = app.screen.query_one(PortsTable)
                    await until(lambda: table.row_count > 0, timeout=20)
                    table.focus()
                    table.move_cursor(row=table.get_row_index(str(echo.port)))
                    assert table.selected_port() == echo.port
                    await pilot.press("f")
                    forwarders = app.forwarders
                    await until(lambda: env.server_id in forwarders and echo.port in forwarders[env.server_id].listeners)
                    local = forwarders[env.server_id].listeners[echo.port].spec.local
                    # On the local substrate the same number is the target's own, so another is used.
                    assert local != echo.port
                    answer = await asyncio.to_thread(_exchange, local, b"from the tui")
                    assert answer == b"from the tuibye 12"
                    await until(lambda: "127.0.0.1:" in str(table.get_row(str(echo.port))[2]))
                    await pilot.press("f")  # again: stops
                    await until(lambda: echo.port not in forwarders[env.server_id].listeners)
                    refused = await asyncio.to_thread(_refused, local)
                    assert refused

            asyncio.run(scenario())


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False
