"""The process itself: ready file, secret handling, graceful SIGTERM."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from control.tlspin import file_fingerprint, peer_certificate, pinned_context, refused_pin
from control.trust import fingerprint_of
from control.wire import frames
from tests.devserver.conftest import ROOT, running_server, wait_gone
from tests.devserver.test_terminal import read_until


def test_ready_file_and_secret_file(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        ready = json.loads(server.ready_file.read_text())
        assert ready == {"port": server.port, "pid": server.process.pid, "fingerprint": server.fingerprint}
        assert not server.secret_file.exists()
        assert server.workspace.is_dir()
        assert not list(tmp_path.glob(".ready.json.*"))  # the temporary file was renamed away
        assert httpx.get(server.url + "/health", headers=server.auth, verify=server.ssl).status_code == 200


def test_serves_https_with_its_own_certificate(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        key, cert = tmp_path / "tls.key", tmp_path / "tls.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert file_fingerprint(str(cert)) == server.fingerprint
        # What it presents is that certificate, and nothing else is accepted by a pinned client.
        assert fingerprint_of(peer_certificate("127.0.0.1", server.port)) == server.fingerprint
        other = "SHA256:" + ":".join(["AB"] * 32)
        with pytest.raises(httpx.ConnectError) as refused:
            httpx.get(server.url + "/health", headers=server.auth, verify=pinned_context(other))
        assert refused_pin(refused.value) is not None
        # Plain HTTP gets no answer (the secret would cross the network in clear).
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/health", headers=server.auth, timeout=5)
    with running_server(tmp_path / "again") as again:
        assert again.fingerprint != server.fingerprint  # a new key at every start


def blocked_signals(pid: int) -> int:
    """The signal mask of process ``pid``, as a bit set (0: none blocked)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M)[1], 16)  # type: ignore[index]


@pytest.mark.parametrize("started_blocked", [False, True], ids=["plain", "started-with-sigterm-blocked"])
def test_sigterm_stops_children_and_exits_zero(tmp_path: Path, started_blocked: bool) -> None:
    """Also when its parent had SIGTERM blocked (a mask is inherited through fork and exec): the
    server clears its mask, and so its commands and shells start with none blocked either."""
    with contextlib.ExitStack() as stack:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT} if started_blocked else ())
        try:
            server = stack.enter_context(running_server(tmp_path))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        client = stack.enter_context(server.client())
        assert blocked_signals(server.process.pid) == 0
        # exec: a waiting shell blocks signals itself
        with client.stream("POST", "/exec", json={"argv": ["sh", "-c", "echo $$; exec sleep 60"]}) as response:
            # The stream is kept in a variable: a dropped generator closes the response, and the
            # server then stops the command of a client that went away.
            output = response.iter_raw()
            decoder = frames.FrameDecoder()
            first = next(frame for chunk in output for frame in decoder.feed(chunk))
            exec_pid = int(first.payload)
            deadline = time.monotonic() + 10
            while b"sleep" not in Path(f"/proc/{exec_pid}/cmdline").read_bytes():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert blocked_signals(exec_pid) == 0
            with connect(f"{server.ws_url}/pty", additional_headers=server.auth, open_timeout=10, ssl=server.ssl) as ws:
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


def test_temporary_files_of_a_killed_server_are_removed_at_start(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "src").mkdir(parents=True)
    left = [workspace / ".devyard-tmp-5eed5eed-0123456789ab", workspace / "src" / ".devyard-tmp-0a1b"]
    for path in left:
        path.write_bytes(b"half a file, from a server killed mid-write")
    (workspace / "src" / "kept.py").write_text("print('kept')\n")
    with running_server(tmp_path):
        deadline = time.monotonic() + 10
        while any(path.exists() for path in left) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(path.exists() for path in left)
        assert (workspace / "src" / "kept.py").read_text() == "print('kept')\n"
