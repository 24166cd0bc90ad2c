"""A stopping server ends its long-polls and streams at once instead of waiting them out."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.stack import Stack
from tests.waiting import wait_until


def test_an_agent_long_poll_returns_when_the_server_begins_to_stop(sqlite_stack: Stack) -> None:
    token = sqlite_stack.user("agent-1", "agent")
    with sqlite_stack.client(token) as agent:
        agent_id = agent.register_agent("a1").id
        answer: dict[str, Any] = {}

        def poll() -> None:
            started = time.monotonic()
            answer["body"] = agent.claim_work(agent_id, wait_s=20)
            answer["seconds"] = time.monotonic() - started

        poller = threading.Thread(target=poll)
        poller.start()
        wait_until(lambda: sqlite_stack.services.hub.waiter_count > 0, timeout=10, message="the poll to wait for work")
        assert poller.is_alive()
        sqlite_stack.services.begin_shutdown()
        poller.join(10)
    assert not poller.is_alive(), "the long-poll held on"
    assert answer["body"].items == [] and answer["seconds"] < 10


def test_an_event_stream_ends_when_the_server_begins_to_stop(sqlite_stack: Stack) -> None:
    lines: list[str] = []
    headers = {"Authorization": f"Bearer {sqlite_stack.admin_token}"}

    def listen() -> None:
        with (
            httpx.Client(timeout=30) as http,
            http.stream("GET", sqlite_stack.url + "/api/v1/events", headers=headers) as response,
        ):
            for line in response.iter_lines():
                lines.append(line)

    listener = threading.Thread(target=listen)
    listener.start()
    wait_until(lambda: lines, timeout=10, message="the stream to start")
    assert lines[0] == ": connected"
    sqlite_stack.services.begin_shutdown()
    listener.join(10)
    assert not listener.is_alive(), "the stream held on"
