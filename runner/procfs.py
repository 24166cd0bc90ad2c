"""What Linux's ``/proc/<pid>/stat`` says about a process: its state, its group, when it started.

A pid names another process once its own is gone and reaped, so whoever keeps a pid for later
keeps its start time with it and trusts the pid only while the two still match.
"""

from __future__ import annotations

import os
from pathlib import Path

# Indexes into stat_fields(): the fields after the command name, from field 3 on.
STATE, GROUP, START_TIME = 0, 2, 19


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` from the state (field 3) on; None if there is no such
    process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields if len(fields) > START_TIME else None


def start_time(pid: int, live: bool = False) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if there is no such process
    (or, with ``live``, if it is a zombie)."""
    fields = stat_fields(pid)
    if fields is None or (live and fields[STATE] == b"Z"):
        return None
    return int(fields[START_TIME])


def group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (killed, a zombie waits only for its
    reaper: init, or a container's init that may never reap)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and int(fields[GROUP]) == pgid and fields[STATE] != b"Z":
                found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie does not: a detached server's parent is init, which may
    take a while to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = stat_fields(pid)
    if fields is None:
        # It went away while the file was read; or there is no /proc (macOS): kill(0) is all there is.
        return not Path("/proc/self/stat").exists()
    return fields[STATE] != b"Z"


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; whether the group existed.

    Never signals init's group or the caller's own: a recorded pid that turned out to lead the
    caller's group (a test session, a shell) would otherwise end the caller with its command."""
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
