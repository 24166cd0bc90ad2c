"""The process sessions the server starts (exec commands, PTY shells) and how they are stopped.

Each command and shell runs as the leader of its own session, so everything it starts (pipelines,
jobs in their own process groups) can be found again by session id and stopped together: a
polite signal first, SIGKILL after a grace period for whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

log = logging.getLogger("devyard.devserver")

KILL_GRACE_S = 2.0


def session_members(sid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in session ``sid``; empty where /proc is missing."""
    members: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return members
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat_file:
                raw = stat_file.read()
        except OSError:
            continue
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            members.append(int(name))
    return members


def signal_session(sid: int, sig: int) -> None:
    """Send ``sig`` to every process in session ``sid`` (its own group and any job groups)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class Sessions:
    """The live sessions this server started, so a shutdown can stop them all."""

    def __init__(self) -> None:
        self._live: dict[int, int] = {}  # session id -> the signal that asks it to stop

    def __len__(self) -> int:
        return len(self._live)

    def add(self, sid: int, stop_signal: int = signal.SIGTERM) -> None:
        """Track a session that just started; ``stop_signal`` is what a shutdown sends it first."""
        self._live[sid] = stop_signal

    def discard(self, sid: int) -> None:
        """Stop tracking a session whose leader has exited."""
        self._live.pop(sid, None)

    def stop(self, sid: int, first: int = signal.SIGTERM, grace_s: float = KILL_GRACE_S) -> None:
        """Signal a session now and SIGKILL what is left of it after ``grace_s`` (no await needed)."""
        signal_session(sid, first)
        loop = asyncio.get_running_loop()
        loop.call_later(grace_s, signal_session, sid, signal.SIGKILL)

    def stop_all(self, grace_s: float = KILL_GRACE_S) -> None:
        """Stop every live session (graceful server shutdown)."""
        if self._live:
            log.info("stopping %d process session(s)", len(self._live))
        for sid, stop_signal in list(self._live.items()):
            self.stop(sid, stop_signal, grace_s)

    def kill_all(self) -> None:
        """SIGKILL every session still tracked (last step before the process exits)."""
        for sid in list(self._live):
            signal_session(sid, signal.SIGKILL)
        self._live.clear()
