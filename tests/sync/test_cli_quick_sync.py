"""`yard sync`'s fast start (tui/cli/quick_sync.py) through the real console entry against a real
embedded stack: it answers a sync with nothing to do without the full CLI's imports, says and
records exactly what the full CLI does, and hands everything else to the full CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sync.conftest import YardStack
from tests.sync.test_cli_sync import fresh_clone, start
from tui.cli import quick_sync

HEAVY = ("typer", "rich", "httpx", "pygit2", "http.client", "sync.engine")
# The console script's entry point, reporting at exit which heavy modules the process imported.
ENTRY = f"""
import atexit, sys
atexit.register(lambda: print("imported:", *[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr))
sys.argv = ["yard", *sys.argv[1:]]
from tui.cli.entry import main
main()
"""
FULL = ENTRY.replace("tui.cli.entry", "tui.cli.main")  # the Typer CLI, never the fast start


class Ran:
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.code = result.returncode
        self.stdout = result.stdout
        *lines, last = result.stderr.rstrip("\n").split("\n")
        assert last.startswith("imported:"), result.stderr
        self.stderr = "\n".join(lines)
        self.heavy = set(last.split()[1:])

    @property
    def fast(self) -> bool:
        return not self.heavy


def yard(stack: YardStack, cwd: Path, *args: str, full: bool = False) -> Ran:
    argv = [sys.executable, "-c", FULL if full else ENTRY, *args]
    return Ran(subprocess.run(argv, cwd=cwd, env=stack.env, capture_output=True, text=True, timeout=60))


def without_seconds(text: str) -> str:
    return re.sub(r" in \d+\.\d\d s\.$", " in ? s.", text.strip())


def status_file(stack: YardStack, root: Path) -> dict[str, Any]:
    """The summary the last sync of ``root`` left for the TUI (sync.status)."""
    for path in (Path(stack.env["XDG_STATE_HOME"]) / "devyard" / "sync").glob("*/status.json"):
        data: dict[str, Any] = json.loads(path.read_text())
        if data["root"] == os.fspath(root):
            return data
    raise AssertionError(f"no status file for {root}")


def age(clone: Path) -> None:
    """Date every file of ``clone`` a minute back: past the racy window, a sync finding nothing
    to do leaves its snapshot (see sync.snapshot)."""
    past = time.time() - 60
    for folder, dirs, files in os.walk(clone):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            os.utime(os.path.join(folder, name), (past, past), follow_symlinks=False)


def clean_clone(stack: YardStack, project: str, tmp_path: Path) -> tuple[Path, Path]:
    """A clone synced twice by the full CLI, the second time finding nothing to do, so a sync
    now has a snapshot to compare with; the clone and its workspace."""
    clone = Path(fresh_clone(tmp_path, project).workdir)
    age(clone)
    workspace = start(stack, clone)
    first = yard(stack, clone, "sync")
    assert first.code == 0 and not first.fast and "git: main moved to" in first.stdout, first.stderr
    clean = yard(stack, clone, "sync")
    assert clean.code == 0 and not clean.fast and "0 files" not in clean.stdout, clean.stderr
    return clone, workspace


def test_a_sync_with_nothing_to_do_starts_fast_and_says_what_the_full_cli_says(
    yard_stack: YardStack, project: str, tmp_path: Path
) -> None:
    clone, _ = clean_clone(yard_stack, project, tmp_path)

    full = yard(yard_stack, clone, "sync", full=True)
    full_status = status_file(yard_stack, clone)
    fast = yard(yard_stack, clone / "src", "sync")  # from a folder inside: the repository is the tree
    fast_status = status_file(yard_stack, clone)
    assert fast.fast and (fast.code, fast.stderr) == (full.code, full.stderr) == (0, "")
    assert without_seconds(fast.stdout) == without_seconds(full.stdout)
    assert re.fullmatch(
        rf"Synced {re.escape(str(clone))} → develop server \d+: 5 unchanged, git: main at [0-9a-f]{{10}} in \? s\.",
        without_seconds(fast.stdout),
    ), fast.stdout
    assert fast_status.pop("last_sync_at") > full_status.pop("last_sync_at")
    assert fast_status == full_status and fast_status["conflicts"] == fast_status["refused"] == 0

    args = ("sync", str(clone), f"--project={project}", "--json")
    full_json = yard(yard_stack, tmp_path, *args, full=True)
    fast_json = yard(yard_stack, tmp_path, *args)
    assert fast_json.fast and fast_json.code == full_json.code == 0
    documents = [json.loads(ran.stdout) for ran in (fast_json, full_json)]
    for document in documents:
        assert document.pop("seconds") >= 0
    assert documents[0] == documents[1]
    assert documents[0]["unchanged"] == 5 and documents[0]["git"]["moved"] is False
    assert documents[0]["root"] == str(clone) and documents[0]["project"] == project
    assert yard(yard_stack, clone, "sync", "-p", project, "--json").fast


def test_a_change_sends_the_fast_start_to_the_full_cli(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    clone, workspace = clean_clone(yard_stack, project, tmp_path)
    assert yard(yard_stack, clone, "sync").fast
    (clone / "src" / "app.py").write_text("print('edited')\n")
    changed = yard(yard_stack, clone, "sync")
    assert not changed.fast and changed.code == 0, changed.stderr
    assert "1 file (16 B) sent" in changed.stdout
    assert (workspace / "src" / "app.py").read_text() == "print('edited')\n"

    age(clone)  # the edit stays an edit, and the next clean sync may leave a snapshot again
    again = yard(yard_stack, clone, "sync")
    assert not again.fast and again.code == 0 and "0 files" not in again.stdout, again.stderr
    assert yard(yard_stack, clone, "sync").fast

    (workspace / "notes.txt").write_text("made on the develop server\n")  # the workspace changed
    remote = yard(yard_stack, clone, "sync")
    assert not remote.fast and remote.code == 0, remote.stderr
    # Made there and never synced: left in the workspace and reported, not copied here.
    assert "only in the workspace: notes.txt" in remote.stderr and not list(clone.glob("notes.txt*"))
    assert (workspace / "notes.txt").read_text() == "made on the develop server\n"


def test_what_the_fast_start_leaves_to_the_full_cli(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    clone, _ = clean_clone(yard_stack, project, tmp_path)
    assert yard(yard_stack, clone, "sync").fast

    dry = yard(yard_stack, clone, "sync", "--dry-run")
    assert not dry.fast and dry.code == 0 and dry.stdout.startswith(f"Dry run for {clone}")
    unknown = yard(yard_stack, clone, "sync", "--frobnicate")
    assert not unknown.fast and unknown.code == 2 and "No such option" in unknown.stderr
    helped = yard(yard_stack, clone, "sync", "--help")
    assert not helped.fast and helped.code == 0 and "--watch" in helped.stdout
    inside = yard(yard_stack, clone, "sync", "src")
    assert not inside.fast and inside.code == 1 and "inside the git repository" in inside.stderr

    watch = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "sync", "--watch", "--json"],
        cwd=clone,
        env=yard_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        assert json.loads(watch.stdout.readline())["kind"] == "sync"
    finally:
        watch.send_signal(signal.SIGTERM)
        _, stderr = watch.communicate(timeout=15)
    assert watch.returncode == 0 and "typer" in stderr.rsplit("imported:", 1)[1]

    assert yard(yard_stack, clone, "sync").fast, "none of that changed anything"
    stopped = yard_stack.yard("dev", "stop", cwd=clone)
    assert stopped.returncode == 0, stopped.stderr
    gone = yard(yard_stack, clone, "sync")
    assert not gone.fast and gone.code == 1
    assert f"Your develop server for project {project}" in gone.stderr and "yard dev start" in gone.stderr


def test_parse_takes_only_the_plain_form() -> None:
    assert quick_sync.parse([]) == (None, None, False)
    assert quick_sync.parse(["repo", "-p", "shop", "--json"]) == ("repo", "shop", True)
    assert quick_sync.parse(["--project=shop", "repo"]) == ("repo", "shop", False)
    assert quick_sync.parse(["--project", "a", "--project", "b"]) == (None, "b", False)  # the last wins
    for args in (
        ["--watch"],
        ["-w"],
        ["--dry-run"],
        ["-n"],
        ["--help"],
        ["--frobnicate"],
        ["-p"],
        ["-p=shop"],  # Click reads "=shop"
        ["-pshop"],
        ["-p", "--json"],
        ["--json=1"],
        ["a", "b"],
        ["--", "repo"],
        [""],
    ):
        assert quick_sync.parse(args) is None, args


@pytest.mark.parametrize("url", ["https://devyard.example.com", "http://127.0.0.1:1/prefix", "http://u@127.0.0.1:1"])
def test_profiles_the_fast_start_leaves_alone(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVYARD_URL", url)
    monkeypatch.setenv("DEVYARD_TOKEN", "dy_test")
    assert quick_sync.main([]) is None
