"""Jobs triggered by git webhooks: branch globs, pull requests at their head commit with their
number and refs as variables, a newer push cancelling the older run, a closed pull request
cancelling what is left, and GitLab commit statuses.

GitLab's status API cannot be reached from here: tests/services/status_api.py checks each
request against its documented shape ("Set the pipeline status of a commit") instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.client.sync import ControlClient
from control.hooks.triggers import branch_matches
from tests.services.git_payloads import (
    body_of,
    github_headers,
    github_pull_request,
    github_push,
    gitlab_headers,
    gitlab_merge_request,
)
from tests.services.gitserver import Repo, git_server
from tests.services.status_api import status_api
from tests.stack import Stack, running_agent, running_stack, wait_for_run
from tests.waiting import wait_until

PY = sys.executable
PR_SCRIPT = (
    "import os, time\n"
    "print('PR', os.environ['DEVYARD_PR_NUMBER'], os.environ['DEVYARD_PR_BASE_REF'], os.environ['DEVYARD_PR_HEAD_REF'],"
    " os.environ['DEVYARD_PR_HEAD_SHA'] == os.environ['DEVYARD_GIT_SHA'], open('NAME').read().strip(), flush=True)\n"
    "time.sleep(float(os.environ.get('HOLD', '60')))\n"
)


@dataclass
class Setup:
    stack: Stack
    repo: Repo
    client: ControlClient
    secret: str

    def deliver(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = body_of(payload)
        answer = httpx.post(
            f"{self.stack.url}/api/v1/hooks/github/shop", content=body, headers=github_headers(self.secret, event, body)
        )
        assert answer.status_code in (200, 202), answer.text
        return dict(answer.json())


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with (
        git_server(tmp_path / "git") as server,
        running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'devyard.db'}", cancel_grace_s=1) as stack,
        running_agent(stack, tmp_path / "agent"),
        stack.client() as client,
    ):
        repo = server.create("shop", files={"NAME": "main\n", "run.py": PR_SCRIPT})
        client.create_project("shop")
        client.update_project("shop", repo_url=repo.file_url, default_branch="main")
        secret = client.set_hook("shop", "github").secret
        assert secret is not None
        yield Setup(stack, repo, client, secret)


def test_branch_globs() -> None:
    assert branch_matches(["main", "release/*"], "release/1.2")
    assert not branch_matches(["release/*"], "release/1.2/hotfix")  # * stays in one segment
    assert branch_matches(["release/**"], "release/1.2/hotfix")
    assert not branch_matches(["main"], "main2") and branch_matches([], "anything")
    assert branch_matches(["feat-?"], "feat-a") and not branch_matches(["feat-?"], "feat-ab")


def test_pushes_start_the_jobs_whose_globs_match(setup: Setup) -> None:
    client = setup.client
    client.create_job(
        "shop", "release", steps=[{"command": [PY, "-c", "print(open('NAME').read())"]}],
        triggers=[{"kind": "push", "branches": ["release/*"]}],
    )  # fmt: skip
    client.create_job("shop", "nightly", steps=[{"command": ["true"]}])  # no git trigger
    sha = setup.repo.commit({"NAME": "release one\n"}, branch="release/1")
    started = setup.deliver("push", github_push("octo/shop", "release/1", "0" * 40, sha))
    (run_id,) = started["runs"]
    run = wait_for_run(client, run_id)
    assert run.state == "succeeded" and run.code_commit == sha and run.job == "release"
    assert b"release one" in client.read_logs(run_id)[0]
    other = setup.deliver("push", github_push("octo/shop", "main", "0" * 40, sha))
    assert other["status"] == "accepted" and other["runs"] == []
    assert other["detail"] == "No job of project shop has a push trigger matching branch main."
    show = client.get_job("shop", "release")
    assert [t.summary for t in show.triggers] == ["push to release/*"]


def test_pull_requests_run_at_the_head_and_newer_pushes_cancel_older_runs(setup: Setup) -> None:
    client = setup.client
    client.create_job(
        "shop", "pr", steps=[{"command": [PY, "run.py"]}], triggers=[{"kind": "pull_request", "branches": ["main"]}]
    )
    first = setup.repo.commit({"NAME": "first\n"}, branch="feature")
    opened = setup.deliver("pull_request", github_pull_request("octo/shop", "opened", 7, "feature", first))
    (run1,) = opened["runs"]
    wait_until(lambda: b"PR 7 main feature True first" in client.read_logs(run1)[0], timeout=30)
    second = setup.repo.commit({"NAME": "second\n"}, branch="feature")
    updated = setup.deliver("pull_request", github_pull_request("octo/shop", "synchronize", 7, "feature", second))
    (run2,) = updated["runs"]
    assert "Cancelled 1 older run(s)" in updated["detail"]
    assert wait_for_run(client, run1).state == "cancelled"
    wait_until(lambda: b"PR 7 main feature True second" in client.read_logs(run2)[0], timeout=30)
    assert client.get_run(run2).code_commit == second
    other_base = setup.deliver("pull_request", github_pull_request("octo/shop", "opened", 8, "feature", second, "dev"))
    assert other_base["runs"] == []
    closed = setup.deliver("pull_request", github_pull_request("octo/shop", "closed", 7, "feature", second))
    assert closed["detail"] == "Pull request 7 was closed; cancelled 1 unfinished run(s)."
    assert wait_for_run(client, run2).state == "cancelled"


def test_gitlab_merge_requests_post_statuses(tmp_path: Path) -> None:
    with (
        git_server(tmp_path / "git") as server,
        status_api("gitlab", "glpat-status-token") as gitlab,
        running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'devyard.db'}") as stack,
        running_agent(stack, tmp_path / "agent"),
        stack.client() as client,
    ):
        repo = server.create("shop", files={"NAME": "main\n"})
        client.create_project("shop")
        client.update_project("shop", repo_url=repo.file_url)
        client.create_job(
            "shop", "mr", steps=[{"command": [PY, "-c", "print('ok')"]}],
            triggers=[{"kind": "pull_request", "branches": ["main"]}],
        )  # fmt: skip
        client.set_hook("shop", "gitlab", secret="gl-hook-token-1234", status_token=gitlab.token, api_url=gitlab.api_url)
        sha = repo.commit({"NAME": "mr\n"}, branch="topic")
        body = body_of(gitlab_merge_request("group/shop", "open", 3, "topic", sha, project_id=42))
        answer = httpx.post(
            f"{stack.url}/api/v1/hooks/gitlab/shop", content=body,
            headers=gitlab_headers("gl-hook-token-1234", "Merge Request Hook"),
        )  # fmt: skip
        (run_id,) = answer.json()["runs"]
        assert wait_for_run(client, run_id).state == "succeeded"
        statuses = wait_until(lambda: gitlab.statuses if len(gitlab.statuses) == 2 else None, timeout=20)
        assert gitlab.problems == []
        assert [(s["state"], s["repository"], s["sha"], s["name"]) for s in statuses] == [
            ("pending", "42", sha, "devyard/mr"),
            ("success", "42", sha, "devyard/mr"),
        ]
        assert statuses[0]["ref"] == "topic"
        # A run someone starts with made-up trigger_info posts nothing with the project's token.
        forged = client.create_run(
            "shop", ["true"], trigger_info={"provider": "gitlab", "repository": "evil/repo", "commit": sha}
        )
        wait_for_run(client, forged.id)
        assert client.list_deliveries(run=forged.id) == []
