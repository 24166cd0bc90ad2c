"""Ending quietly when the reader of our stdout goes away (`yard run ... | head -1`).

Standard library only: the fast paths of `yard run` and `yard dev exec` use it. A Unix tool
whose pipe is closed dies of SIGPIPE, silently, and the shell reports 141; Python ignores
SIGPIPE and raises BrokenPipeError instead (a traceback, or worse, a retry loop that treats it
as a lost connection). What the follower was following is not touched: a run keeps running, as
after a detach.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import sys
import threading
from typing import NoReturn

CLOSED_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a tool whose pipe was closed


def exit_quietly() -> NoReturn:
    """Leave now, without a traceback and without Python's failed flush of stdout at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    os._exit(CLOSED_PIPE_EXIT)


def watch_stdout() -> None:
    """Exit as soon as stdout is a pipe or socket whose reader has gone, even while the
    command prints nothing (a follower may have nothing to write for minutes)."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def wait() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever is asked for
        while True:
            for _, events in poller.poll():
                if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    exit_quietly()

    threading.Thread(target=wait, name="stdout-reader-watch", daemon=True).start()
