"""Forwarding, ports and previews on the Docker substrate: the develop server in a container.

The same commands as on the local substrate, end to end: a web app started inside the
container (its script sent over the develop server's exec), `yard dev ports` listing it with the
container's pid, `yard dev forward` reaching it on this machine, and a preview link opening it,
WebSocket included.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from compose.docker import DockerLauncher, connect
from control.previews import COOKIE
from tests.compose.devserver_helpers import start_and_wait
from tests.compose.forward_helpers import WEB_TARGET, Env, started_in_devserver
from tests.stack import Stack, running_agent
from tests.tui.test_cli import YARD

CONTAINER_PYTHON = "/opt/devyard/venv/bin/python"


@pytest.fixture
def docker_env(sqlite_stack: Stack, tmp_path: Path, docker_image: str) -> Iterator[Env]:
    launcher = DockerLauncher(connect(), docker_image, CONTAINER_PYTHON)
    before = {c["id"] for c in launcher.labelled()}
    try:
        with running_agent(sqlite_stack, tmp_path / "agent", name="docker-agent", launcher=launcher):
            with sqlite_stack.client() as admin:
                admin.create_project("demo")
            token = sqlite_stack.user("alice", "developer")
            with sqlite_stack.client(token) as client:
                server = start_and_wait(client, "demo", timeout=90)
            yield Env(sqlite_stack, token, server.id, tmp_path)
    finally:
        for info in launcher.labelled():
            if info["id"] not in before:
                launcher.stop(info["id"], grace_s=1)


def test_forward_ports_and_preview_of_an_app_in_a_container(docker_env: Env, tmp_path: Path) -> None:
    env = docker_env
    workspace = tmp_path / "agent" / "volume" / "workspaces" / "alice" / "demo"
    (workspace / "app.py").write_text(WEB_TARGET.read_text())  # the volume is the container's workspace
    with (
        env.stack.client(env.token) as client,
        started_in_devserver(client, env.server_id, f"{CONTAINER_PYTHON} app.py state", workspace / "state", "state")
        as app,
    ):
        # What listens in the container, with the container's own pid.
        listed = subprocess.run([YARD, "dev", "ports", "--json"], capture_output=True, text=True, env=env.cli_env())
        assert listed.returncode == 0, listed.stderr
        mine = {p["port"]: p for p in json.loads(listed.stdout)}
        assert mine[app["http"]]["pid"] == app["pid"] and "app.py" in mine[app["http"]]["process"]
        assert app["ws"] in mine

        # yard dev forward: one command, and the app answers on this machine.
        child = subprocess.Popen(
            [YARD, "dev", "forward", f"0:{app['http']}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env.cli_env(),
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            local = int(line.split("127.0.0.1:")[1].split()[0])
            seen = httpx.get(f"http://127.0.0.1:{local}/headers", timeout=20).json()
            assert seen["path"] == "/headers" and seen["headers"]["host"] == f"127.0.0.1:{local}"
            child.terminate()
            assert child.wait(10) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

        # yard dev preview: one link, in a browser (httpx with a cookie jar).
        made = subprocess.run(
            [YARD, "dev", "preview", str(app["http"])], capture_output=True, text=True, env=env.cli_env()
        )
        assert made.returncode == 0, made.stderr
        with httpx.Client(timeout=20, follow_redirects=True) as browser:
            page = browser.get(made.stdout.strip())
            assert page.status_code == 200 and b'<a href="headers">' in page.content
            assert browser.get(str(page.url.join("headers"))).json()["headers"]["host"] == f"localhost:{app['http']}"
        ws_link = subprocess.run(
            [YARD, "dev", "preview", str(app["ws"])], capture_output=True, text=True, env=env.cli_env()
        ).stdout.strip()
        with httpx.Client(timeout=20) as browser:
            landing = browser.get(ws_link).headers["location"]
            cookie = next(c for c in browser.cookies.jar if c.name == COOKIE)
        from websockets.sync.client import connect as ws_connect

        url = env.stack.url.replace("http://", "ws://") + landing
        with ws_connect(url, additional_headers={"Cookie": f"{COOKIE}={cookie.value}"}, open_timeout=20) as ws:
            ws.send("from the browser")
            assert ws.recv(10) == "from the browser"
