"""A real develop server (``python -m devserver``) on loopback, and helpers to talk to it."""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.tlspin import pinned_context
from control.wire import frames
from runner.procfs import pid_alive

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 15.0


@dataclass
class RunningServer:
    """A develop server process under test."""

    process: subprocess.Popen[bytes]
    port: int
    secret: str
    workspace: Path
    log_file: Path
    secret_file: Path
    ready_file: Path
    fingerprint: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    @property
    def ssl(self) -> ssl.SSLContext:
        """Accepts exactly the certificate the server made (what the gateway does)."""
        return pinned_context(self.fingerprint)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth, timeout=30.0, verify=self.ssl, **kwargs)


@contextmanager
def running_server(
    base: Path, *, leak_secret_in_env: bool = False, secret: str | None = None
) -> Iterator[RunningServer]:
    """Start a develop server in ``base`` and stop it (SIGTERM, then SIGKILL) afterwards."""
    base.mkdir(parents=True, exist_ok=True)
    secret = secret or secrets.token_urlsafe(24)
    secret_file, ready_file, log_file = base / "secret", base / "ready.json", base / "server.log"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    workspace = base / "workspace"
    argv = [sys.executable, "-m", "devserver", "--workspace", str(workspace), "--secret-file", str(secret_file)]
    argv += ["--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready_file), "--log-file", str(log_file)]
    # A HOME of its own: terminals start interactive shells, which read ~/.bashrc; the machine's
    # (pyenv's rehash waiting on a lock left by a killed shell) kept every terminal test waiting.
    home = base / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    if leak_secret_in_env:
        env["DEVYARD_DEVSERVER_SECRET"] = secret
        env["UNRELATED_VARIABLE"] = f"prefix-{secret}"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        port, fingerprint = wait_ready(process, ready_file, log_file)
        yield RunningServer(process, port, secret, workspace, log_file, secret_file, ready_file, fingerprint)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(process: subprocess.Popen[bytes], ready_file: Path, log_file: Path) -> tuple[int, str]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready_file.exists():
        if process.poll() is not None:
            raise AssertionError(f"devserver exited with {process.returncode}:\n{log_file.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"devserver not ready after {READY_TIMEOUT_S} s:\n{log_file.read_text()}")
        time.sleep(0.005)
    ready = json.loads(ready_file.read_text())
    assert ready["pid"] == process.pid
    return int(ready["port"]), str(ready["fingerprint"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One running server per test module."""
    # The secret also sits in a variable of the server's environment: commands must not inherit it.
    with running_server(tmp_path_factory.mktemp("devserver"), leak_secret_in_env=True) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@dataclass
class ExecResult:
    """A decoded exec stream."""

    frames: list[frames.Frame] = field(default_factory=list)

    @property
    def stdout(self) -> bytes:
        return b"".join(f.payload for f in self.frames if f.kind == frames.STDOUT)

    @property
    def stderr(self) -> bytes:
        return b"".join(f.payload for f in self.frames if f.kind == frames.STDERR)

    @property
    def errors(self) -> list[str]:
        return [f.text for f in self.frames if f.kind == frames.ERROR]

    @property
    def code(self) -> int:
        assert self.frames and self.frames[-1].kind == frames.EXIT, "the last frame must be the exit code"
        return self.frames[-1].exit_code


def run(client: httpx.Client, argv: list[str], **options: Any) -> ExecResult:
    """POST /exec and decode the whole frame stream."""
    result = ExecResult()
    decoder = frames.FrameDecoder()
    with client.stream("POST", "/exec", json={"argv": argv, **options}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "application/x-devyard-frames"
        for chunk in response.iter_raw():
            result.frames.extend(decoder.feed(chunk))
    decoder.close()
    return result


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for a reaper counts as gone)."""
    return not pid_alive(pid)


def wait_gone(pid: int, timeout: float = 6.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_gone(pid):
            return True
        time.sleep(0.02)
    return pid_gone(pid)
