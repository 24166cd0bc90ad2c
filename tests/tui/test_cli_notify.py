"""`yard notify` and `yard notifications deliveries` as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.receiver import Receiver, http_receiver
from tests.stack import Stack, running_agent, running_stack, wait_for_run
from tests.tui.test_cli import assert_one_sentence_error, yard
from tests.waiting import wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with (
        running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}", notify_retry_delays_s=[0.1]) as running,
        running_agent(running, tmp_path / "agent"),
    ):
        with running.client() as admin:
            admin.create_project("demo")
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as running:
        yield running


def test_add_ls_test_deliveries_rm(stack: Stack, receiver: Receiver) -> None:
    env = {"DEVYARD_URL": stack.url, "DEVYARD_TOKEN": stack.admin_token, "DEVYARD_PROJECT": "demo"}
    slack_url = f"{receiver.url}/services/T/B/secret-part"
    added = yard("notify", "add", "team", "--slack", "-", "--on", "failed,cancelled", input=slack_url + "\n", env=env)
    assert added.returncode == 0, added.stderr
    assert f"slack to {receiver.url} on failed, cancelled" in added.stdout and "secret-part" not in added.stdout
    hook = yard("notify", "add", "ci", "--webhook", receiver.url, "--json", env=env)
    assert hook.returncode == 0, hook.stderr
    assert json.loads(hook.stdout)["signing_secret"].startswith("whsec_")

    listed = yard("notify", "ls", "--json", env=env)
    assert [n["name"] for n in json.loads(listed.stdout)] == ["ci", "team"]

    tested = yard("notify", "test", "team", env=env)
    assert tested.returncode == 0 and f"Test message to {receiver.url}: delivered (200: ok)" in tested.stdout
    receiver.default_status = 500
    refused = yard("notify", "test", "team", env=env)
    assert refused.returncode == 1 and "failed (500: receiver says no)" in refused.stdout

    with stack.client() as client:
        run = client.create_run("demo", [sys.executable, "-c", "raise SystemExit(2)"])
        wait_for_run(client, run.id)
        wait_until(lambda: [d for d in client.list_deliveries(run=run.id) if d.state == "failed"])
    failed = yard("notifications", "deliveries", "--failed", "--json", env=env)
    rows = json.loads(failed.stdout)
    assert [(r["event"], r["state"]) for r in rows] == [("failed", "failed"), ("failed", "failed"), ("test", "failed")]
    assert [a["status_code"] for a in rows[0]["attempts"]] == [500, 500]
    shown = yard("notifications", "deliveries", "--run", str(run.id), env=env)
    assert "500 receiver says no" in shown.stdout

    assert_one_sentence_error(yard("notify", "add", "x", "--slack", receiver.url, "--on", "exploded", env=env), "--on")
    assert_one_sentence_error(yard("notify", "add", "x", "--email", "a@example.com", env=env), "SMTP server")
    assert yard("notify", "rm", "team", env=env).returncode == 0
    assert_one_sentence_error(yard("notify", "test", "team", env=env), "demo/team does not exist")
