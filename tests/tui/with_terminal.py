"""Run a command with a pseudo-terminal on stdin and stdout (stderr captured), as a user's shell would."""

from __future__ import annotations

import os
import pty
import subprocess


def run_with_terminal(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Exit code and stderr of ``args`` run with a terminal; what it writes to the terminal is discarded."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=subprocess.PIPE, text=True, env=env)
        os.close(follower)
        follower = -1
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    return process.returncode, stderr
