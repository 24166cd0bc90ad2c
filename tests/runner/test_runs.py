"""Runs end to end: API → agent → run worker → log chunks in object storage → followers."""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.utils
import itertools
import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from control.client import ApiError, Forbidden, NotFound
from control.logformat import decode, raw_output
from control.wire.runs import RunOut
from tests.runner.test_orphans import running_in_group
from tests.stack import Stack, wait_for_run
from tests.waiting import wait_until

PY = sys.executable


def stored_log(stack: Stack, run_id: int) -> bytes:
    with stack.client() as client:
        blob, _ = client.read_logs(run_id)
    return blob


def test_output_is_stored_byte_for_byte(run_stack: Stack, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'plain line\\n')\n"
        "out.write(b'\\x1b[31mred\\x1b[0m and invalid utf-8 \\xff\\xfe\\n')\n"
        "out.write(b'carriage\\rreturn\\n')\n"
        "out.flush()\n"
        "sys.stderr.write('to stderr\\n'); sys.stderr.flush()\n"
        "out.write(b'no newline at the end'); out.flush()\n"
    )
    with run_stack.client() as client:
        run = client.create_run("demo", [PY, "-c", script])
        final = wait_for_run(client, run.id)
    assert final.state == "succeeded" and final.exit_code == 0
    blob = stored_log(run_stack, run.id)
    # stdout and stderr share one channel: the log is what `> file 2>&1` holds, in order.
    assert raw_output(blob) == (
        b"plain line\n\x1b[31mred\x1b[0m and invalid utf-8 \xff\xfe\ncarriage\rreturn\nto stderr\nno newline at the end"
    )
    records = list(decode(blob))
    assert {r.stream for r in records} == {"m"}
    assert records[-1].complete is False
    assert all(abs(r.ts_ms / 1000 - time.time()) < 120 for r in records)
    assert final.log_lines == len(records) and final.log_bytes == len(blob)
    # The worker's spool (spec, log) is gone, folder and all, once it has reported the outcome:
    # nothing piles up per run.
    spool = tmp_path / "agent" / "spool" / str(run.id)
    wait_until(lambda: not spool.exists(), timeout=10, message=f"the spool {spool} to be removed")


def test_exit_code_and_missing_command(run_stack: Stack) -> None:
    with run_stack.client() as client:
        failing = client.create_run("demo", ["sh", "-c", "echo bye; exit 7"])
        missing = client.create_run("demo", ["definitely-not-a-command-xyz"])
        failed = wait_for_run(client, failing.id)
        absent = wait_for_run(client, missing.id)
    assert (failed.state, failed.exit_code) == ("failed", 7)
    assert absent.state == "failed" and absent.exit_code == 127
    assert absent.error == "Command 'definitely-not-a-command-xyz' was not found on the agent's PATH."


def test_bad_requests_are_refused_and_store_nothing(run_stack: Stack) -> None:
    other = run_stack.user("other-dev", "developer")
    with run_stack.client() as admin:
        with pytest.raises(ApiError, match="the command is empty") as empty:
            admin.create_run("demo", [])
        assert empty.value.status == 422
        with pytest.raises(ApiError, match="the command is empty"):
            admin.create_run("demo", ["  "])
        with pytest.raises(NotFound, match="Project nope does not exist"):
            admin.create_run("nope", ["true"])
    with run_stack.client(other) as client, pytest.raises(Forbidden, match="Only the owner of project demo"):
        client.create_run("demo", ["true"])
    with run_stack.client() as admin:
        assert admin.list_runs().items == []


def test_idempotency_key_returns_the_same_run(run_stack: Stack) -> None:
    with run_stack.client() as client:
        first = client.create_run("demo", ["true"], idempotency_key="deploy-42")
        second = client.create_run("demo", ["true"], idempotency_key="deploy-42")
        assert first.id == second.id
        assert len(client.list_runs().items) == 1


def test_cancel_stops_the_whole_process_group(run_stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    # The command ignores SIGTERM and has a child: both must be gone after the grace period.
    script = f"trap '' TERM; sleep 300 & echo $! > {marker}; echo started; wait"
    with run_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script])
        wait_for_run(client, run.id, states=("running",))
        child = int(wait_until(lambda: _written(marker), timeout=10, message="the command to record its child"))
        client.cancel_run(run.id)
        final = wait_for_run(client, run.id, timeout=20)
    assert final.state == "cancelled" and final.cancel_requested
    wait_until(lambda: _ended(child), timeout=10, message=f"the command's child {child} to end")
    assert b"started" in stored_log(run_stack, run.id)


