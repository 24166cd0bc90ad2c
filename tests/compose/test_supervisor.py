"""Process bookkeeping of the supervisor."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runner.procfs import pid_alive
from tests.waiting import wait_until


def test_a_zombie_counts_as_stopped() -> None:
    """`yard down` waits for the server to be gone; an exited but unreaped process is gone."""
    child = subprocess.Popen(["sh", "-c", "sleep 0.2"])
    assert pid_alive(child.pid)
    wait_until(lambda: _state(child.pid) == "Z", timeout=10, message="the child to exit (unreaped: a zombie)")
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


def _state(pid: int) -> str:
    """The state letter in /proc/<pid>/stat (read directly: not by the code under test)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
