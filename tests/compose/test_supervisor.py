"""Process bookkeeping of the supervisor."""

from __future__ import annotations

import subprocess
import time

from compose.supervisor import pid_alive


def test_a_zombie_counts_as_stopped() -> None:
    """`yard down` waits for the server to be gone; an exited but unreaped process is gone."""
    child = subprocess.Popen(["sh", "-c", "sleep 0.2"])
    assert pid_alive(child.pid)
    time.sleep(1.0)  # exited, not reaped yet: a zombie
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)
