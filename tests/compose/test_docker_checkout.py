"""A repository run on the Docker substrate: the agent checks the code out on the volume before
the container starts, so the image needs no git and no credentials reach the container's argv."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compose.docker import DockerLauncher, connect
from control.logformat import raw_output
from tests.services.gitserver import git_server
from tests.stack import Stack, running_agent, wait_for_run


@pytest.fixture
def launcher(docker_image: str) -> Iterator[DockerLauncher]:
    launcher = DockerLauncher(connect(), docker_image, "/opt/devyard/venv/bin/python")
    before = {c["id"] for c in launcher.labelled()}
    yield launcher
    for info in launcher.labelled():
        if info["id"] not in before:
            launcher.stop(info["id"], grace_s=1)


def test_a_private_repository_run_in_a_container(sqlite_stack: Stack, launcher: DockerLauncher, tmp_path: Path) -> None:
    with (
        git_server(tmp_path / "git") as server,
        running_agent(sqlite_stack, tmp_path / "agent", name="docker-agent", launcher=launcher),
    ):
        repo = server.create("shop", private=True, files={"models/a.sql": "select 1\n", "VERSION": "boxed\n"})
        with sqlite_stack.client() as client:
            client.create_project("demo", repo_url=repo.http_url, repo_secret="GIT_TOKEN")
            client.create_environment("demo", "prod", kind="deployment", secrets={"GIT_TOKEN": server.token})
            run = client.create_run(
                "demo", ["sh", "-c", "cat VERSION; ls models; command -v git || echo no-git-here"], environment="prod"
            )
            final = wait_for_run(client, run.id, timeout=90)
            log, _ = client.read_logs(run.id)
    assert final.state == "succeeded", final.error
    assert final.code_commit is not None and len(final.code_commit) == 40
    lines = raw_output(log).decode().splitlines()
    assert lines[:2] == ["boxed", "a.sql"]
    assert server.token not in raw_output(log).decode()
