"""Two API replicas on one PostgreSQL database: a follower on B sees chunks written through A."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

import pytest

from control.logformat import raw_output
from tests.stack import running_agent, running_stack, wait_for_run
from tests.waiting import wait_until


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_follow_across_replicas_with_listen_notify(tmp_path: Path, database_url: str) -> None:
    shared = (tmp_path / "objects").as_uri()  # replicas share the database and the object store
    with (
        running_stack(tmp_path / "a", database_url, shared) as replica_a,
        running_stack(tmp_path / "b", database_url, shared) as replica_b,
        running_agent(replica_a, tmp_path / "agent"),
    ):
        with replica_a.client() as client_a:
            client_a.create_project("demo")
            script = "import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.2)"
            run = client_a.create_run("demo", [sys.executable, "-c", script])
        received = b""
        gaps: list[float] = []
        last = time.monotonic()
        with replica_b.client() as client_b:
            for event in client_b.follow_logs(run.id):
                if event.event == "chunk":
                    received += base64.b64decode(event.json()["data"])
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now
                elif event.event == "end":
                    break
            final = wait_for_run(client_b, run.id)
    assert final.state == "succeeded"
    assert raw_output(received) == b"".join(b"%d\n" % i for i in range(10))
    # Chunks arrive as they are printed (every ~0.2 s), not in one burst at the end: the wake-up
    # crossed replicas through NOTIFY rather than waiting for a keepalive.
    assert len(gaps) >= 8 and max(gaps[1:]) < 2.0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_events_published_on_one_replica_reach_subscribers_of_another(tmp_path: Path, database_url: str) -> None:
    import threading

    shared = (tmp_path / "objects").as_uri()
    with (
        running_stack(tmp_path / "a", database_url, shared) as replica_a,
        running_stack(tmp_path / "b", database_url, shared) as replica_b,
    ):
        seen: list[str] = []

        def follow() -> None:
            with replica_b.client() as client:
                for event in client.events(types=["project"]):
                    seen.append(event.json()["data"]["name"])
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        wait_until(lambda: replica_b.services.events.subscriber_count > 0, timeout=5, message="the subscription on B")
        with replica_a.client() as client_a:
            client_a.create_project("made-on-a")
        thread.join(10)
    assert seen == ["made-on-a"]