def test_a_cancel_right_after_the_launch_always_ends_cancelled(run_stack: Stack) -> None:
    """The cancel can reach the worker before it has its SIGTERM handler, before it started the
    command, or while it starts it: every window ends ``cancelled``, never ``failed``."""
    with run_stack.client() as client:
        for delay in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
            run = client.create_run("demo", ["sh", "-c", "echo started; sleep 30"])
            run_id = run.id
            wait_until(lambda: client.get_run(run_id).state != "queued", timeout=10, message="the launch")  # noqa: B023
            time.sleep(delay)  # the delay is what is tested: each one cancels in another window of the start
            client.cancel_run(run.id)
            final = wait_for_run(client, run.id, timeout=20)
            assert final.state == "cancelled", (delay, final)


def test_cancel_a_queued_run_is_immediate(run_stack: Stack) -> None:
    with run_stack.client() as client:
        client.update_project("demo", max_concurrent_runs=1)
        blocker = client.create_run("demo", ["sleep", "30"])
        queued = client.create_run("demo", ["true"])
        wait_for_run(client, blocker.id, states=("running",))
        assert client.get_run(queued.id).state == "queued"
        assert client.cancel_run(queued.id).state == "cancelled"
        client.cancel_run(blocker.id)
        wait_for_run(client, blocker.id)
        with pytest.raises(ApiError, match="already finished"):
            client.cancel_run(queued.id)


def test_timeout(run_stack: Stack) -> None:
    with run_stack.client() as client:
        run = client.create_run("demo", ["sleep", "30"], timeout_s=1)
        final = wait_for_run(client, run.id, timeout=20)
    assert final.state == "timed_out"


def test_retries_until_success(run_stack: Stack, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo attempt $n; [ $n -ge 2 ]"
    with run_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script], max_retries=3)
        first = wait_for_run(client, run.id)
        assert first.state == "failed"

        def succeeded_retry() -> RunOut | None:
            retry = next((r for r in client.list_runs().items if r.retry_of_id == run.id), None)
            return retry if retry and retry.state == "succeeded" else None

        retry = wait_until(succeeded_retry, timeout=20, message="a retry to succeed")
        runs = client.list_runs().items
    assert retry is not None and retry.state == "succeeded" and retry.attempt == 2 and retry.trigger == "retry"
    assert len(runs) == 2  # no third attempt after a success


def test_project_concurrency_limit_keeps_order(run_stack: Stack) -> None:
    with run_stack.client() as client:
        client.update_project("demo", max_concurrent_runs=1)
        ids = [client.create_run("demo", ["sh", "-c", "sleep 0.3"]).id for _ in range(3)]
        finals = [wait_for_run(client, i, timeout=30) for i in ids]
    assert all(f.state == "succeeded" for f in finals)
    spans = [(f.started_at, f.finished_at) for f in finals]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert str(start) >= str(end), "runs of a project limited to 1 overlapped"


def test_secrets_are_masked_in_stored_logs(run_stack: Stack) -> None:
    with run_stack.client() as client:
        client.create_environment(
            "demo", "prod", variables={"GREETING": "hello"}, secrets={"API_KEY": "sk-very-secret-42"}
        )
        run = client.create_run("demo", ["sh", "-c", "echo $GREETING key=$API_KEY"], environment="prod")
        final = wait_for_run(client, run.id)
    assert final.state == "succeeded"
    assert raw_output(stored_log(run_stack, run.id)) == b"hello key=***\n"


def test_artifacts_with_non_latin1_names_download(run_stack: Stack, tmp_path: Path) -> None:
    names = ["报告.txt", "🎉 party.bin", 'café "quoted".csv', "plain.txt"]
    script = "import os\nos.makedirs('out')\n" + "".join(
        f"open(os.path.join('out', {name!r}), 'w').write({name!r})\n" for name in names
    )
    with run_stack.client() as client:
        run = client.create_run("demo", [PY, "-c", script], artifacts=["out/*"])
        assert wait_for_run(client, run.id).state == "succeeded"
        artifacts = {a.path: a for a in client.list_artifacts(run.id)}
    assert sorted(artifacts) == sorted(f"out/{name}" for name in names)
    auth = {"Authorization": f"Bearer {run_stack.admin_token}"}
    with httpx.Client(base_url=run_stack.url + "/api/v1", headers=auth, timeout=10) as http:
        for name in names:
            artifact = artifacts[f"out/{name}"]
            response = http.get(f"/runs/{run.id}/artifacts/{artifact.id}/content")
            assert response.status_code == 200, response.text
            assert response.content == name.encode()
            header = response.headers["content-disposition"]
            assert header.isascii(), header
            assert _filename_from(header) == name, header


