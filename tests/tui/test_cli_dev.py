"""`yard dev ...` against a real embedded stack (`yard up --detach`): real develop servers,
reached only through the gateway, and an interactive shell on a real PTY."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from runner.procfs import pid_alive as _pid_alive
from tests.tui.test_cli import YARD, assert_one_sentence_error, embedded, yard
from tests.waiting import wait_until

__all__ = ["embedded"]


def _devserver_pids(data_dir: Path) -> list[int]:
    """Develop server processes of this stack, found by their ready files."""
    return [json.loads(p.read_text())["pid"] for p in (data_dir / "devservers").glob("*/ready.json")]


def test_dev_lifecycle_exec_and_logs(embedded: Path, tmp_path: Path) -> None:
    repo = tmp_path / "Shop-Repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert yard("projects", "add", "shop-repo").returncode == 0
    env = {"DEVYARD_PROJECT": ""}
    started = subprocess.run(
        [YARD, "dev", "start", "--json"], cwd=repo / "src", capture_output=True, text=True, env={**os.environ, **env}
    )
    assert started.returncode == 0, started.stderr
    server = json.loads(started.stdout)
    assert (server["project"], server["state"]) == ("shop-repo", "running")
    again = yard("dev", "start", "-p", "shop-repo")
    assert again.returncode == 0 and f"Develop server {server['id']} for project shop-repo is running" in again.stdout
    listed = json.loads(yard("dev", "ls", "--json").stdout)
    assert [s["id"] for s in listed] == [server["id"]]
    status = json.loads(yard("dev", "status", "-p", "shop-repo", "--json").stdout)
    assert status["health"]["ok"] is True

    result = yard("dev", "exec", "-p", "shop-repo", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert yard("dev", "exec", "-p", "shop-repo", "--", "true").returncode == 0
    missing = yard("dev", "exec", "-p", "shop-repo", "--", "no-such-program-here")
    assert missing.returncode == 127 and "Traceback" not in missing.stderr
    assert "exec" in yard("dev", "logs", "-p", "shop-repo").stdout

    stopped = yard("dev", "stop", "-p", "shop-repo", "--json")
    assert json.loads(stopped.stdout)["state"] == "stopped"
    assert_one_sentence_error(
        yard("dev", "exec", "-p", "shop-repo", "--", "true"), "Your develop server for project shop-repo is stopped"
    )
    assert_one_sentence_error(yard("dev", "exec", "-p", "nothing", "--", "true"), "does not exist")
    assert_one_sentence_error(
        yard("dev", "start", "-p", "ghost"),
        "Project ghost does not exist; create it with `yard projects add ghost` first",
    )
    assert_one_sentence_error(yard("dev", "exec", "-p", "shop-repo", "--", ""), "Give the command")


def _drive(argv: list[str], keystrokes: list[bytes], timeout: float = 30) -> tuple[int, bytes]:
    """Run ``argv`` on a new PTY (as in a terminal), typing ``keystrokes`` once output shows up."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    seen = bytearray()
    pending = list(keystrokes)
    deadline = time.monotonic() + timeout
    next_key_at = time.monotonic() + 1.0
    try:
        while child.poll() is None:
            assert time.monotonic() < deadline, f"shell did not finish: {bytes(seen)!r}"
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
            if pending and time.monotonic() >= next_key_at and seen:
                os.write(leader, pending.pop(0))
                next_key_at = time.monotonic() + 0.5
        child.wait(10)
        while True:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if child.poll() is None:
            child.kill()
        os.close(leader)
    return child.returncode, bytes(seen)


def test_dev_shell_is_an_interactive_terminal(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    assert yard("dev", "start", "-p", "demo").returncode == 0
    code, screen = _drive(
        [YARD, "dev", "shell", "-p", "demo"],
        [b"echo $((6*7))-$(basename $PWD)\r", b"stty size\r", b"exit 7\r"],
    )
    assert code == 7, screen
    assert b"42-demo" in screen
    assert b"24 80" in screen  # the PTY took the size of the terminal we opened (80x24 default)


def test_yard_down_stops_develop_servers_and_up_starts_clean(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0").returncode == 0
    try:
        assert yard("projects", "add", "demo").returncode == 0
        assert yard("dev", "start", "-p", "demo").returncode == 0
        assert yard("dev", "exec", "-p", "demo", "--", "sh", "-c", "echo keep > kept.txt").returncode == 0
        pids = _devserver_pids(data_dir)
        assert len(pids) == 1 and _pid_alive(pids[0])
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0
    assert not _pid_alive(pids[0])
    assert yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0").returncode == 0
    try:
        listed = json.loads(yard("dev", "ls", "--json").stdout)
        assert [s["state"] for s in listed] == ["stopped"]
        assert yard("dev", "start", "-p", "demo").returncode == 0
        kept = yard("dev", "exec", "-p", "demo", "--", "cat", "kept.txt")
        assert (kept.returncode, kept.stdout) == (0, "keep\n")
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0


def test_a_stack_started_with_signals_blocked_still_cancels_runs_and_stops(tmp_path: Path) -> None:
    """A blocked signal mask is inherited through fork and exec. Started from a process that had
    SIGTERM and SIGINT blocked, the stack unblocks them, so a cancel still stops a run and
    `yard down` still stops the develop servers (both did nothing in a CI run whose test process
    had leaked such a block)."""
    data_dir = tmp_path / "data"
    blocked = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)  # this thread only; subprocesses inherit it
    try:
        started = yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    assert started.returncode == 0, started.stderr
    try:
        assert yard("projects", "add", "demo").returncode == 0
        assert yard("dev", "start", "-p", "demo").returncode == 0
        pids = _devserver_pids(data_dir)
        run = json.loads(yard("run", "-p", "demo", "--detach", "--json", "--", "sleep", "60").stdout)

        def state() -> str:
            return str(json.loads(yard("runs", "show", str(run["id"]), "--json").stdout)["state"])

        wait_until(lambda: state() == "running", timeout=30, message="the run to start")
        assert yard("runs", "cancel", str(run["id"])).returncode == 0
        wait_until(lambda: state() != "running", timeout=30, message="the cancel to stop the run")
        assert state() == "cancelled"
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0
    assert pids and not any(_pid_alive(pid) for pid in pids)
