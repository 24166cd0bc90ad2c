"""What `yard run`, `yard runs logs` and `yard dev exec` print, and how they end, against a real
embedded stack: closed pipes (`| head`), terminals (rendering of `\\r`), stdin and `--tty`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.tui.test_cli import YARD, embedded, yard

__all__ = ["embedded"]

PROGRESS = "printf 'step 1\\rstep 2\\rstep 3 done\\n'; printf 'tail 10%%'; sleep 0.3; printf '\\rtail 100%%\\n'"


def piped_into_head(yard_args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``yard ARGS | head -1`` in bash with pipefail; also how long yard took after head
    had its line and left (the time it printed to stderr, compared with the end)."""
    script = f"set -o pipefail; {YARD} {yard_args} | (head -1; date +%s.%N >&2)"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    ended = time.time()
    head_left = float(result.stderr.strip().splitlines()[-1])
    return result, ended - head_left


def test_yard_run_into_head_exits_at_once_and_the_run_goes_on(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    for fast_or_full in ("", "--retries 0"):
        result, after_head = piped_into_head(f"run -p demo {fast_or_full} -- sh -c 'echo first; echo second; sleep 30'")
        assert result.stdout == "first\n"
        assert result.returncode == 141, result.stderr  # the usual status of a closed pipe
        assert after_head < 2.0, f"yard ran {after_head:.1f} s after head left"
        assert "Traceback" not in result.stderr and "error" not in result.stderr.lower()
    runs = json.loads(yard("runs", "ls", "--json").stdout)
    assert [r["state"] for r in runs] == ["running", "running"], "a follower going away is a detach"
    for run in runs:
        yard("runs", "cancel", str(run["id"]))
    result, _ = piped_into_head("run -p demo -- seq 1 100000")
    assert result.stdout == "1\n" and "Traceback" not in result.stderr


def test_runs_logs_follow_into_head_exits_at_once(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    run = json.loads(yard("run", "-p", "demo", "--detach", "--json", "--", "sh", "-c", "echo a; sleep 30").stdout)
    deadline = time.monotonic() + 30
    while json.loads(yard("runs", "show", str(run["id"]), "--json").stdout)["log_lines"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result, after_head = piped_into_head(f"runs logs {run['id']} -f")
    assert (result.returncode, result.stdout) == (141, "a\n")
    assert after_head < 2.0 and "Traceback" not in result.stderr
    assert json.loads(yard("runs", "show", str(run["id"]), "--json").stdout)["state"] == "running"
    yard("runs", "cancel", str(run["id"]))


def piped(*args: str) -> bytes:
    """What ``yard ARGS`` writes into a pipe, as bytes (text mode would turn \\r into \\n)."""
    return subprocess.run([YARD, *args], capture_output=True, stdin=subprocess.DEVNULL, timeout=60).stdout


def on_a_terminal(*args: str) -> bytes:
    """What ``yard ARGS`` writes to a terminal (a real pseudo-terminal as its stdout)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([YARD, *args], stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, "yard printed nothing for 30 s"
        try:
            piece = os.read(master, 65536)
        except OSError:
            break
        if not piece:
            break
        out += piece
    process.wait(30)
    os.close(master)
    return out


def test_carriage_returns_show_their_final_state_on_a_terminal_and_raw_otherwise(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    stored = b"step 1\rstep 2\rstep 3 done\ntail 10%\rtail 100%\n"
    assert piped("run", "-p", "demo", "--", "sh", "-c", PROGRESS) == stored, "piped: the stored bytes, untouched"
    run_id = json.loads(yard("runs", "ls", "--json").stdout)[0]["id"]
    assert piped("runs", "logs", str(run_id)) == stored
    shown = on_a_terminal("runs", "logs", str(run_id))
    assert shown.replace(b"\r\n", b"\n") == b"step 3 done\ntail 100%\n"
    raw = on_a_terminal("runs", "logs", str(run_id), "--raw")
    assert raw.replace(b"\r\n", b"\n") == stored
    live = on_a_terminal("run", "-p", "demo", "--", "sh", "-c", PROGRESS)
    # Followed live, the paused line was drawn and then redrawn in place.
    assert live.startswith(b"step 3 done\r\n") and live.endswith(b"\rtail 100%\x1b[K\r\n")


def test_dev_exec_stdin_tty_and_closed_pipes(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    assert yard("dev", "start", "-p", "demo").returncode == 0
    assert yard("dev", "exec", "-p", "demo", "--", "cat", input="input\nmore").stdout == "input\nmore"
    counted = yard("dev", "exec", "-p", "demo", "--", "wc", "-c")  # stdin is /dev/null: EOF at once
    assert (counted.returncode, counted.stdout.strip()) == (0, "0")
    ignored = yard("dev", "exec", "-p", "demo", "--no-stdin", "--", "wc", "-c", input="not forwarded")
    assert ignored.stdout.strip() == "0"
    script = "test -t 1 && echo terminal; stty size <&1; printf 'a\\nb'"
    tty = yard("dev", "exec", "-p", "demo", "--tty", "--", "sh", "-c", script, env={"COLUMNS": "100", "LINES": "30"})
    assert (tty.returncode, tty.stdout) == (0, "terminal\n30 100\na\nb")  # no \r added
    plain = yard("dev", "exec", "-p", "demo", "--", "sh", "-c", "test -t 1 || echo pipe")
    assert plain.stdout == "pipe\n"
    result, after_head = piped_into_head("dev exec -p demo -- seq 1 100000")
    assert result.stdout == "1\n" and "Traceback" not in result.stderr and result.returncode == 141
    assert after_head < 2.0
