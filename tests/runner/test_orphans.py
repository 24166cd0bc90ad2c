"""runner.orphans: the process group of a killed worker's command is stopped, and only while
the recorded pid is still that command's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from runner.orphans import RECORD, forget_command, record_command, stop_orphaned_command
from runner.procfs import start_time
from tests.waiting import wait_until


def running_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (fields 3 and 5 of /proc/<pid>/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            text = (entry / "stat").read_text()
        except (OSError, NotADirectoryError):
            continue
        state, _parent, group = text.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def group(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", script], start_new_session=True)


def test_start_time_reads_past_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    odd = tmp_path / "a) (b c"
    odd.symlink_to("/bin/sleep")
    process = subprocess.Popen([str(odd), "30"])
    try:
        # Until the exec, /proc shows the parent's command name, not the odd one.
        wait_until(lambda: _comm(process.pid) == odd.name, timeout=10, message="the exec")
        started = start_time(process.pid)
        own = start_time(os.getpid())
        assert started is not None and own is not None and started >= own
    finally:
        process.kill()
        process.wait()
    assert start_time(process.pid) is None


def test_the_whole_group_is_stopped_background_children_too(tmp_path: Path) -> None:
    command = group("sleep 60 & sleep 60 & wait")
    record_command(tmp_path, command.pid, 7)
    # Reaped at once, as init reaps an orphan (a zombie still counts as a member of its group).
    reaper = threading.Thread(target=command.wait)
    reaper.start()
    started = time.monotonic()
    assert stop_orphaned_command(tmp_path)
    assert time.monotonic() - started < 4  # it waited for the group to go, not for its patience
    reaper.join(5)
    assert command.returncode == -9
    assert not running_in_group(command.pid), "the group's background children live on"
    assert not (tmp_path / RECORD).exists()


def test_a_pid_that_is_another_process_now_is_left_alone(tmp_path: Path) -> None:
    command = group("sleep 60")
    try:
        started = start_time(command.pid)
        assert started is not None
        (tmp_path / RECORD).write_text(f"{command.pid} {started - 1} 7\n")  # a different process, once
        assert not stop_orphaned_command(tmp_path)
        assert command.poll() is None
    finally:
        command.kill()
        command.wait()


def test_nothing_recorded_or_a_broken_record_stops_nothing(tmp_path: Path) -> None:
    assert not stop_orphaned_command(tmp_path)
    (tmp_path / RECORD).write_text("not a record\n")
    assert not stop_orphaned_command(tmp_path)
    forget_command(tmp_path)
    forget_command(tmp_path)  # twice is fine
    assert not (tmp_path / RECORD).exists()


def _leaderless_group(tmp_path: Path, run_id: str) -> tuple[int, int]:
    """A group whose leader has exited, leaving a background child (as a double-forking daemon
    does): its pgid, and the child's pid."""
    marker = tmp_path / "child.pid"
    env = {**os.environ, "DEVYARD_RUN_ID": run_id}
    leader = subprocess.Popen(["sh", "-c", f"sleep 60 & echo $! > {marker}"], start_new_session=True, env=env)
    leader.wait()
    return leader.pid, int(marker.read_text())


def test_with_the_leader_gone_the_runs_own_members_are_stopped(tmp_path: Path) -> None:
    before = start_time(os.getpid())
    assert before is not None
    pgid, child = _leaderless_group(tmp_path, "8")
    try:
        (tmp_path / RECORD).write_text(f"{pgid} {before} 8\n")
        assert stop_orphaned_command(tmp_path)
        assert not running_in_group(pgid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("why", ["another run", "started before the command"])
def test_with_the_leader_gone_other_processes_of_that_group_are_left_alone(tmp_path: Path, why: str) -> None:
    """A stale record whose pid came round as the group id of something else: nothing there
    shows it is the run's, so nothing is signalled."""
    before = start_time(os.getpid())
    assert before is not None
    pgid, child = _leaderless_group(tmp_path, "9" if why == "another run" else "8")
    try:
        recorded = before if why == "another run" else (start_time(child) or 0) + 1
        (tmp_path / RECORD).write_text(f"{pgid} {recorded} 8\n")
        assert not stop_orphaned_command(tmp_path)
        assert running_in_group(pgid) == [child]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
