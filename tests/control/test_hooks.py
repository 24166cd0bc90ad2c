"""Inbound git webhooks: real GitHub and GitLab payloads and Standard Webhooks messages, signed for
real, against a real API; every rejection path, replay, size limit, unknown events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.hooks import events
from tests.services.git_payloads import (
    ZERO,
    body_of,
    github_headers,
    github_pull_request,
    github_push,
    gitlab_headers,
    gitlab_merge_request,
    gitlab_push,
    standard_headers,
    standard_message,
)
from tests.stack import Stack, running_stack

SHA = "1481a2de7b2a7d02428ad93446ab166be7793fbb"
SHA2 = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}", hook_max_body_bytes=64 * 1024) as running:
        with running.client() as admin:
            admin.create_project("shop")
        yield running


def post(stack: Stack, provider: str, body: bytes, headers: dict[str, str], project: str = "shop") -> httpx.Response:
    return httpx.post(f"{stack.url}/api/v1/hooks/{provider}/{project}", content=body, headers=headers, timeout=10)


def github_secret(stack: Stack) -> str:
    with stack.client() as admin:
        created = admin.set_hook("shop", "github")
    assert created.secret is not None and created.url == f"{stack.settings.effective_public_url}/api/v1/hooks/github/shop"
    return created.secret


def refused_audit(stack: Stack) -> list[dict[str, object]]:
    with stack.client() as admin:
        return [e.details for e in admin.list_audit(action="hook.refused").items]


def test_a_signed_github_push_is_accepted_once(tmp_path: Path, database_url: str) -> None:
    with running_stack(tmp_path / "data", database_url) as stack:
        with stack.client() as admin:
            admin.create_project("shop")
        secret = github_secret(stack)
        body = body_of(github_push("octo/shop", "main", ZERO, SHA))
        headers = github_headers(secret, "push", body)
        first = post(stack, "github", body, headers)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "accepted" and first.json()["delivery"] == headers["X-GitHub-Delivery"]
        again = post(stack, "github", body, headers)  # GitHub's "Redeliver", or a replay
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        with stack.client() as admin:
            (delivery,) = admin.list_hook_deliveries("shop")
        assert (delivery.event, delivery.outcome, delivery.delivery_id) == ("push", "accepted", headers["X-GitHub-Delivery"])


def test_unsigned_and_wrongly_signed_requests_are_401_and_audited(stack: Stack) -> None:
    secret = github_secret(stack)
    body = body_of(github_push("octo/shop", "main", ZERO, SHA))
    unsigned = {k: v for k, v in github_headers(secret, "push", body).items() if not k.startswith("X-Hub")}
    answer = post(stack, "github", body, unsigned)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_signature"
    assert "X-Hub-Signature-256" in answer.json()["error"]["message"]
    forged = github_headers("not-the-secret-at-all", "push", body)
    assert post(stack, "github", body, forged).status_code == 401
    tampered = github_headers(secret, "push", body)
    assert post(stack, "github", body.replace(b"main", b"prod"), tampered).status_code == 401
    # The real delivery, arriving after a forged one with its id, still runs: refusals claim nothing.
    genuine = github_headers(secret, "push", body, delivery=forged["X-GitHub-Delivery"])
    assert post(stack, "github", body, genuine).json()["status"] == "accepted"
    reasons = [str(d["reason"]) for d in refused_audit(stack)]
    assert len(reasons) == 3 and all(d["provider"] == "github" and d["client"] == "127.0.0.1" for d in refused_audit(stack))
    assert secret not in str(refused_audit(stack))
    with stack.client() as admin:
        assert len(admin.list_hook_deliveries("shop")) == 1


def test_unknown_hooks_are_one_404_whether_the_project_exists_or_not(stack: Stack) -> None:
    body = body_of(github_push("octo/shop", "main", ZERO, SHA))
    headers = github_headers("whatever-secret-123", "push", body)
    for project in ("shop", "nope"):
        answer = post(stack, "github", body, headers, project=project)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "hook_not_found"
    assert post(stack, "bitbucket", body, headers).status_code == 422


def test_bodies_over_the_limit_are_413(stack: Stack) -> None:
    secret = github_secret(stack)
    payload = github_push("octo/shop", "main", ZERO, SHA)
    payload["commits"] = payload["commits"] * 400  # about 400 kB, over the 64 kB of this stack
    body = body_of(payload)
    answer = post(stack, "github", body, github_headers(secret, "push", body))
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = httpx.post(
        f"{stack.url}/api/v1/hooks/github/shop", content=chunks(), headers=github_headers(secret, "push", body)
    )
    assert streamed.status_code == 413


def test_events_that_start_nothing_are_202_and_ignored(stack: Stack) -> None:
    secret = github_secret(stack)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("ping", {"zen": "Design for failure.", "hook_id": 1, "repository": {"full_name": "octo/shop"}}),
        ("issues", {"action": "opened", "issue": {"number": 1}, "repository": {"full_name": "octo/shop"}}),
        ("pull_request", github_pull_request("octo/shop", "labeled", 7, "feature", SHA)),
        ("push", github_push("octo/shop", "gone", SHA, ZERO)),
        ("push", {**github_push("octo/shop", "main", ZERO, SHA), "ref": "refs/tags/v1.0"}),
    ]
    details = []
    for event, payload in cases:
        body = body_of(payload)
        answer = post(stack, "github", body, github_headers(secret, event, body))
        assert answer.status_code == 202 and answer.json()["status"] == "ignored", answer.text
        details.append(answer.json()["detail"])
    assert details[0] == "Ping received; the webhook is set up."
    assert "'issues' starts nothing" in details[1] and "'labeled' starts nothing" in details[2]
    assert details[3] == "Branch gone was deleted; nothing to run." and "Tag v1.0" in details[4]
    malformed = b"not json"
    assert post(stack, "github", malformed, github_headers(secret, "push", malformed)).status_code == 400
    broken = body_of({"ref": "refs/heads/main"})
    answer = post(stack, "github", broken, github_headers(secret, "push", broken))
    assert answer.status_code == 422 and "repository.full_name" in answer.json()["error"]["message"]


def test_gitlab_token_and_merge_requests(stack: Stack) -> None:
    token = "gl-token-" + uuid.uuid4().hex
    with stack.client() as admin:
        created = admin.set_hook("shop", "gitlab", secret=token)
    assert created.secret is None  # we did not make it: not echoed
    push = body_of(gitlab_push("group/shop", "main", ZERO, SHA))
    assert post(stack, "gitlab", push, gitlab_headers(token, "Push Hook")).json()["status"] == "accepted"
    wrong = post(stack, "gitlab", push, gitlab_headers("gl-token-wrong", "Push Hook"))
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "X-Gitlab-Token is not the project's secret."
    missing = {k: v for k, v in gitlab_headers(token, "Push Hook").items() if k != "X-Gitlab-Token"}
    assert post(stack, "gitlab", push, missing).status_code == 401
    retried = gitlab_headers(token, "Merge Request Hook", idempotency_key="same-key")
    mr = body_of(gitlab_merge_request("group/shop", "update", 3, "feature", SHA2, oldrev=SHA))
    assert post(stack, "gitlab", mr, retried).json()["status"] == "accepted"
    assert post(stack, "gitlab", mr, retried).json()["status"] == "duplicate"  # GitLab's retry
    title_only = body_of(gitlab_merge_request("group/shop", "update", 3, "feature", SHA2))
    ignored = post(stack, "gitlab", title_only, gitlab_headers(token, "Merge Request Hook"))
    assert ignored.status_code == 202 and "without new commits" in ignored.json()["detail"]
    assert len(refused_audit(stack)) == 2


def test_standard_webhooks_sender(stack: Stack) -> None:
    with stack.client() as admin:
        secret = admin.set_hook("shop", "standard").secret
    assert secret is not None and secret.startswith("whsec_")
    body = standard_message("push", {"repository": "shop", "branch": "main", "sha": SHA})
    headers = standard_headers(secret, body)
    assert post(stack, "standard", body, headers).json()["status"] == "accepted"
    assert post(stack, "standard", body, headers).json()["status"] == "duplicate"
    stale = standard_headers(secret, body, now=time.time() - 3600)
    answer = post(stack, "standard", body, stale)
    assert answer.status_code == 401 and "more than 5 minutes" in answer.json()["error"]["message"]
    other = standard_message("deploy", {"x": 1})
    assert post(stack, "standard", other, standard_headers(secret, other)).status_code == 202


def test_managing_hooks(stack: Stack) -> None:
    developer = stack.user("dev", "developer")
    with stack.client() as admin, stack.client(developer) as dev:
        first = admin.set_hook("shop", "github", status_token="ghp_example", api_url="http://127.0.0.1:9/api")
        assert first.statuses and first.api_url == "http://127.0.0.1:9/api"
        rotated = admin.set_hook("shop", "github", secret="a-new-secret-of-mine", status_token=None)
        assert rotated.secret is None and not rotated.statuses and rotated.api_url == "http://127.0.0.1:9/api"
        with pytest.raises(Exception) as refused:
            dev.set_hook("shop", "gitlab")
        assert getattr(refused.value, "status", None) == 403
        (listed,) = admin.list_hooks("shop")
        assert "a-new-secret" not in listed.model_dump_json() and "ghp_" not in listed.model_dump_json()
        admin.remove_hook("shop", "github")
        assert admin.list_hooks("shop") == []
        actions = [e.action for e in admin.list_audit().items]
    assert {"hook.create", "hook.update", "hook.delete"} <= set(actions)
    body = body_of(github_push("octo/shop", "main", ZERO, SHA))
    assert post(stack, "github", body, github_headers("a-new-secret-of-mine", "push", body)).status_code == 404


def test_payloads_are_read_as_providers_send_them() -> None:
    push = events.github("push", github_push("octo/shop", "release/1.2", ZERO, SHA))
    assert (push.kind, push.branch, push.sha, push.repository) == ("push", "release/1.2", SHA, "octo/shop")
    opened = events.github("pull_request", github_pull_request("octo/shop", "synchronize", 42, "feat/x", SHA2, "main"))
    assert (opened.action, opened.number, opened.head, opened.branch, opened.sha) == ("updated", 42, "feat/x", "main", SHA2)
    merged = events.gitlab(gitlab_merge_request("g/shop", "merge", 5, "feat", SHA))
    assert (merged.action, merged.number, merged.repository_id) == ("closed", 5, "15")
    pushed = events.gitlab(gitlab_push("g/sub/shop", "dev", SHA, SHA2, project_id=77))
    assert (pushed.branch, pushed.sha, pushed.repository) == ("dev", SHA2, "g/sub/shop")
    assert pushed.as_info()["ref"] == "refs/heads/dev"
    assert opened.as_info() == {
        "event": "pull_request",
        "repository": "octo/shop",
        "commit": SHA2,
        "pull_request": 42,
        "base_ref": "main",
        "head_ref": "feat/x",
        "ref": "feat/x",
    }
