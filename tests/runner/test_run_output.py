"""A run's stored log is what the command wrote, in the order it wrote it (issue 17).

Real runs through the API, an agent and the run worker; each stored log is compared with what
the same command writes into a file (`> file 2>&1`), byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from control.logformat import decode, raw_output
from tests.runner.test_runs import _worker_pid
from tests.stack import Stack, wait_for_run

PY = sys.executable
ORDER_OUT_THEN_ERR = 'for i in $(seq 1 2000); do echo "build step $i"; done; echo "error: linker failed" >&2; exit 42'
ORDER_ERR_THEN_OUT = 'echo "warning: first" >&2; for i in $(seq 1 2000); do echo "build step $i"; done'
ALTERNATING = "import sys\nfor i in range(50):\n    print(f'out {i}')\n    sys.stderr.write(f'err {i}\\n')\n"


def run_and_read(stack: Stack, command: list[str], **fields: object) -> tuple[dict[str, object], bytes]:
    with stack.client() as client:
        run = client.create_run("demo", command, **fields)
        final = wait_for_run(client, run["id"], timeout=60)
        blob, _ = client.read_logs(run["id"])
    return final, blob


def into_file(command: list[str], tmp_path: Path) -> bytes:
    """What the command writes to `> file 2>&1` (with a run's sparse environment)."""
    target = tmp_path / "expected"
    env = {"PATH": os.environ["PATH"]}
    with target.open("wb") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, check=False)
    return target.read_bytes()


def test_an_error_printed_last_is_stored_last(run_stack: Stack, tmp_path: Path) -> None:
    command = ["sh", "-c", ORDER_OUT_THEN_ERR]
    final, blob = run_and_read(run_stack, command)
    assert final["state"] == "failed" and final["exit_code"] == 42
    lines = raw_output(blob).splitlines()
    assert len(lines) == 2001
    assert lines[-1] == b"error: linker failed" and lines[0] == b"build step 1"
    assert raw_output(blob) == into_file(command, tmp_path)
    with run_stack.client() as client:
        tail, _ = client.read_logs(int(final["id"]), tail=2)  # type: ignore[call-overload]
    assert raw_output(tail) == b"build step 2000\nerror: linker failed\n"


def test_an_error_printed_first_is_stored_first(run_stack: Stack, tmp_path: Path) -> None:
    command = ["sh", "-c", ORDER_ERR_THEN_OUT]
    _, blob = run_and_read(run_stack, command)
    lines = raw_output(blob).splitlines()
    assert lines[0] == b"warning: first" and lines[-1] == b"build step 2000" and len(lines) == 2001
    assert raw_output(blob) == into_file(command, tmp_path)


def test_unflushed_python_output_is_stored_as_a_file_would_hold_it(run_stack: Stack, tmp_path: Path) -> None:
    """Python buffers stdout when it is not a terminal: the order is that of its writes, the
    order `> file 2>&1` shows (stderr first, then stdout at exit)."""
    command = [PY, "-c", ALTERNATING]
    _, blob = run_and_read(run_stack, command)
    expected = into_file(command, tmp_path)
    assert raw_output(blob) == expected
    assert expected.startswith(b"err 0\nerr 1\n")


def test_a_secret_written_in_two_pieces_is_masked(run_stack: Stack) -> None:
    with run_stack.client() as client:
        client.create_environment("demo", "prod", secrets={"TOKEN": "Sup3rS3cretValue42"})
    _, blob = run_and_read(
        run_stack,
        ["sh", "-c", 'printf "A:Sup3rS3cr"; sleep 0.3; printf "etValue42\\n"; printf "B:Sup3r"; sleep 0.3; echo x'],
        environment="prod",
    )
    assert b"Sup3rS3cr" not in blob and b"etValue42" not in blob
    assert raw_output(blob) == b"A:***\nB:Sup3rx\n"
    # The pause flushed what came before the secret's first bytes as a partial record.
    assert next(r.text for r in decode(blob)) == b"A:"


def peak_rss_kib(run_id: int) -> int:
    """The run worker's peak resident memory (VmHWM), read until the worker is gone."""
    deadline = time.monotonic() + 30
    while True:
        try:
            pid = _worker_pid(run_id)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.02)
    peak = 0
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except (OSError, ValueError):
            return peak
        if "VmHWM" not in fields:  # a zombie: its memory is gone
            return peak
        peak = max(peak, int(fields["VmHWM"].split()[0]))
        time.sleep(0.05)


def test_a_100_mb_line_without_newline(run_stack: Stack, tmp_path: Path) -> None:
    """Shipped in pieces of at most 64 KiB; the worker's memory stays bounded while 100 MB pass."""
    script = (
        "import sys\n"
        "block = (bytes(range(256)) * 4096).replace(b'\\n', b'.')\n"  # 1 MiB, invalid UTF-8, no newline
        "for _ in range(100):\n"
        "    sys.stdout.buffer.write(block)\n"
    )
    command = [PY, "-c", script]
    with run_stack.client() as client:
        run = client.create_run("demo", command)
        peak = peak_rss_kib(run["id"])
        final = wait_for_run(client, run["id"], timeout=120)
        blob, _ = client.read_logs(run["id"])
    assert final["state"] == "succeeded"
    output = raw_output(blob)
    assert len(output) == 100 * 1024 * 1024 and b"\n" not in output
    assert output == into_file(command, tmp_path)
    records = list(decode(blob))
    assert all(not r.complete for r in records) and max(len(r.text) for r in records) <= 64 * 1024
    # A worker starts at ~25 MiB; holding the line would take 100 MiB more.
    assert 0 < peak < 60 * 1024, f"worker peak RSS {peak} KiB"
