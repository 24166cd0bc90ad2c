"""What the agent does once a run's worker has ended: for a killed worker, stop what is left of
its command (also when the run works in a workspace, with no folder of its own) and remove the
run's own folder; for one that ended by itself, at most remove an empty mount point."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from compose.agent import Agent, AgentConfig
from compose.local import LocalLauncher
from control.client import ControlClient
from runner.orphans import record_command
from tests.runner.test_orphans import running_in_group


def agent(tmp_path: Path) -> Agent:
    config = AgentConfig(
        name="a", queue="default", api_url="http://127.0.0.1:9", volume=tmp_path / "volume", spool=tmp_path / "spool"
    )
    return Agent(config, ControlClient("http://127.0.0.1:9", "dya_unused"), LocalLauncher())


def command_of_run(tmp_path: Path, run_id: int) -> subprocess.Popen[bytes]:
    spool = tmp_path / "spool" / str(run_id)
    spool.mkdir(parents=True)
    command = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    record_command(spool, command.pid, run_id)
    return command


def test_a_killed_workers_command_in_a_workspace_is_stopped_and_the_workspace_kept(tmp_path: Path) -> None:
    workspace = tmp_path / "volume" / "workspaces" / "alice" / "shop"
    workspace.mkdir(parents=True)
    (workspace / "main.py").write_text("print('mine')\n")
    command = command_of_run(tmp_path, 3)
    try:
        ended = agent(tmp_path)
        ended._worker_ended(3, killed=True)  # a workspace run: no folder of its own is known
        ended.stop()  # waits for the clean-up
        assert command.wait(5) == -signal.SIGKILL
        assert not running_in_group(command.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, signal.SIGKILL)
    assert (workspace / "main.py").read_text() == "print('mine')\n"


def test_a_killed_workers_folder_goes_and_one_that_ended_by_itself_is_only_rmdir_ed(tmp_path: Path) -> None:
    killed = tmp_path / "volume" / "runs" / "4"
    (killed / "build").mkdir(parents=True)
    (killed / "build" / "out.o").write_bytes(b"\0")
    kept = tmp_path / "volume" / "runs" / "5"
    kept.mkdir()
    (kept / "big.bin").write_bytes(b"refused artifact")
    empty = tmp_path / "volume" / "runs" / "6"
    empty.mkdir()
    worker_agent = agent(tmp_path)
    worker_agent._after_worker(4, killed, killed=True)
    worker_agent._after_worker(5, kept, killed=False)
    worker_agent._after_worker(6, empty, killed=False)
    assert not killed.exists() and not empty.exists()
    assert (kept / "big.bin").read_bytes() == b"refused artifact"
