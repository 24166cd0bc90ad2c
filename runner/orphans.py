"""The command of a run whose worker was killed is stopped, not left running unwatched.

The worker starts the command in a session (and process group) of its own, so killing the
worker (the OOM killer, ``kill -9``) leaves the command running with nobody capturing its output
or enforcing its timeout, while the run is already reported failed. The worker records the
command's process group in its spool folder; the agent that sees the worker die stops that group.
On the local substrate only: in a container the command dies with the container, and a pid
recorded there means another process on the host. Processes that left the group (``setsid``,
a daemon) are not reached, as they are not by a cancel.

A pid can be reused once its process is gone, so the record carries the leader's start time
(see :mod:`runner.procfs`) and the run id. While the leader is the recorded process the
whole group is signalled; with the leader gone, only members that started no earlier than it and
carry the run's ``DEVYARD_RUN_ID`` in their environment are, one by one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from runner.procfs import group_members, signal_group, start_time

RECORD = "command"
GONE_WAIT_S = 5.0


def record_command(spool_dir: Path, pid: int, run_id: int) -> None:
    """Note the command's process group (its leader's pid and start time) for the agent."""
    started = start_time(pid)
    if started is not None:
        with contextlib.suppress(OSError):
            (spool_dir / RECORD).write_text(f"{pid} {started} {run_id}\n")


def forget_command(spool_dir: Path) -> None:
    (spool_dir / RECORD).unlink(missing_ok=True)


def stop_orphaned_command(spool_dir: Path, wait_s: float = GONE_WAIT_S) -> bool:
    """SIGKILL what is left of the command the record in ``spool_dir`` names and wait (at most
    ``wait_s``) for it to be gone; whether anything was signalled."""
    try:
        pid_text, started_text, run_text = (spool_dir / RECORD).read_text().split()
        pid, started, run_id = int(pid_text), int(started_text), int(run_text)
    except (OSError, ValueError):
        return False
    if pid <= 1:
        return False
    leader = start_time(pid)
    if leader == started:  # the leader is the recorded process, so the group is the command's
        signal_group(pid, signal.SIGKILL)
        signalled = True
    elif leader is None:  # the leader is gone: only members that show they are the run's own
        signalled = False
        for member in group_members(pid):
            if (start_time(member) or -1) >= started and _run_of(member) == run_id:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
                    signalled = True
    else:
        signalled = False  # the pid is another process's now: ours ended long ago
    deadline = time.monotonic() + wait_s
    while signalled and group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    forget_command(spool_dir)
    return signalled


def _run_of(pid: int) -> int | None:
    """The run id in the starting environment of process ``pid`` (``DEVYARD_RUN_ID``)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        if item.startswith(b"DEVYARD_RUN_ID="):
            with contextlib.suppress(ValueError):
                return int(item[len(b"DEVYARD_RUN_ID=") :])
    return None
