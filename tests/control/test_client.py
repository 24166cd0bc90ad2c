"""The client turns transport and auth problems into one clear exception."""

from __future__ import annotations

import asyncio
import socket

import pytest

from control.client import AsyncControlClient, AuthFailed, ConnectionFailed, ControlClient, Forbidden, NotFound
from tests.stack import Stack


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_api_is_connection_failed() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with (
        ControlClient(url, "dy_x") as client,
        pytest.raises(ConnectionFailed, match=f"Cannot reach the devyard API at {url}"),
    ):
        client.health()


def test_wrong_token_is_auth_failed(sqlite_stack: Stack) -> None:
    with sqlite_stack.client("dy_wrong") as client, pytest.raises(AuthFailed, match="The token is not valid"):
        client.me()


def test_status_codes_map_to_exceptions(sqlite_stack: Stack) -> None:
    viewer = sqlite_stack.user("v", "viewer")
    with sqlite_stack.client(viewer) as client:
        with pytest.raises(Forbidden, match="Viewers have read-only access"):
            client.create_project("x")
        with pytest.raises(NotFound, match="Project nope does not exist"):
            client.get_project("nope")


def test_async_client_has_the_same_calls(sqlite_stack: Stack) -> None:
    async def scenario() -> tuple[str, list[str]]:
        async with AsyncControlClient(sqlite_stack.url, sqlite_stack.admin_token) as client:
            await client.create_project("async-made")
            me = await client.me()
            projects = await client.list_projects()
        return me.name, [p.name for p in projects.items]

    assert asyncio.run(scenario()) == ("admin", ["async-made"])