def _filename_from(header: str) -> str:
    """What a browser saves the download as: ``filename*`` (RFC 5987) if given, else ``filename``;
    decoded by the standard library's RFC 2231 reader, not by our code."""
    parsed = email.message.Message()
    parsed["content-disposition"] = header
    values = [value for key, value in parsed.get_params(header="content-disposition") or [] if key == "filename"]
    extended = [value for value in values if isinstance(value, tuple)]
    return email.utils.collapse_rfc2231_value(extended[0] if extended else values[0])


def test_artifact_globs_cannot_leave_the_working_directory(run_stack: Stack) -> None:
    with run_stack.client() as client, pytest.raises(ApiError, match="must stay inside the working directory"):
        client.create_run("demo", ["true"], artifacts=["../secrets/*"])


def test_artifacts_roundtrip(run_stack: Stack, tmp_path: Path) -> None:
    script = "mkdir -p target/sub && echo '{\"ok\": true}' > target/run.json && head -c 300000 /dev/urandom > target/sub/blob.bin && echo x > other.txt && ln -s /etc/passwd target/escape.json"
    with run_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script], artifacts=["target/**/*.json", "target/sub/*.bin"])
        final = wait_for_run(client, run.id)
        assert final.state == "succeeded"
        artifacts = client.list_artifacts(run.id)
        assert [a.path for a in artifacts] == ["target/run.json", "target/sub/blob.bin"]
        blob = next(a for a in artifacts if a.path.endswith(".bin"))
        with open(tmp_path / "blob.bin", "wb") as handle:
            assert client.download_artifact(run.id, blob.id, handle) == 300000
    import hashlib

    assert hashlib.sha256((tmp_path / "blob.bin").read_bytes()).hexdigest() == blob.sha256
    # The run's own folder is gone once the artifacts are uploaded and the outcome reported.
    assert _gone(tmp_path / "agent" / "volume" / "runs" / str(run.id))


def _gone(path: Path, timeout: float = 10) -> bool:
    wait_until(lambda: not path.exists(), timeout=timeout, message=f"{path} to be removed")
    return True


def _written(marker: Path) -> str | None:
    """The content of ``marker`` once its writer finished the line (``>`` creates it empty first)."""
    try:
        text = marker.read_text()
    except FileNotFoundError:
        return None
    return text if text.endswith("\n") else None


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for its (new) parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _worker_pid(run_id: int, under: Path) -> int:
    """The pid of the run worker of ``run_id`` whose spool lies under ``under`` (its argv names
    the spec in the run's spool). Run ids restart at 1 in every test's database, so a worker left
    by another test's stack can have the same id: only this test's folder tells them apart."""
    prefix = str(under.resolve()).encode() + b"/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runner.worker" in argv and any(
            arg.startswith(prefix) and arg.endswith(f"/spool/{run_id}/spec.json".encode()) for arg in argv
        ):
            return int(entry.name)
    raise AssertionError(f"no worker for run {run_id}")


def test_the_agent_stops_the_command_and_removes_the_folder_of_a_run_whose_worker_was_killed(
    run_stack: Stack, tmp_path: Path
) -> None:
    """The command lives in a session of its own, so it outlives a killed worker: the agent
    stops its whole group (the background child too) before removing the folder it works in."""
    marker = tmp_path / "group.pid"
    script = f"echo $$ > {marker}; mkdir -p build && echo data > build/out.txt; sleep 60 & echo started; wait"
    folder = tmp_path / "agent" / "volume" / "runs"
    with run_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script])
        wait_for_run(client, run.id, states=("running",))
        out = folder / str(run.id) / "build" / "out.txt"
        wait_until(out.exists, timeout=10, message="the command to write its file")
        group = int(wait_until(lambda: _written(marker), timeout=10, message="the command to record its group"))
        os.kill(_worker_pid(run.id, tmp_path), signal.SIGKILL)
        try:
            final = wait_for_run(client, run.id, timeout=20)
            assert final.state == "failed" and "worker was killed" in str(final.error)
            assert _gone(folder / str(run.id))
            assert not running_in_group(group)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)  # if the agent failed to


def test_a_folder_holding_a_refused_artifact_stays(tmp_path: Path, database_url: str) -> None:
    from tests.stack import running_agent, running_stack

    script = "head -c 100 /dev/zero > big.bin && echo small > small.txt"
    with (
        running_stack(tmp_path / "data", database_url, max_artifact_bytes=50) as stack,
        running_agent(stack, tmp_path / "agent"),
        stack.client() as client,
    ):
        client.create_project("demo")
        run = client.create_run("demo", ["sh", "-c", script], artifacts=["*.bin", "*.txt"])
        final = wait_for_run(client, run.id)
        assert [a.path for a in client.list_artifacts(run.id)] == ["small.txt"]
    assert final.state == "succeeded"
    folder = tmp_path / "agent" / "volume" / "runs" / str(run.id)
    assert (folder / "big.bin").stat().st_size == 100  # that file exists nowhere else


