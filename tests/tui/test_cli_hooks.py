"""`yard hooks` as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack
from tests.tui.test_cli import assert_one_sentence_error, yard


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}") as running:
        with running.client() as admin:
            admin.create_project("shop")
        yield running


def test_set_show_rm(stack: Stack) -> None:
    env = {"DEVYARD_URL": stack.url, "DEVYARD_TOKEN": stack.admin_token}
    url = f"{stack.settings.effective_public_url}/api/v1/hooks/github/shop"
    created = yard("hooks", "set", "shop", "github", "--status-token", "-", input="ghp_statustoken\n", env=env)
    assert created.returncode == 0, created.stderr
    assert f"Webhook github of shop: {url}" in created.stdout and "whsec_" in created.stdout
    shown = yard("hooks", "show", "shop", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"Payload URL:   {url}" in shown.stdout and "Content type:  application/json" in shown.stdout
    assert "Pushes, Pull requests" in shown.stdout and "posted to https://api.github.com" in shown.stdout
    assert "ghp_statustoken" not in shown.stdout and "whsec_" not in shown.stdout
    assert_one_sentence_error(yard("hooks", "set", "shop", "bitbucket", env=env), "not one of github, gitlab, standard")
    assert yard("hooks", "rm", "shop", "github", env=env).returncode == 0
    assert "has no webhook yet" in yard("hooks", "show", "shop", env=env).stdout


def test_jobs_with_git_triggers_and_their_notifications(stack: Stack) -> None:
    env = {"DEVYARD_URL": stack.url, "DEVYARD_TOKEN": stack.admin_token, "DEVYARD_PROJECT": "shop"}
    with stack.client() as admin:
        admin.add_notification("shop", "team", "webhook", url="http://127.0.0.1:9/hook")
    added = yard("jobs", "add", "ci", "--on-push", "main", "--on-push", "release/*", "--on-pr", "main", "--", "true", env=env)
    assert added.returncode == 0, added.stderr
    shown = yard("jobs", "show", "ci", env=env)
    assert "push to main, release/*" in shown.stdout and "pull request into main" in shown.stdout
    assert "team" in shown.stdout and "project" in shown.stdout  # the project's notification applies
    edited = yard("jobs", "edit", "ci", "--on-pr", "dev", "--pr-keep-running", "--json", env=env)
    assert edited.returncode == 0, edited.stderr
    kinds = {t["kind"]: t["config"] for t in json.loads(edited.stdout)["triggers"]}
    assert kinds == {
        "push": {"branches": ["main", "release/*"]},
        "pull_request": {"branches": ["dev"], "cancel_in_progress": False},
    }
    cleared = yard("jobs", "edit", "ci", "--no-git", "--json", env=env)
    assert json.loads(cleared.stdout)["triggers"] == []
