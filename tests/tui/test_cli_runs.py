"""`yard run` and `yard runs ...` against a real embedded stack with its in-process agent."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.tui.test_cli import YARD, assert_one_sentence_error, embedded, yard
from tests.waiting import wait_until

__all__ = ["embedded"]


def test_run_follows_and_exits_with_the_commands_code(embedded: Path, tmp_path: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    result = yard("run", "-p", "demo", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    # One channel, in order: the command's stderr is in the log (on stdout) where it was written.
    assert result.stdout == "out\nerr\n"
    assert "failed: exit code 3" in result.stderr and "err" not in result.stderr.replace("error", "")
    ok = yard("run", "-p", "demo", "--", "echo", "fine")
    assert (ok.returncode, ok.stdout) == (0, "fine\n")


def test_run_errors_are_one_sentence(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    missing = yard("run", "-p", "demo", "--", "no-such-program-here")
    assert missing.returncode == 127
    assert "Command 'no-such-program-here' was not found" in missing.stderr and "Traceback" not in missing.stderr
    assert_one_sentence_error(yard("run", "-p", "ghost", "--", "true"), "Project ghost does not exist")
    assert_one_sentence_error(yard("run", "-p", "demo", "--", ""), "Give the command to run")
    assert_one_sentence_error(yard("runs", "show", "424242"), "Run 424242 does not exist")
    timed = yard("run", "-p", "demo", "--timeout", "1", "--", "sleep", "30")
    # In words, not the API's state name ("Run 24 timed_out.").
    assert timed.returncode == 124 and "timed out (it ran longer than its --timeout)" in timed.stderr
    assert "timed_out" not in timed.stderr


def test_detach_list_show_logs_and_artifacts(embedded: Path, tmp_path: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    script = "seq 1 100; mkdir -p out; echo data > out/result.txt"
    created = json.loads(
        yard("run", "-p", "demo", "--detach", "--json", "-a", "out/*.txt", "--", "sh", "-c", script).stdout
    )
    run_id = str(created["id"])
    assert created["state"] == "queued"
    wait_until(
        lambda: json.loads(yard("runs", "show", run_id, "--json").stdout)["state"] == "succeeded",
        timeout=30,
        message=f"run {run_id} to succeed",
    )
    assert yard("runs", "logs", run_id, "--tail", "2").stdout == "99\n100\n"
    assert yard("runs", "logs", run_id).stdout == "".join(f"{i}\n" for i in range(1, 101))
    assert yard("runs", "logs", run_id, "-f").stdout.endswith("100\n")
    listed = json.loads(yard("runs", "ls", "--json", "--status", "succeeded").stdout)
    assert [r["id"] for r in listed] == [created["id"]]
    saved = json.loads(yard("runs", "artifacts", run_id, "--download", str(tmp_path / "dl"), "--json").stdout)
    assert [a["path"] for a in saved] == ["out/result.txt"]
    assert (tmp_path / "dl" / "out" / "result.txt").read_text() == "data\n"
    assert_one_sentence_error(yard("runs", "ls", "--status", "sleeping"), "Unknown run state 'sleeping'")


def interruptible() -> None:
    """Ctrl-C reaches `yard run` as it does in a terminal: a suite started in the background (as
    `cmd &` in a script) ignores SIGINT, and its children inherit that through exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_asks_and_cancels(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    process = subprocess.Popen(
        [YARD, "run", "-p", "demo", "--", "sh", "-c", "echo ready; sleep 60"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate("y\n", timeout=30)
    assert "Cancel run" in err
    assert process.returncode == 130, err
    runs = json.loads(yard("runs", "ls", "--json").stdout)
    assert runs[0]["state"] == "cancelled"


def test_ctrl_c_can_detach(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    process = subprocess.Popen(
        [YARD, "run", "-p", "demo", "--", "sh", "-c", "echo ready; sleep 2; echo done"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate("n\n", timeout=30)
    # Detaching leaves the outcome unknown: not a success a script could rely on.
    assert process.returncode == 130 and "Detached" in err
    run_id = json.loads(yard("runs", "ls", "--json").stdout)[0]["id"]
    assert yard("runs", "logs", str(run_id), "-f").stdout == "ready\ndone\n"


def test_a_double_ctrl_c_detaches_with_130(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    process = subprocess.Popen(
        [YARD, "run", "-p", "demo", "--", "sh", "-c", "echo ready; sleep 30"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    asked = ""
    while "[y/N]" not in asked:
        piece = process.stderr.read(1)
        assert piece, asked
        asked += piece
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "Detached" in err, asked + err
    run = json.loads(yard("runs", "ls", "--json").stdout)[0]
    assert run["state"] == "running"
    assert yard("runs", "cancel", str(run["id"])).returncode == 0


def test_schedule_commands(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    added = yard(
        "schedule", "add", "nightly", "-p", "demo", "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--", "echo", "hi"
    )
    assert added.returncode == 0, added.stderr
    listed = json.loads(yard("schedule", "ls", "--json").stdout)
    assert [s["name"] for s in listed] == ["nightly"] and listed[0]["command"] == ["echo", "hi"]
    upcoming = yard("schedule", "next", "nightly")
    assert upcoming.returncode == 0 and upcoming.stdout.count("02:30 CE") == 5
    assert json.loads(yard("schedule", "pause", "nightly", "--json").stdout)["enabled"] is False
    assert json.loads(yard("schedule", "resume", "nightly", "--json").stdout)["enabled"] is True
    fired = json.loads(yard("schedule", "trigger", "nightly", "--json").stdout)
    assert fired["state"] == "fired"
    shown = json.loads(yard("schedule", "show", "nightly", "--json").stdout)
    assert shown["ticks"][0]["run_id"] == fired["run_id"]
    assert_one_sentence_error(
        yard("schedule", "add", "bad", "-p", "demo", "--cron", "not a cron", "--", "true"),
        "is not a valid cron expression",
    )
    assert_one_sentence_error(
        yard("schedule", "add", "bad", "-p", "demo", "--cron", "* * * * *", "--tz", "Nowhere/City", "--", "true"),
        "Unknown timezone",
    )
    assert_one_sentence_error(
        yard("schedule", "add", "nightly", "-p", "demo", "--cron", "* * * * *", "--", "true"), "already exists"
    )
    assert_one_sentence_error(
        yard("schedule", "add", "x", "-p", "ghost", "--cron", "* * * * *", "--", "true"), "Project ghost does not exist"
    )
    assert yard("schedule", "rm", "nightly", "--yes").returncode == 0
    assert json.loads(yard("schedule", "ls", "--json").stdout) == []