def test_follow_streams_live_and_resumes_without_gaps(run_stack: Stack) -> None:
    script = "for i in $(seq 1 20); do echo line $i; sleep 0.05; done"
    with run_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script])
        received: list[bytes] = []
        last_seq = 0
        for event in client.follow_logs(run.id):
            if event.event == "chunk":
                data = event.json()
                received.append(base64.b64decode(data["data"]))
                last_seq = data["seq"]
                if len(received) == 3:
                    break  # drop the connection mid-run
        for event in client.follow_logs(run.id, from_seq=last_seq + 1):
            if event.event == "chunk":
                received.append(base64.b64decode(event.json()["data"]))
            elif event.event == "end":
                assert event.json()["state"] == "succeeded"
    assert raw_output(b"".join(received)) == b"".join(b"line %d\n" % i for i in range(1, 21))


def test_tail_and_ranges(run_stack: Stack) -> None:
    with run_stack.client() as client:
        run = client.create_run("demo", ["seq", "1", "5000"])
        wait_for_run(client, run.id)
        tail, _ = client.read_logs(run.id, tail=3)
        whole, last = client.read_logs(run.id)
        later, _ = client.read_logs(run.id, from_seq=last + 1)
    assert raw_output(tail) == b"4998\n4999\n5000\n"
    assert raw_output(whole) == b"".join(b"%d\n" % i for i in range(1, 5001))
    assert later == b""


def test_chunk_protocol_refuses_bad_input(run_stack: Stack) -> None:
    with run_stack.client() as client:
        a = client.create_run("demo", ["sh", "-c", "echo a"])
        b = client.create_run("demo", ["sh", "-c", "echo b"])
        wait_for_run(client, a.id)
        wait_for_run(client, b.id)
    agent_token = run_stack.user("chunk-tester", "agent")
    headers = {"Authorization": f"Bearer {agent_token}"}
    base = run_stack.url + "/api/v1/runs"
    with httpx.Client(headers=headers) as http:
        stored = http.get(f"{base}/{a.id}", headers={"Authorization": f"Bearer {run_stack.admin_token}"}).json()
        seq = stored["log_chunks"]
        original, _ = run_stack.client().read_logs(a.id)
        # The same bytes again under the last sequence number: accepted as a duplicate, nothing added.
        again = http.put(f"{base}/{a.id}/logs/{seq}", content=original if seq == 1 else b"")
        if seq == 1:
            assert again.json()["result"] == "duplicate"
        assert http.put(f"{base}/{a.id}/logs/{seq}", content=b"1 o different\n").status_code == 409
        assert http.put(f"{base}/{a.id}/logs/{seq + 5}", content=b"1 o gap\n").status_code == 409
        assert http.put(f"{base}/{a.id}/logs/0", content=b"1 o zero\n").status_code == 422
        assert http.put(f"{base}/{a.id}/logs/{seq + 1}", content=b"1 o torn").status_code == 409
        assert http.put(f"{base}/999999/logs/1", content=b"1 o forged\n").status_code == 404
    assert run_stack.client().read_logs(a.id)[0] == original
    # A run token is good for its own run only: using it on another run id is a 404.
    viewer = run_stack.user("peeker", "viewer")
    assert (
        httpx.put(
            f"{base}/{b.id}/logs/9", content=b"1 o x\n", headers={"Authorization": f"Bearer {viewer}"}
        ).status_code
        == 403
    )
    assert (
        httpx.put(
            f"{base}/{b.id}/logs/9", content=b"1 o x\n", headers={"Authorization": "Bearer dyr_forged"}
        ).status_code
        == 401
    )


def test_run_events_are_published(run_stack: Stack) -> None:
    seen: list[str] = []
    done = threading.Event()

    def follow() -> None:
        with run_stack.client() as client:
            for event in client.events(types=["run"]):
                data = event.json()["data"]
                seen.append(f"{event.event}:{data['state']}")
                if data["state"] == "succeeded":
                    done.set()
                    return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    wait_until(lambda: run_stack.services.events.subscriber_count > 0, timeout=5, message="the follower to subscribe")
    with run_stack.client() as client:
        client.create_run("demo", ["true"])
    assert done.wait(20)
    assert seen[0] == "run.created:queued"
    assert "run.updated:running" in seen and seen[-1] == "run.updated:succeeded"
