"""The process itself: ready file, secret handling, graceful SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.devserver.conftest import ROOT, running_server, wait_gone
from tests.devserver.test_terminal import read_until


def test_ready_file_and_secret_file(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        ready = json.loads(server.ready_file.read_text())
        assert ready == {"port": server.port, "pid": server.process.pid}
        assert not server.secret_file.exists()
        assert server.workspace.is_dir()
        assert not list(tmp_path.glob(".ready.json.*"))  # the temporary file was renamed away
        assert httpx.get(server.url + "/health", headers=server.auth).status_code == 200


def test_sigterm_stops_children_and_exits_zero(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, server.client() as client:
        with client.stream("POST", "/exec", json={"argv": ["sh", "-c", "echo $$; sleep 60"]}) as response:
            exec_pid = int(next(response.iter_raw())[5:].split()[0])
            with connect(f"{server.ws_url}/pty", additional_headers=server.auth, open_timeout=10) as ws:
                ws.send(b"echo shell:$$:\n")
                match = re.search(rb"shell:(\d+):", read_until(ws, rb"shell:\d+:"))
                assert match is not None
                shell_pid = int(match[1])
                server.process.send_signal(signal.SIGTERM)
                assert server.process.wait(15) == 0
        assert wait_gone(exec_pid) and wait_gone(shell_pid)
        assert "develop server stopped" in server.log_file.read_text()


def test_unusable_arguments_fail_clearly(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "devserver", "--workspace", str(tmp_path / "ws")]
    argv += ["--secret-file", str(tmp_path / "missing"), "--ready-file", str(tmp_path / "ready.json")]
    result = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr
