"""Notifications of a run's end, delivered for real: Slack and signed webhooks to a local HTTP
receiver, e-mail to a real SMTP server (aiosmtpd) with and without STARTTLS; receivers that are
down, slow or answering 500; every attempt recorded."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from control import standard_webhooks
from control.client import ApiError, Forbidden, NotFound
from control.client.sync import ControlClient
from control.wire.notifications import DeliveryOut
from tests.services.receiver import Receiver, http_receiver, wait_for_requests
from tests.services.smtpserver import smtp_server
from tests.stack import Stack, running_agent, running_stack, wait_for_run
from tests.waiting import wait_until

PY = sys.executable
SECRET = "sk-notify-secret-9876"
FAILING = [
    PY,
    "-c",
    "import os; print('starting'); print('token is', os.environ['API_KEY']); print('boom'); raise SystemExit(3)",
]


@contextmanager
def notifying_stack(tmp_path: Path, database_url: str, **settings: Any) -> Iterator[Stack]:
    """A stack with an agent, quick retries, and a project ``demo`` whose ``prod`` has a secret."""
    settings = {"notify_retry_delays_s": [0.1, 0.1], "notify_timeout_s": 2.0, **settings}
    with (
        running_stack(
            tmp_path / "data", database_url, run_lost_after_s=10, housekeeping_interval_s=0.3, **settings
        ) as stack,
        running_agent(stack, tmp_path / "agent"),
    ):
        with stack.client() as admin:
            admin.create_project("demo")
            admin.create_environment("demo", "prod", secrets={"API_KEY": SECRET})
        yield stack


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as running:
        yield running


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with notifying_stack(tmp_path, f"sqlite:///{tmp_path / 'devyard.db'}") as running:
        yield running


def delivery(client: ControlClient, state: str | tuple[str, ...], run_id: int | None = None) -> DeliveryOut:
    """Wait for the newest delivery (of ``run_id``) to reach ``state``."""
    states = (state,) if isinstance(state, str) else state

    def reached() -> DeliveryOut | None:
        found = client.list_deliveries(project="demo", run=run_id, limit=1)
        return found[0] if found and found[0].state in states else None

    return wait_until(reached, timeout=20, message=f"a delivery in state {states}")


def failed_run(client: ControlClient) -> int:
    run = client.create_run("demo", FAILING, environment="prod")
    assert wait_for_run(client, run.id).state == "failed"
    return run.id


def test_slack_gets_what_ran_how_it_ended_and_the_masked_log_tail(stack: Stack, receiver: Receiver) -> None:
    with stack.client() as client:
        created = client.add_notification("demo", "team", "slack", url=f"{receiver.url}/services/T0/B0/XXXX")
        assert created.target == receiver.url and created.events == ["failed", "timed_out", "lost"]
        assert created.signing_secret is None
        ok = client.create_run("demo", [PY, "-c", "print('fine')"])
        assert wait_for_run(client, ok.id).state == "succeeded"  # not in the default events
        run_id = failed_run(client)
        done = delivery(client, "delivered", run_id)
    (request,) = wait_for_requests(receiver, 1)
    assert request.path == "/services/T0/B0/XXXX"
    body = request.json()
    assert body["text"] == f"demo: {' '.join(FAILING)[:200].replace(SECRET, '***')} failed (run {run_id})"
    text = "\n".join(block["text"]["text"] for block in body["blocks"] if "text" in block)
    assert "exit code 3" in text and "environment prod" in text
    program = FAILING[0].rsplit("/", 1)[-1]
    assert f"Failing step: {program} (step 1, failed, exit code 3)" in text
    assert "token is ***" in text and "boom" in text and SECRET not in request.body.decode()
    assert f"`yard runs logs {run_id}`" in request.body.decode()
    assert done.channel == "slack" and done.event == "failed" and done.notification == "team"
    assert [(a.number, a.ok, a.status_code) for a in done.attempts] == [(1, True, 200)]
    # The URL is the credential: it is never shown again.
    with stack.client() as client:
        (listed,) = client.list_notifications("demo")
    assert "XXXX" not in listed.model_dump_json()


def test_signed_webhook_is_retried_with_the_same_id_until_it_is_taken(tmp_path: Path, database_url: str) -> None:
    with notifying_stack(tmp_path, database_url) as stack, http_receiver() as receiver, stack.client() as client:
        receiver.statuses = [500, 503]
        created = client.add_notification("demo", "hook", "webhook", url=f"{receiver.url}/in?key=abc")
        secret = created.signing_secret
        assert secret is not None and secret.startswith("whsec_") and created.target == receiver.url
        run_id = failed_run(client)
        done = delivery(client, "delivered", run_id)
    assert [(a.number, a.ok, a.status_code) for a in done.attempts] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]
    assert done.attempts[0].answer == "receiver says no"
    requests = wait_for_requests(receiver, 3)
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # receivers drop duplicates by it
    for request in requests:
        assert standard_webhooks.verify(secret, request.headers, request.body) == request.headers["webhook-id"]
    payload = requests[-1].json()
    assert payload["type"] == "run.finished" and payload["data"]["run_id"] == run_id
    assert payload["data"]["state"] == "failed" and payload["data"]["exit_code"] == 3
    assert payload["data"]["logs_command"] == f"yard runs logs {run_id}"
    with pytest.raises(standard_webhooks.SignatureRefused):
        standard_webhooks.verify(standard_webhooks.new_secret(), requests[0].headers, requests[0].body)


def test_a_receiver_that_keeps_failing_is_recorded_as_failed(stack: Stack, receiver: Receiver) -> None:
    receiver.default_status = 500
    with stack.client() as client:
        client.add_notification("demo", "hook", "webhook", url=receiver.url)
        run_id = failed_run(client)
        done = delivery(client, "failed", run_id)
        assert [a.status_code for a in done.attempts] == [500, 500, 500]  # the first try and two retries
        assert done.last_error == "receiver says no"
        assert [d.id for d in client.list_deliveries(failed=True)] == [done.id]


def test_a_receiver_that_is_down_or_refuses_for_good(stack: Stack, receiver: Receiver) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with stack.client() as client:
        client.add_notification("demo", "down", "slack", url=closed)
        run_id = failed_run(client)
        down = delivery(client, "failed", run_id)
        assert len(down.attempts) == 3 and all(a.status_code is None for a in down.attempts)
        assert down.attempts[0].answer == "The connection was refused or could not be made."
        client.remove_notification("demo", "down")
        receiver.default_status = 404  # a revoked Slack URL: sending again cannot help
        client.add_notification("demo", "revoked", "slack", url=receiver.url)
        run_id = failed_run(client)
        gone = delivery(client, "failed", run_id)
    assert [a.status_code for a in gone.attempts] == [404]


def test_a_slow_receiver_times_out_and_never_delays_the_run(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay_s = 60  # held until the test ends
    url = f"sqlite:///{tmp_path / 'devyard.db'}"
    with notifying_stack(tmp_path, url, notify_timeout_s=1.0) as stack, stack.client() as client:
        client.add_notification("demo", "slow", "webhook", url=receiver.url)
        run = client.create_run("demo", FAILING, environment="prod")
        # The run ends while its notification is still waiting for the receiver.
        assert wait_for_run(client, run.id, timeout=10).state == "failed"
        sending = client.list_deliveries(run=run.id)
        assert [d.state for d in sending] in (["pending"], ["sending"]) and sending[0].attempts == []
        done = delivery(client, "failed", run.id)
    assert [a.answer for a in done.attempts] == ["No answer within 1 s."] * 3
    assert all(900 <= a.duration_ms < 5000 for a in done.attempts)


def test_email_over_starttls_with_login(tmp_path: Path) -> None:
    with smtp_server(tmp_path, starttls=True, login=("mailer", "mail-pass")) as smtp:
        settings = smtp.settings(smtp_username="mailer", smtp_password="mail-pass", smtp_from="yard@example.com")
        with notifying_stack(tmp_path, f"sqlite:///{tmp_path / 'devyard.db'}", **settings) as stack:
            with stack.client() as client:
                client.add_notification("demo", "oncall", "email", to=["oncall@example.com", "lead@example.com"])
                run_id = failed_run(client)
                done = delivery(client, "delivered", run_id)
            (mail,) = wait_until(lambda: smtp.received, message="the e-mail to arrive")
    assert mail.tls and mail.authenticated
    assert mail.mail_from == "yard@example.com" and mail.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    assert mail.message["Subject"].startswith("[devyard] demo: ") and f"(run {run_id})" in mail.message["Subject"]
    payload = mail.message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "Outcome: failed, exit code 3" in body and "token is ***" in body and SECRET not in body
    assert f"yard runs logs {run_id}" in body
    assert done.attempts[0].status_code == 250 and done.target == "oncall@example.com, lead@example.com"


def test_email_without_starttls_and_a_server_that_lacks_it(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as plain, ExitStack() as stacks:
        stack = stacks.enter_context(
            notifying_stack(tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}", **plain.settings(smtp_security="none"))
        )
        with stack.client() as client:
            client.add_notification("demo", "mail", "email", to=["dev@example.com"])
            delivery(client, "delivered", failed_run(client))
        (mail,) = plain.received
        assert not mail.tls and not mail.authenticated and mail.rcpt_tos == ["dev@example.com"]
        # STARTTLS asked for (the default) and not offered: nothing is sent in the clear, no retry.
        strict = stacks.enter_context(
            notifying_stack(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}", **plain.settings())
        )
        with strict.client() as client:
            client.add_notification("demo", "mail", "email", to=["dev@example.com"])
            refused = delivery(client, "failed", failed_run(client))
        assert [a.answer for a in refused.attempts] == ["The SMTP server does not offer STARTTLS; nothing was sent."]
        assert len(plain.received) == 1


def test_notify_test_sends_a_sample_once(stack: Stack, receiver: Receiver) -> None:
    with stack.client() as client:
        created = client.add_notification("demo", "hook", "webhook", url=receiver.url, secret="whsec_" + "A" * 44)
        assert created.signing_secret is None  # the caller chose it: not echoed
        sent = client.test_notification("demo", "hook")
        assert sent.state == "delivered" and sent.event == "test" and sent.run_id is None
        receiver.default_status = 500
        refused = client.test_notification("demo", "hook")
        assert refused.state == "failed" and [a.status_code for a in refused.attempts] == [500]  # no retries
    first = receiver.requests[0]
    assert first.json()["type"] == "notification.test"
    standard_webhooks.verify("whsec_" + "A" * 44, first.headers, first.body)


def test_cancelled_and_per_event_choice(stack: Stack, receiver: Receiver) -> None:
    with stack.client() as client:
        client.add_notification("demo", "ends", "slack", url=receiver.url, events=["cancelled", "succeeded"])
        ok = client.create_run("demo", [PY, "-c", "print('fine')"])
        wait_for_run(client, ok.id)
        assert delivery(client, "delivered", ok.id).event == "succeeded"
        long = client.create_run("demo", [PY, "-c", "import time; print('waiting', flush=True); time.sleep(60)"])
        wait_until(lambda: client.get_run(long.id).log_lines, message="the run to print")
        client.cancel_run(long.id)
        assert wait_for_run(client, long.id).state == "cancelled"
        assert delivery(client, "delivered", long.id).event == "cancelled"
        failed_run(client)  # failed is not chosen
        assert len(client.list_deliveries(project="demo")) == 2


def test_who_may_add_and_what_is_refused(stack: Stack, receiver: Receiver) -> None:
    dev = stack.user("dev", "developer")
    with stack.client() as admin, stack.client(dev) as developer:
        with pytest.raises(Forbidden):
            developer.add_notification("demo", "mine", "slack", url=receiver.url)
        with pytest.raises(ApiError) as invalid:
            admin.add_notification("demo", "x", "slack")
        assert invalid.value.status == 422 and "needs 'url'" in str(invalid.value)
        with pytest.raises(ApiError) as invalid:
            admin.add_notification("demo", "x", "email", to=["not-an-address"])
        assert invalid.value.status == 422
        with pytest.raises(ApiError) as invalid:
            admin.add_notification("demo", "x", "slack", url="file:///etc/passwd")
        assert invalid.value.status == 422
        with pytest.raises(NotFound) as missing:
            admin.add_notification("demo", "x", "slack", url=receiver.url, job="nightly")
        assert "Job demo/nightly does not exist" in str(missing.value)
        with pytest.raises(ApiError) as invalid:
            admin.add_notification("demo", "x", "email", to=["a@example.com"])
        assert invalid.value.status == 409 and invalid.value.code == "smtp_not_configured"
        admin.add_notification("demo", "team", "slack", url=receiver.url)
        with pytest.raises(ApiError) as twice:
            admin.add_notification("demo", "team", "slack", url=receiver.url)
        assert twice.value.status == 409
        admin.remove_notification("demo", "team")
        with pytest.raises(NotFound):
            admin.remove_notification("demo", "team")
        audit = [e.action for e in admin.list_audit().items]
    assert "notification.create" in audit and "notification.delete" in audit


def test_a_jobs_own_notifications_replace_the_projects(stack: Stack) -> None:
    with http_receiver() as own, http_receiver() as default, stack.client() as client:
        client.create_job("demo", "nightly", steps=[{"command": FAILING}], environment="prod")
        client.add_notification("demo", "job-team", "slack", url=own.url, job="nightly")
        client.add_notification("demo", "everyone", "slack", url=default.url)
        listed = {n.name: n.job for n in client.list_notifications("demo")}
        assert listed == {"everyone": None, "job-team": "nightly"}
        # Readers of the job see what its runs send (channel and outcomes, never the address).
        assert client.get_job("demo", "nightly").notifies == ["slack on failed, timed_out, lost"]
        job_run = client.run_job("demo", "nightly")
        assert wait_for_run(client, job_run.id).state == "failed"
        assert delivery(client, "delivered", job_run.id).notification == "job-team"
        plain = failed_run(client)
        assert delivery(client, "delivered", plain).notification == "everyone"
        assert len(own.requests) == 1 and len(default.requests) == 1
        assert own.requests[0].json()["text"] == f"demo: job nightly failed (run {job_run.id})"
        client.create_job("demo", "other", steps=[{"command": ["true"]}])
        assert client.get_job("demo", "other").notifies == ["slack on failed, timed_out, lost"]  # the project's
        client.delete_job("demo", "nightly")  # its own notifications go with it
        assert [n.name for n in client.list_notifications("demo")] == ["everyone"]
