"""Steps of a run, stop signals and artifacts that belong to their run, end to end (real agent,
real worker processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from control.client import ApiError
from control.logformat import STEP, decode, raw_output
from tests.compose.devserver_helpers import start_and_wait
from tests.stack import Stack, wait_for_run
from tests.waiting import wait_until

PY = sys.executable

# A Python command that traps SIGINT, prints a clean-up line and exits 0 (dbt does this: it
# cancels its warehouse queries on SIGINT). It says when its handler is in place.
TRAPS_INT = (
    "import signal, sys, time\n"
    "def stop(*_):\n"
    "    print('cleaning up: CANCEL query 42', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGINT, stop)\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)
# Ignores INT and TERM: only KILL ends it.
IGNORES_ALL = (
    "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)


def stored_log(stack: Stack, run_id: int) -> bytes:
    with stack.client() as client:
        blob, _ = client.read_logs(run_id)
    return blob


def log_says(stack: Stack, run_id: int, text: bytes) -> bool:
    return text in raw_output(stored_log(stack, run_id))


def test_three_steps_stop_at_the_failing_one(run_stack: Stack, tmp_path: Path) -> None:
    third = tmp_path / "third-ran"
    steps = [
        {"name": "deps", "command": ["sh", "-c", "echo installing; echo more"]},
        {"name": "build", "command": ["sh", "-c", "echo building; echo broken >&2; exit 3"]},
        {"name": "test", "command": ["sh", "-c", f"echo testing; touch {third}"]},
    ]
    with run_stack.client() as client:
        run = client.create_run("demo", [], steps=steps)
        final = wait_for_run(client, run.id)
    assert (final.state, final.exit_code) == ("failed", 3)
    assert [(s.name, s.state, s.exit_code) for s in final.steps] == [
        ("deps", "succeeded", 0),
        ("build", "failed", 3),
        ("test", "skipped", None),
    ]
    assert not third.exists()  # the third step never ran
    deps, build, test = final.steps
    assert deps.started_at and deps.finished_at and deps.duration_s is not None and deps.duration_s >= 0
    assert build.started_at and build.finished_at and test.started_at is None and test.log_line is None
    # Each step's output starts at its marker record; the markers are not part of the output.
    blob = stored_log(run_stack, run.id)
    records = list(decode(blob))
    assert deps.log_line is not None and build.log_line is not None
    assert records[deps.log_line - 1].stream == STEP and records[deps.log_line - 1].text.startswith(b"1/3 deps: ")
    assert records[build.log_line - 1].text == b"2/3 build: sh -c echo building; echo broken >&2; exit 3"
    assert records[build.log_line].text == b"building"
    assert raw_output(blob) == b"installing\nmore\nbuilding\nbroken\n"
    assert final.command == [] and final.log_lines == len(records)


def test_a_run_of_one_command_is_one_step_without_a_marker(run_stack: Stack) -> None:
    with run_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", "echo one; echo two"])
        final = wait_for_run(client, run.id)
    assert [(s.name, s.state, s.exit_code, s.log_line) for s in final.steps] == [("sh", "succeeded", 0, 1)]
    blob = stored_log(run_stack, run.id)
    assert {r.stream for r in decode(blob)} == {"m"}  # byte for byte, no marker
    assert raw_output(blob) == b"one\ntwo\n"


def test_a_step_that_cannot_start_fails_the_run_and_skips_the_rest(run_stack: Stack) -> None:
    steps = [
        {"name": "ok", "command": ["true"]},
        {"name": "missing", "command": ["no-such-program-xyz"]},
        {"name": "never", "command": ["true"]},
    ]
    with run_stack.client() as client:
        final = wait_for_run(client, client.create_run("demo", [], steps=steps).id)
    assert (final.state, final.exit_code) == ("failed", 127)
    assert final.error == "Step 2 (missing): Command 'no-such-program-xyz' was not found on the agent's PATH."
    assert [s.state for s in final.steps] == ["succeeded", "failed", "skipped"]


def test_bad_steps_and_stop_signals_are_refused(run_stack: Stack) -> None:
    with run_stack.client() as client:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"steps": [{"name": "a", "command": ["true"]}], "command": ["true"]}, "either a command or steps"),
            ({"steps": [{"name": "a", "command": ["true"]}, {"name": "a", "command": ["true"]}]}, "used twice"),
            ({"steps": [{"name": "a/b", "command": ["true"]}]}, "name"),
            ({"steps": [{"name": "a", "command": []}]}, "the command is empty"),
            ({"command": ["true"], "stop_signals": ["KILL"]}, "KILL is always sent"),
            ({"command": ["true"], "stop_signals": ["STOP"]}, "unknown stop signal"),
            ({"command": ["true"], "stop_grace_s": 0}, "greater than 0"),
        ]
        for fields, message in cases:
            command = fields.pop("command", [])
            with pytest.raises(ApiError, match=message) as refused:
                client.create_run("demo", command, **fields)
            assert refused.value.status == 422
        assert client.list_runs().items == []


def test_cancel_with_int_keeps_the_clean_up_line_and_ends_cancelled(run_stack: Stack) -> None:
    with run_stack.client() as client:
        run = client.create_run("demo", [PY, "-c", TRAPS_INT], stop_signals=["SIGINT", "TERM"], stop_grace_s=20)
        wait_until(lambda: log_says(run_stack, run.id, b"ready\n"), timeout=30, message="the command to be ready")
        client.cancel_run(run.id)
        final = wait_for_run(client, run.id, timeout=30)
    assert final.state == "cancelled" and final.exit_code == 0  # it exited by itself, cleanly
    assert raw_output(stored_log(run_stack, run.id)) == b"ready\ncleaning up: CANCEL query 42\n"
    assert final.stop_signals == ["INT", "TERM"] and final.stop_grace_s == 20
    assert [(s.state, s.exit_code) for s in final.steps] == [("cancelled", 0)]


def test_stop_escalates_to_kill_for_a_command_that_ignores_int_and_term(run_stack: Stack) -> None:
    with run_stack.client() as client:
        run = client.create_run("demo", [PY, "-c", IGNORES_ALL], stop_signals=["INT", "TERM"], stop_grace_s=0.5)
        wait_until(lambda: log_says(run_stack, run.id, b"ready\n"), timeout=30, message="the command to be ready")
        client.cancel_run(run.id)
        final = wait_for_run(client, run.id, timeout=30)
    assert final.state == "cancelled" and final.exit_code == 128 + 9  # KILL after INT, TERM and their graces


def test_timeout_uses_the_stop_signals(run_stack: Stack) -> None:
    steps = [
        {"name": "wait", "command": [PY, "-c", TRAPS_INT]},
        {"name": "after", "command": ["true"]},
    ]
    with run_stack.client() as client:
        run = client.create_run("demo", [], steps=steps, timeout_s=2, stop_signals=["INT"], stop_grace_s=20)
        final = wait_for_run(client, run.id, timeout=40)
    assert final.state == "timed_out"
    assert [(s.name, s.state) for s in final.steps] == [("wait", "timed_out"), ("after", "skipped")]
    assert b"cleaning up: CANCEL query 42\n" in raw_output(stored_log(run_stack, run.id))


def test_a_stale_file_of_an_earlier_run_is_not_this_runs_artifact(run_stack: Stack) -> None:
    """A workspace keeps target/ between runs: a run that fails before writing its results must
    not upload the results an earlier run left there."""
    with run_stack.client() as client:
        start_and_wait(client, "demo")
        write = "mkdir -p target && echo '{\"run\": 1}' > target/run_results.json"
        first = client.create_run("demo", ["sh", "-c", write], artifacts=["target/*.json"], in_devserver=True)
        assert wait_for_run(client, first.id).state == "succeeded"
        assert [a.path for a in client.list_artifacts(first.id)] == ["target/run_results.json"]
        parse_error = ["sh", "-c", "echo 'Compilation Error in model orders' >&2; exit 2"]
        second = client.create_run("demo", parse_error, artifacts=["target/*.json"], in_devserver=True)
        assert wait_for_run(client, second.id).state == "failed"
        assert client.list_artifacts(second.id) == []
        # A file the run does write is collected, also one copied with an old modification time.
        rewrite = "touch -d 2001-01-01 target/old.json && cp -p target/old.json target/copied.json && echo 2 > target/run_results.json"
        third = client.create_run("demo", ["sh", "-c", rewrite], artifacts=["target/*.json"], in_devserver=True)
        assert wait_for_run(client, third.id).state == "succeeded"
        assert [a.path for a in client.list_artifacts(third.id)] == [
            "target/copied.json",
            "target/old.json",
            "target/run_results.json",
        ]


def test_two_concurrent_runs_do_not_share_files(run_stack: Stack, tmp_path: Path) -> None:
    """Each run works in a folder of its own: both write target/run_results.json at the same time,
    neither finds the other's, and each run's artifact is its own."""
    gate = tmp_path / "gate"
    gate.mkdir()
    script = (
        f"touch {gate}/$DEVYARD_RUN_ID; while [ $(ls {gate} | wc -l) -lt 2 ]; do sleep 0.05; done; "
        "test ! -e target/run_results.json || { echo shared; exit 9; }; "
        "mkdir -p target && echo $DEVYARD_RUN_ID > target/run_results.json && sleep 0.3 && cat target/run_results.json"
    )
    with run_stack.client() as client:
        runs = [client.create_run("demo", ["sh", "-c", script], artifacts=["target/*.json"]) for _ in range(2)]
        finals = [wait_for_run(client, run.id, timeout=40) for run in runs]
        assert [f.state for f in finals] == ["succeeded", "succeeded"]
        for run in runs:
            assert raw_output(stored_log(run_stack, run.id)) == f"{run.id}\n".encode()
            (artifact,) = client.list_artifacts(run.id)
            target = tmp_path / f"artifact-{run.id}"
            with open(target, "wb") as handle:
                client.download_artifact(run.id, artifact.id, handle)
            assert target.read_text() == f"{run.id}\n"


def test_step_reports_only_move_forward_but_the_outcome_report_is_the_truth(stack: Stack) -> None:
    """A late "running" never undoes a step's end; the worker's outcome report does override the
    ends written when its run was marked lost (the worker was only out of reach)."""
    from sqlmodel import Session, col, select

    from control.db.tables import RunStep
    from control.runs.steps import close_open_steps, record
    from control.wire.runs import WorkerStep

    with stack.client() as client:
        client.create_project("demo")
        run_id = client.create_run(
            "demo", [], steps=[{"name": "a", "command": ["true"]}, {"name": "b", "command": ["true"]}]
        ).id
    with Session(stack.services.engine) as session:
        from control.db.tables import Run

        run = session.get(Run, run_id)
        assert run is not None
        assert record(session, run, [WorkerStep(index=0, state="running", log_line=1)]) == 1
        assert record(session, run, [WorkerStep(index=0, state="succeeded", exit_code=0)]) == 1
        assert record(session, run, [WorkerStep(index=0, state="running")]) == 0  # late: ignored
        assert record(session, run, [WorkerStep(index=1, state="running", log_line=5)]) == 1
        close_open_steps(session, run, "lost", run.queued_at)  # the run was thought lost
        session.commit()
        states = [
            (s.state, s.log_line)
            for s in session.exec(select(RunStep).where(RunStep.run_id == run_id).order_by(col(RunStep.idx)))
        ]
        assert states == [("succeeded", 1), ("failed", 5)]
        assert record(session, run, [WorkerStep(index=1, state="succeeded", exit_code=0)]) == 0
        assert record(session, run, [WorkerStep(index=1, state="succeeded", exit_code=0)], final=True) == 1
        session.commit()
        (second,) = session.exec(select(RunStep).where(RunStep.run_id == run_id, RunStep.idx == 1))
        assert (second.state, second.exit_code, second.log_line) == ("succeeded", 0, 5)


def test_a_retry_runs_the_same_steps_with_the_same_stop_signals(run_stack: Stack) -> None:
    steps = [{"name": "one", "command": ["true"]}, {"name": "two", "command": ["sh", "-c", "exit 1"]}]
    with run_stack.client() as client:
        run = client.create_run("demo", [], steps=steps, max_retries=1, stop_signals=["INT"], stop_grace_s=3)
        assert wait_for_run(client, run.id).state == "failed"
        retry = wait_until(
            lambda: next((r for r in client.list_runs().items if r.retry_of_id == run.id), None),
            timeout=20,
            message="the retry",
        )
        final = wait_for_run(client, retry.id)
    assert [(s.name, s.command, s.state) for s in final.steps] == [
        ("one", ["true"], "succeeded"),
        ("two", ["sh", "-c", "exit 1"], "failed"),
    ]
    assert (final.stop_signals, final.stop_grace_s, final.attempt) == (["INT"], 3, 2)
