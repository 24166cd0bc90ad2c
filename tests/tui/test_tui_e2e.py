"""`yard` in a real terminal (tmux) against the embedded stack: open it, start a run, follow its
log, cancel it, quit — with keys sent to the terminal and the screen read back."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_cli import YARD, embedded, yard

__all__ = ["embedded"]  # the fixture, used by name below

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """A 160x45 tmux window on its own server socket (so nothing else's tmux is touched)."""

    def __init__(self, socket: str) -> None:
        self.tmux = ["tmux", "-L", socket]

    def start(self, command: str, cwd: Path) -> None:
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-x", "160", "-y", "45", "-c", str(cwd), "-s", "e2e", command], check=True
        )

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "e2e", *(["-l"] if literal else []), *keys], check=True)

    def screen(self) -> str:
        result = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "e2e"], capture_output=True, text=True)
        return result.stdout

    def wait_for(self, *texts: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not on screen after {timeout} s:\n{screen}")
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(f"devyard-e2e-{os.getpid()}")
    try:
        yield term
    finally:
        term.stop()


def test_start_follow_and_cancel_a_run_in_a_real_terminal(embedded: Path, terminal: Terminal, tmp_path: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    env = {
        name: os.environ[name] for name in ("HOME", "PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME") if name in os.environ
    }
    env.update(DEVYARD_PROJECT="demo", TERM="xterm-256color", LANG="C.UTF-8")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # COLUMNS and LINES (set by pytest) would override the terminal's own size.
    terminal.start(f"env -u COLUMNS -u LINES {exports} {shlex.quote(YARD)}; echo YARD-EXITED-$?; sleep 30", tmp_path)

    terminal.wait_for("Runs (0)", "● live")  # open
    terminal.keys("n")
    terminal.wait_for("New run", "Command")
    terminal.keys("sh -c 'i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done'", literal=True)
    terminal.keys("Enter")  # the project is prefilled from DEVYARD_PROJECT
    terminal.wait_for("▶ running", "run 1", "tick-5")  # the run view opened and follows the log
    screen = terminal.wait_for("tick-40", "● following")  # still following: newer lines keep coming
    assert "tick-1\n" not in screen  # the start scrolled away: the view is at the end
    terminal.keys("c")
    terminal.wait_for("Cancel run 1?")
    terminal.keys("y")
    screen = terminal.wait_for("⊘ cancelled", "exit 143")
    terminal.keys("Escape")
    terminal.wait_for("Runs (1)", "⊘ cancelled")  # the dashboard saw it too, live
    terminal.keys("q")
    terminal.wait_for("YARD-EXITED-0")
