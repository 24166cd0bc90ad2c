"""`yard hooks` as a user runs it (a real subprocess)."""

from __future__ import annotations

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
