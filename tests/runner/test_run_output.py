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
from control.wire.runs import RunOut
from tests.runner.test_runs import _worker_pid
from tests.stack import Stack, wait_for_run

PY = sys.executable
ORDER_OUT_THEN_ERR = 'for i in $(seq 1 2000); do echo "build step $i"; done; echo "error: linker failed" >&2; exit 42'
ORDER_ERR_THEN_OUT = 'echo "warning: first" >&2; for i in $(seq 1 2000); do echo "build step $i"; done'
ALTERNATING = "import sys\nfor i in range(50):\n    print(f'out {i}')\n    sys.stderr.write(f'err {i}\\n')\n"


def run_and_read(stack: Stack, command: list[str], **fields: object) -> tuple[RunOut, bytes]:
    with stack.client() as client:
        run = client.create_run("demo", command, **fields)
        final = wait_for_run(client, run.id, timeout=60)
        blob, _ = client.read_logs(run.id)
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
    assert final.state == "failed" and final.exit_code == 42
    lines = raw_output(blob).splitlines()
    assert len(lines) == 2001
    assert lines[-1] == b"error: linker failed" and lines[0] == b"build step 1"
    assert raw_output(blob) == into_file(command, tmp_path)
    with run_stack.client() as client:
        tail, _ = client.read_logs(int(final.id), tail=2)  # type: ignore[call-overload]
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


def peak_rss_kib(run_id: int, under: Path) -> int:
    """The run worker's peak resident memory (VmHWM), read until the worker is gone (at most
    three minutes: a worker that never ends fails the test instead of hanging it)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            pid = _worker_pid(run_id, under)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.02)
    peak = 0
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline, f"the worker {pid} of run {run_id} did not end"
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
        peak = peak_rss_kib(run.id, tmp_path)
        final = wait_for_run(client, run.id, timeout=120)
        blob, _ = client.read_logs(run.id)
    assert final.state == "succeeded"
    output = raw_output(blob)
    assert len(output) == 100 * 1024 * 1024 and b"\n" not in output
    assert output == into_file(command, tmp_path)
    records = list(decode(blob))
    assert all(not r.complete for r in records) and max(len(r.text) for r in records) <= 64 * 1024
    # A worker starts at ~25 MiB; holding the line would take 100 MiB more.
    assert 0 < peak < 60 * 1024, f"worker peak RSS {peak} KiB"


TTY_SCRIPT = (
    "import os, sys\n"
    "print('stdout is a tty' if os.isatty(1) else 'stdout is not a tty')\n"
    "if os.isatty(1):\n"
    "    print('size', os.get_terminal_size(1).columns, os.get_terminal_size(1).lines)\n"
    "print('colour terminal', os.environ.get('TERM', 'dumb') != 'dumb')\n"
    "for i in range(3):\n"
    "    print(f'out {i}')\n"
    "    sys.stderr.write(f'err {i}\\n')\n"
    "sys.stdout.write('a\\r\\nb\\rc\\x1b[31mred\\x1b[0m\\n\\xff no newline')\n"
)


def test_tty_runs_get_a_terminal_and_keep_its_order_and_bytes(run_stack: Stack) -> None:
    """Under --tty Python line-buffers stdout as on a terminal, so print() and an unflushed
    stderr write alternate; the bytes are stored unchanged (no \\n -> \\r\\n)."""
    final, blob = run_and_read(run_stack, [PY, "-c", TTY_SCRIPT], tty=True, tty_cols=100, tty_rows=30)
    assert final.state == "succeeded" and final.tty is True
    assert raw_output(blob) == (
        b"stdout is a tty\nsize 100 30\ncolour terminal True\n"
        b"out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"
        b"a\r\nb\rc\x1b[31mred\x1b[0m\n\xc3\xbf no newline"
    )
    plain, blob = run_and_read(run_stack, [PY, "-c", TTY_SCRIPT])
    assert plain.tty is False
    assert raw_output(blob).startswith(b"err 0\nerr 1\nerr 2\nstdout is not a tty\n")


def test_tty_output_is_byte_identical_to_the_file(run_stack: Stack, tmp_path: Path) -> None:
    """What a command writes on the terminal is stored byte for byte: 200,000 lines, binary
    bytes, carriage returns, no final newline."""
    script = (
        "import sys\n"
        "out = sys.stdout.buffer\n"
        "for i in range(200000):\n"
        "    out.write(b'%07d \\x00\\x01\\xfe\\r progress\\n' % i)\n"
        "out.write(b'tail without newline')\n"
    )
    command = [PY, "-c", script]
    final, blob = run_and_read(run_stack, command, tty=True)
    assert final.state == "succeeded"
    assert raw_output(blob) == into_file(command, tmp_path)


def test_a_schedule_with_tty_gives_its_runs_a_terminal(run_stack: Stack) -> None:
    script = "test -t 1 && echo terminal || echo pipe"
    with run_stack.client() as client:
        client.create_schedule(name="tty-job", project="demo", command=["sh", "-c", script], cron="0 3 * * *", tty=True)
        client.create_schedule(name="pipe-job", project="demo", command=["sh", "-c", script], cron="0 3 * * *")
        assert client.update_schedule("pipe-job", tty=False).tty is False
        outputs = {}
        for name in ("tty-job", "pipe-job"):
            fired = client.trigger_schedule(name)
            assert fired.run_id is not None
            run_id = fired.run_id
            final = wait_for_run(client, run_id)
            blob, _ = client.read_logs(run_id)
            outputs[name] = (final.tty, raw_output(blob))
    assert outputs == {"tty-job": (True, b"terminal\n"), "pipe-job": (False, b"pipe\n")}
