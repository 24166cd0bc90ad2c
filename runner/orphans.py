"""The command of a run whose worker was killed is stopped, not left running unwatched.

The worker starts the command in a session (and process group) of its own, so killing the
worker (the OOM killer, ``kill -9``) leaves the command running with nobody capturing its output
or enforcing its timeout, while the run is already reported failed. The worker records the
command's process group in its spool folder; the agent that sees the worker die stops that group
before it removes the run's folder. On the local substrate only: in a container the command dies
with the container, and a pid recorded there means another process on the host.

A pid can be reused once its process is gone, so the record carries the process's start time
(``/proc/<pid>/stat``, field 22) and the group is not signalled when that pid is another
process's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

RECORD = "command"
GONE_WAIT_S = 5.0


def start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: killed, they wait
    only for their reaper (init, or a container's init that may never reap)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def record_command(spool_dir: Path, pid: int) -> None:
    """Note the command's process group (its leader's pid and start time) for the agent."""
    started = start_time(pid)
    if started is not None:
        with contextlib.suppress(OSError):
            (spool_dir / RECORD).write_text(f"{pid} {started}\n")


def forget_command(spool_dir: Path) -> None:
    (spool_dir / RECORD).unlink(missing_ok=True)


def stop_orphaned_command(spool_dir: Path, wait_s: float = GONE_WAIT_S) -> bool:
    """SIGKILL the process group the record in ``spool_dir`` names, if its leader is still the
    process recorded, and wait (at most ``wait_s``) for the group to be gone; whether one was."""
    try:
        pid_text, started_text = (spool_dir / RECORD).read_text().split()
        pid, started = int(pid_text), int(started_text)
    except (OSError, ValueError):
        return False
    leader = start_time(pid)
    if pid <= 1 or leader not in (started, None):
        return False  # the pid is another process's now: ours ended long ago
    # With the leader gone its group may live on (a background child), and Linux hands out no
    # pid still in use as a group id: the number is ours unless every pid came round since.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + wait_s
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    forget_command(spool_dir)
    return True
