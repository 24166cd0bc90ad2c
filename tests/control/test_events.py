"""The events stream delivers what later issues publish, live and resumable."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from control.client import SSEDecoder, SSEEvent
from control.wire.events import PAYLOADS, ProjectRef
from tests.stack import Stack
from tests.waiting import wait_until


class Marker(BaseModel):
    """The payload of the test-only events below (the bus refuses undeclared types)."""

    n: int = 0


@pytest.fixture(autouse=True)
def _test_event_types(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("marker", "marker.start", "marker.end", "devserver.started", "devserver.public"):
        monkeypatch.setitem(PAYLOADS, kind, Marker)


def collect(
    stack: Stack, token: str | None, count: int, **kwargs: Any
) -> tuple[threading.Event, list[SSEEvent], threading.Thread]:
    connected = threading.Event()
    received: list[SSEEvent] = []

    def follow() -> None:
        with stack.client(token) as client:
            stream = client.events(**kwargs)
            connected.set()
            for event in stream:
                received.append(event)
                if len(received) >= count:
                    return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return connected, received, thread


def test_live_events_arrive_in_order(stack: Stack) -> None:
    connected, received, thread = collect(stack, None, 2, types=["project"])
    connected.wait(5)
    wait_until(lambda: stack.services.events.subscriber_count > 0, timeout=5, message="the subscription")
    with stack.client() as admin:
        admin.create_user("someone", role="viewer")  # filtered out by type
        admin.create_project("first")
        admin.create_project("second")
    thread.join(10)
    assert [e.event for e in received] == ["project.created", "project.created"]
    assert [e.json()["data"]["name"] for e in received] == ["first", "second"]


def test_resume_after_an_id_replays_what_was_missed(sqlite_stack: Stack) -> None:
    bus = sqlite_stack.services.events
    ids = [bus.publish("project.created", ProjectRef(id=None, name=name)).id for name in "abc"]
    assert ids == sorted(ids)
    _connected, received, thread = collect(sqlite_stack, None, 2, types=["project"], after=ids[0])
    thread.join(10)
    assert [e.json()["data"]["name"] for e in received] == ["b", "c"]
    assert [int(e.id or 0) for e in received] == ids[1:]


def test_private_events_reach_only_their_audience(sqlite_stack: Stack) -> None:
    alice = sqlite_stack.user("alice", "developer")
    bob = sqlite_stack.user("bob", "developer")
    bus = sqlite_stack.services.events
    with sqlite_stack.client() as admin:
        alice_id = admin.get_user("alice").id
    start = bus.publish("marker", Marker()).id
    bus.publish("devserver.started", Marker(n=1), audience=alice_id)
    bus.publish("devserver.public", Marker(n=2))
    _, seen_by_bob, bob_thread = collect(sqlite_stack, bob, 1, types=["devserver"], after=start)
    _, seen_by_alice, alice_thread = collect(sqlite_stack, alice, 2, types=["devserver"], after=start)
    bob_thread.join(10)
    alice_thread.join(10)
    assert [e.event for e in seen_by_bob] == ["devserver.public"]
    assert [e.event for e in seen_by_alice] == ["devserver.started", "devserver.public"]


def test_sse_decoder_handles_multiline_and_comments() -> None:
    decoder = SSEDecoder()
    lines = [": comment", "id: 7", "event: run.updated", 'data: {"a":', "data: 1}", ""]
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert len(events) == 1
    assert events[0].id == "7" and events[0].event == "run.updated" and events[0].data == '{"a":\n1}'


def test_resuming_after_another_process_event_misses_no_later_local_event() -> None:
    import asyncio
    import json
    import time

    from control.events import EventBus

    async def scenario() -> list[str]:
        here, there = EventBus(), EventBus()
        # A burst elsewhere runs its ids ahead of the clock (they are bumped to stay unique).
        ahead = time.time_ns() // 1000 + 5_000_000
        payload = {"origin": there.origin, "id": ahead, "at": "2026-01-01T00:00:00+00:00"}
        here.receive_remote(json.dumps({**payload, "type": "project.created", "data": {"name": "remote"}}))
        here.publish("project.created", ProjectRef(id=None, name="local"))
        # A client that saw the remote event and reconnects with its id gets what came after.
        _sub, backlog = here.subscribe(["project"], after=ahead)
        return [e.data["name"] for e in backlog]

    assert asyncio.run(scenario()) == ["local"]


def _replay_until_end(stack: Stack, token: str | None, after: int) -> list[tuple[str, Any]]:
    """Every devserver, run and marker event after ``after`` this caller may see, up to the end marker."""
    seen: list[tuple[str, Any]] = []
    with stack.client(token) as client:
        for event in client.events(types=["devserver", "run", "marker"], after=after):
            if event.event == "marker.end":
                return seen
            seen.append((event.event, event.json()["data"]))
    raise AssertionError("the stream ended before the end marker")


def test_develop_servers_reach_only_their_owner_and_no_event_arrives_twice(run_stack: Stack) -> None:
    """Audit (issue 15, item 9): a viewer saw other users' develop servers on the stream, which
    GET answers with 404, and run events arrived twice."""
    from tests.compose.devserver_helpers import start_and_wait
    from tests.stack import wait_for_run

    alice = run_stack.user("alice", "developer")
    viewer = run_stack.user("vic", "viewer")
    bob = run_stack.user("bob", "developer")
    start = run_stack.services.events.publish("marker.start", Marker()).id
    with run_stack.client(alice) as client:
        server = start_and_wait(client, "demo")
        client.stop_devserver(server.id)
        client.stop_devserver(server.id)  # a no-op: nothing to announce
    with run_stack.client() as admin:
        run = admin.create_run("demo", ["true"], in_devserver=False)
        wait_for_run(admin, run.id)
    run_stack.services.events.publish("marker.end", Marker())

    by_admin = _replay_until_end(run_stack, None, start)
    by_alice = _replay_until_end(run_stack, alice, start)
    by_viewer = _replay_until_end(run_stack, viewer, start)
    by_bob = _replay_until_end(run_stack, bob, start)
    server_events = [e for e in by_admin if e[0].startswith("devserver")]
    assert {d["state"] for _, d in server_events} >= {"pending", "running", "stopping"}
    assert [e for e in by_alice if e[0].startswith("devserver")] == server_events
    for outsider in (by_viewer, by_bob):
        assert [e for e in outsider if e[0].startswith("devserver")] == []
        assert [e for e in outsider if e[0].startswith("run")] == [e for e in by_admin if e[0].startswith("run")]
    run_events = [e for e in by_admin if e[0].startswith("run")]
    assert [d["state"] for _, d in run_events][-1] == "succeeded"
    for earlier, later in itertools.pairwise(by_admin):
        assert earlier != later, f"the same event twice: {earlier}"


def test_the_bus_refuses_an_undeclared_type_or_a_payload_of_another_model() -> None:
    """Every event is declared in control/wire/events.py with its payload model (issue 14)."""
    from control.events import EventBus

    bus = EventBus()
    with pytest.raises(TypeError, match="PAYLOADS"):
        bus.publish("project.renamed", ProjectRef(id=1, name="x"))
    with pytest.raises(TypeError, match="ProjectRef"):
        bus.publish("project.created", Marker())
    assert bus.publish("project.created", ProjectRef(id=1, name="x")).data == {"id": 1, "name": "x"}
