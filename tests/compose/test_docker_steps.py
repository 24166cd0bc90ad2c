"""Steps and stop signals on the Docker substrate: the run worker runs inside the container and
stops the step's process group there (the agent's cancel reaches it as ``docker kill --signal
TERM`` through the container's init)."""

from __future__ import annotations

from control.logformat import decode, raw_output
from tests.compose.test_docker import docker_stack, launcher
from tests.runner.test_steps import IGNORES_ALL, TRAPS_INT
from tests.stack import Stack, wait_for_run
from tests.waiting import wait_until

__all__ = ["docker_stack", "launcher"]


def _log(stack: Stack, run_id: int) -> bytes:
    with stack.client() as client:
        blob, _ = client.read_logs(run_id)
    return blob


def test_three_steps_in_a_container_stop_at_the_failing_one(docker_stack: Stack) -> None:
    steps = [
        {"name": "deps", "command": ["sh", "-c", "echo deps; touch made-by-deps; mkdir out; echo a > out/a.txt"]},
        {"name": "build", "command": ["sh", "-c", "test -e made-by-deps && echo same folder; exit 6"]},
        {"name": "test", "command": ["echo", "never"]},
    ]
    with docker_stack.client() as client:
        run = client.create_run("demo", [], steps=steps, artifacts=["out/*"])
        final = wait_for_run(client, run.id, timeout=60)
        # Written during the run, judged by the clock of the container's file system view.
        assert [a.path for a in client.list_artifacts(run.id)] == ["out/a.txt"]
    assert (final.state, final.exit_code) == ("failed", 6)
    assert [(s.state, s.exit_code) for s in final.steps] == [("succeeded", 0), ("failed", 6), ("skipped", None)]
    blob = _log(docker_stack, run.id)
    assert raw_output(blob) == b"deps\nsame folder\n"
    assert [r.text[:8] for r in decode(blob) if r.stream == "s"] == [b"1/3 deps", b"2/3 buil"]


def test_cancel_with_int_in_a_container_keeps_the_clean_up_line(docker_stack: Stack) -> None:
    with docker_stack.client() as client:
        run = client.create_run("demo", ["python3", "-c", TRAPS_INT], stop_signals=["INT", "TERM"], stop_grace_s=20)
        wait_until(lambda: b"ready\n" in raw_output(_log(docker_stack, run.id)), timeout=60, message="ready")
        client.cancel_run(run.id)
        final = wait_for_run(client, run.id, timeout=60)
    assert final.state == "cancelled" and final.exit_code == 0
    assert raw_output(_log(docker_stack, run.id)) == b"ready\ncleaning up: CANCEL query 42\n"


def test_a_timeout_in_a_container_escalates_to_kill(docker_stack: Stack) -> None:
    with docker_stack.client() as client:
        run = client.create_run(
            "demo", ["python3", "-c", IGNORES_ALL], timeout_s=2, stop_signals=["INT", "TERM"], stop_grace_s=0.5
        )
        final = wait_for_run(client, run.id, timeout=60)
    assert final.state == "timed_out" and final.exit_code == 128 + 9
    assert [s.state for s in final.steps] == ["timed_out"]
