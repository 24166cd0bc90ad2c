"""Issue 21's whole path: a push to a test repository's branch, delivered as a signed GitHub
webhook, runs the job at that commit, posts its commit status, and on failure sends an e-mail that
a local SMTP server receives.

Real pieces: a git repository served by git, the API and an agent, the run worker checking out the
pushed commit, aiosmtpd with STARTTLS and login. GitHub's status API cannot be reached from here:
a local server (tests/services/status_api.py) checks each request against GitHub's documented
shape ("Create a commit status") and answers as GitHub does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from tests.services.git_payloads import body_of, github_headers, github_push
from tests.services.gitserver import git_server
from tests.services.smtpserver import smtp_server
from tests.services.status_api import status_api
from tests.stack import running_agent, running_stack, wait_for_run
from tests.waiting import wait_until

PY = sys.executable
STATUS_TOKEN = "ghp_e2eStatusToken0123456789"


def test_a_pushed_commit_runs_its_job_posts_the_status_and_mails_the_failure(tmp_path: Path) -> None:
    with (
        git_server(tmp_path / "git") as server,
        smtp_server(tmp_path, starttls=True, login=("mailer", "mail-pass")) as smtp,
        status_api("github", STATUS_TOKEN) as github,
    ):
        repo = server.create("shop", files={"VERSION": "1.0\n", "check.py": "print('all good')\n"})
        settings = smtp.settings(smtp_username="mailer", smtp_password="mail-pass", notify_retry_delays_s=[0.2])
        with (
            running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'devyard.db'}", **settings) as stack,
            running_agent(stack, tmp_path / "agent"),
            stack.client() as admin,
        ):
            admin.create_project("shop")
            admin.update_project("shop", repo_url=repo.file_url, default_branch="main")
            admin.create_job(
                "shop",
                "ci",
                steps=[
                    {"name": "version", "command": [PY, "-c", "print('version', open('VERSION').read().strip())"]},
                    {"name": "check", "command": [PY, "check.py"]},
                    {"name": "never", "command": [PY, "-c", "print('not reached')"]},
                ],
                triggers=[{"kind": "push", "branches": ["main", "feature/*"]}],
            )
            secret = admin.set_hook("shop", "github", status_token=STATUS_TOKEN, api_url=github.api_url).secret
            assert secret is not None
            admin.add_notification("shop", "oncall", "email", to=["oncall@example.com"])

            before = repo.commit({}, "empty", branch="main")
            sha = repo.commit(
                {"VERSION": "2.0\n", "check.py": "import sys\nprint('checking')\nsys.exit('VERSION 2.0 is not released')\n"},
                "bump to 2.0",
                branch="feature/login",
            )
            repo.commit({"VERSION": "3.0\n"}, "a later commit", branch="feature/login")  # the run must not take it
            body = body_of(github_push("octo/shop", "feature/login", before, sha))
            answer = httpx.post(
                f"{stack.url}/api/v1/hooks/github/shop", content=body, headers=github_headers(secret, "push", body)
            )
            assert answer.status_code == 200, answer.text
            (run_id,) = answer.json()["runs"]

            run = wait_for_run(admin, run_id, timeout=60)
            assert run.state == "failed" and run.trigger == "webhook" and run.code_commit == sha
            assert [(s.name, s.state) for s in run.steps] == [
                ("version", "succeeded"),
                ("check", "failed"),
                ("never", "skipped"),
            ]
            blob, _ = admin.read_logs(run_id)
            assert b"version 2.0" in blob and b"VERSION 2.0 is not released" in blob

            statuses = wait_until(lambda: github.statuses if len(github.statuses) == 2 else None, timeout=20)
            assert github.problems == []
            assert [s["state"] for s in statuses] == ["pending", "failure"]
            assert {(s["repository"], s["sha"], s["context"]) for s in statuses} == {("octo/shop", sha, "devyard/ci")}
            assert statuses[-1]["target_url"].endswith(f"/api/v1/runs/{run_id}")
            assert statuses[-1]["description"] == f"Run {run_id} failed"

            (mail,) = wait_until(lambda: smtp.received, timeout=20, message="the failure e-mail")
            assert mail.tls and mail.authenticated and mail.rcpt_tos == ["oncall@example.com"]
            assert mail.message["Subject"] == f"[devyard] shop: job ci failed at {sha[:12]} (run {run_id})"
            payload = mail.message.get_payload(decode=True)
            assert isinstance(payload, bytes)
            text = payload.decode()
            assert "Failing step: check (step 2, failed, exit code 1)" in text
            assert f"Commit: {sha}" in text and "VERSION 2.0 is not released" in text
            assert f"yard runs logs {run_id}" in text
            # The server has the mail a moment before the sender records its answer.
            done = {("github_status", "delivered"), ("email", "delivered")}
            wait_until(lambda: {(d.channel, d.state) for d in admin.list_deliveries(run=run_id)} == done)
