"""`yard run --step` and `--stop-signal`, `yard runs show` with steps, `yard runs artifacts
--latest`, against a real embedded stack (issue 16, items 6 to 8)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.tui.test_cli import assert_one_sentence_error, embedded, yard
from tests.waiting import wait_until

__all__ = ["embedded"]

TRAPS_INT = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *_: (print('cleaned up', flush=True), sys.exit(0)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)


def test_steps_from_the_command_line(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    result = yard(
        "run", "-p", "demo", "--step", "one=echo 'first step'", "--step", "two=sh -c 'exit 5'", "--step", "three=echo no"
    )
    assert result.returncode == 5
    assert result.stdout == "first step\n"  # not a terminal: the command's bytes, no step markers
    assert "step 2 of 3 (two) exited with 5" in result.stderr
    run_id = json.loads(yard("runs", "ls", "--json").stdout)[0]["id"]
    shown = yard("runs", "show", str(run_id))
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert "1 one succeeded 0" in " | ".join(lines)
    assert any(line.startswith("2 two failed 5") for line in lines)
    assert any(line.startswith("3 three skipped") for line in lines)
    listed = yard("runs", "ls")
    assert "3 steps: one, two, three" in listed.stdout
    assert_one_sentence_error(yard("run", "-p", "demo", "--step", "nameonly"), "needs a name and a command")
    assert_one_sentence_error(yard("run", "-p", "demo", "--step", "a=b", "--", "true"), "either a command")
    assert_one_sentence_error(yard("run", "-p", "demo", "--step", "x=echo 'open"), "cannot be read")
    assert_one_sentence_error(yard("run", "-p", "demo", "--stop-signal", "KILL", "--", "true"), "KILL is always sent")
    assert_one_sentence_error(yard("run", "-p", "demo", "--stop-grace", "soon", "--", "true"), "not a duration")


def test_cancel_with_the_stop_signal_of_the_command_line(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    created = json.loads(
        yard(
            "run", "-p", "demo", "--detach", "--json", "--stop-signal", "INT,TERM", "--stop-grace", "30s",
            "--", sys.executable, "-c", TRAPS_INT,
        ).stdout
    )  # fmt: skip
    run_id = str(created["id"])
    assert created["stop_signals"] == ["INT", "TERM"] and created["stop_grace_s"] == 30
    wait_until(lambda: "ready" in yard("runs", "logs", run_id).stdout, timeout=30, message="the command to start")
    assert yard("runs", "cancel", run_id).returncode == 0
    wait_until(
        lambda: json.loads(yard("runs", "show", run_id, "--json").stdout)["state"] == "cancelled",
        timeout=30,
        message=f"run {run_id} to end cancelled",
    )
    assert yard("runs", "logs", run_id).stdout == "ready\ncleaned up\n"


def test_artifacts_of_the_latest_matching_run(embedded: Path, tmp_path: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    assert yard("envs", "add", "demo", "prod").returncode == 0
    write = "mkdir -p target && echo {n} > target/manifest.json"
    for n, env, code in ((1, "prod", 0), (2, None, 0), (3, "prod", 1)):
        script = write.format(n=n) + f"; exit {code}"
        args = ["run", "-p", "demo", "-a", "target/*.json", *(["-e", env] if env else []), "--", "sh", "-c", script]
        assert yard(*args).returncode == code
    out = tmp_path / "state"
    result = yard(
        "runs", "artifacts", "--latest", "-p", "demo", "-e", "prod", "--state", "succeeded", "--download", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert (out / "target" / "manifest.json").read_text() == "1\n"  # run 1: prod and succeeded
    latest = json.loads(yard("runs", "artifacts", "--latest", "-p", "demo", "--json").stdout)
    assert [a["path"] for a in latest] == ["target/manifest.json"] and latest[0]["run_id"] == 3
    assert_one_sentence_error(
        yard("runs", "artifacts", "--latest", "-p", "demo", "-e", "staging", "--state", "succeeded"), "No run matches"
    )
    assert_one_sentence_error(yard("runs", "artifacts", "1", "--latest"), "not both")
    assert_one_sentence_error(yard("runs", "artifacts"), "Name a run, or ask for --latest")
