"""Whole-stack processes for fault tests: the embedded server and standalone agents."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from control import profiles


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``python -m compose.supervisor`` (what `yard up --detach` runs) on a fixed port."""

    def __init__(self, data_dir: Path, env: dict[str, str], port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115 - outlives this call
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "compose.supervisor",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    @property
    def admin_token(self) -> str:
        return profiles.load_profiles()[1][profiles.LOCAL].token

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class AgentProcess:
    """`yard agent` as its own process, so it can be killed like a crashed host."""

    def __init__(
        self,
        url: str,
        token: str,
        data_dir: Path,
        name: str,
        substrate: str = "local",
        env: dict[str, str] | None = None,
    ) -> None:
        yard = str(Path(sys.executable).parent / "yard")
        env = {**os.environ, "DEVYARD_URL": url, "DEVYARD_TOKEN": token, **(env or {})}
        log = open(data_dir.parent / f"agent-{name}.log", "ab")  # noqa: SIM115 - outlives this call
        self.process = subprocess.Popen(
            [yard, "agent", "--name", name, "--data-dir", str(data_dir), "--substrate", substrate],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def worker_pid(handle: str) -> int:
    return int(handle.split(":")[0])


def read_json(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))
