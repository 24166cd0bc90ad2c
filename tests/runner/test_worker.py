"""The run worker on its own: an API that never comes back, and a stop request."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from control.logformat import raw_output
from tests.waiting import wait_until


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("started_blocked", [False, True], ids=["plain", "started-with-sigterm-blocked"])
def test_worker_keeps_the_spool_and_exits_when_stopped_during_an_outage(tmp_path: Path, started_blocked: bool) -> None:
    """Also when its parent had SIGTERM blocked (a mask is inherited through fork and exec): the
    worker clears its mask, so the stop still reaches it and the command starts with none blocked."""
    spool = tmp_path / "spool"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "id": 1,
                "command": ["sh", "-c", "echo one; echo two; grep SigBlk /proc/self/status > mask"],
                "cwd": str(tmp_path),
                "env": {},
                "spool_dir": str(spool),
                "cancel_grace_s": 0.5,
                "secret_values": [],
            }
        )
    )
    env = {**os.environ, "DEVYARD_WORKER_URL": f"http://127.0.0.1:{closed_port()}", "DEVYARD_WORKER_TOKEN": "dyr_x"}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT} if started_blocked else ())
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "runner.worker", "--spec", str(spec)], env=env, stderr=subprocess.PIPE, text=True
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    # The command has ended and its output is in the spool: from here the worker only waits for
    # the API to take the outcome.
    wait_until(lambda: _read(tmp_path / "mask").endswith(b"\n"), timeout=20, message="the command to end")
    wait_until(lambda: b"two" in _read(spool / "log"), timeout=20, message="the output to reach the spool")
    assert worker.poll() is None, "the worker must keep trying while the API is away"
    assert not spec.exists(), "the spec (it may hold secrets) is deleted once read"
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, err = worker.communicate(timeout=20)
    assert time.monotonic() - started < 10
    assert worker.returncode == 1 and "gave up reporting" in err
    # Nothing is lost: the spool holds the whole output for a later look.
    assert raw_output((spool / "log").read_bytes()) == b"one\ntwo\n"
    assert (tmp_path / "mask").read_text().split() == ["SigBlk:", "0" * 16]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
