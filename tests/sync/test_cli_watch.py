"""`yard watch -- CMD`: every change is synced, then a run of CMD starts; the real console script
against the shared embedded stack, with real runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.sync.conftest import YardStack
from tests.sync.trees import repository, write
from tests.tui.test_cli import YARD, assert_one_sentence_error
from tests.waiting import wait_until

PYTEST_FILE = "def test_value():\n    assert open('value.txt').read().strip() == 'good'\n"


class Output:
    """The lines a running `yard watch` printed so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait_for(self, text: str, times: int = 1, timeout: float = 30) -> None:
        try:
            wait_until(lambda: self.count(text) >= times, timeout, f"{text!r} printed {times} time(s)")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the output was: {self.lines}") from None


@contextmanager
def watching(stack: YardStack, folder: Path, *args: str) -> Iterator[Output]:
    process = subprocess.Popen(
        [YARD, "watch", *args],
        cwd=folder,
        env=stack.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(process)
    try:
        output.wait_for("Ctrl-C stops")
        yield output
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(15)
    assert code == 0, output.lines


def runs_of(stack: YardStack, project: str) -> list[dict[str, object]]:
    listed = stack.yard("runs", "ls", "--project", project, "--trigger", "watch", "--json")
    assert listed.returncode == 0, listed.stderr
    return list(reversed(json.loads(listed.stdout)))


def test_pytest_reruns_on_every_change_in_the_develop_server(
    yard_stack: YardStack, project: str, tmp_path: Path
) -> None:
    root = tmp_path / project
    repository(root, {"test_value.py": PYTEST_FILE, "value.txt": "good\n", ".gitignore": "__pycache__/\n"})
    assert yard_stack.yard("dev", "start", cwd=root).returncode == 0
    command = ["--", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    with watching(yard_stack, root, *command) as output:
        assert "develop server" in output.lines[0]
        (root / "value.txt").write_text("bad\n")
        output.wait_for("✗ run")
        output.wait_for("assert 'bad' == 'good'")  # the failed run's log follows its line
        (root / "value.txt").write_text("good\n")
        output.wait_for("✓ run")
        (root / "notes.md").write_text("also a change\n")
        output.wait_for("✓ run", times=2)
    runs = runs_of(yard_stack, project)
    assert [run["state"] for run in runs] == ["failed", "succeeded", "succeeded"]
    assert [run["trigger_info"] for run in runs] == [
        {"paths": ["value.txt"]},
        {"paths": ["value.txt"]},
        {"paths": ["notes.md"]},
    ]
    assert all(run["trigger"] == "watch" and run["devserver_id"] for run in runs)


def test_without_a_develop_server_runs_use_the_local_tree(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    root = tmp_path / project
    write(root, {"src/value.txt": "one\n", "docs/readme.md": "x\n"})
    command = ["--", sys.executable, "-c", "import os; print('ran in', os.getcwd())"]
    with watching(yard_stack, root, "src", "--glob", "*.txt", "--debounce", "20", *command) as output:
        assert "this machine" in output.lines[0]
        (root / "docs" / "readme.md").write_text("outside the watched paths\n")
        (root / "src" / "notes.md").write_text("not matching the glob\n")
        (root / "src" / "value.txt").write_text("two\n")
        output.wait_for("✓ run")
    runs = runs_of(yard_stack, project)
    assert len(runs) == 1 and runs[0]["trigger_info"] == {"paths": ["src/value.txt"]}
    assert runs[0]["devserver_id"] is None and runs[0]["cwd"] == str(root)


def test_a_change_during_a_run_restarts_or_is_skipped(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    root = tmp_path / project
    write(root, {"a.txt": "a\n"})
    slow = ["--", sys.executable, "-c", "import time; time.sleep(2.5)"]
    with watching(yard_stack, root, "--on-busy", "restart", *slow) as output:
        (root / "a.txt").write_text("first\n")
        output.wait_for("started")
        (root / "a.txt").write_text("second\n")
        output.wait_for("cancelled")
        output.wait_for("✓ run")
    assert output.count("started") == 2
    with watching(yard_stack, root, "--on-busy", "skip", *slow) as output:
        (root / "a.txt").write_text("third\n")
        output.wait_for("started")
        (root / "a.txt").write_text("fourth\n")
        output.wait_for("skipped a.txt")
        output.wait_for("✓ run")
    assert output.count("started") == 1
    runs = runs_of(yard_stack, project)
    assert len(runs) == 3 and runs[0]["cancel_requested"] is True
    assert [run["state"] for run in runs[1:]] == ["succeeded", "succeeded"]


def test_mistakes(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    root = tmp_path / project
    root.mkdir()
    assert_one_sentence_error(yard_stack.yard("watch", cwd=root), "Give the command to run after --")
    assert_one_sentence_error(yard_stack.yard("watch", "--on-busy", "later", "--", "true", cwd=root), "--on-busy")
    assert_one_sentence_error(yard_stack.yard("watch", "nowhere", "--", "true", cwd=root), "does not exist")
    assert_one_sentence_error(
        yard_stack.yard("watch", "--in-devserver", "--", "true", cwd=root), "is not running; start it"
    )
