"""Commit statuses posted back to GitHub and GitLab for runs that a webhook started.

A status is a delivery (control/notifications): queued ``pending`` with the run, queued again
with the run's end, sent by the API's delivery loop with the same retries and records. A newer
status of a run supersedes an older one not sent yet, so a slow ``pending`` never lands after
``success``.

The requests follow the providers' REST documentation:

- GitHub: ``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` with ``Authorization: Bearer``,
  ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version: 2022-11-28`` and
  ``{"state": "pending|success|failure|error", "target_url", "description", "context"}``.
- GitLab: ``POST {api}/projects/{id}/statuses/{sha}`` with ``PRIVATE-TOKEN`` and
  ``{"state": "pending|running|success|failed|canceled", "name", "target_url", "description",
  "ref"}``; ``id`` is the numeric project id or the URL-encoded path.

The API address comes from the project's hook settings only (never from a payload: a signed
payload must not be able to send the token elsewhere).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, col, select

from control.db.tables import Delivery, ProjectHook, Run
from control.hooks.origin import from_webhook
from control.notifications.channels import Answer, post_json

DEFAULT_API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
CHANNELS = {"github": "github_status", "gitlab": "gitlab_status"}

GITHUB_STATES = {
    "pending": "pending",
    "succeeded": "success",
    "failed": "failure",
    "timed_out": "failure",
    "cancelled": "error",
    "lost": "error",
}
GITLAB_STATES = {
    "pending": "pending",
    "succeeded": "success",
    "failed": "failed",
    "timed_out": "failed",
    "cancelled": "canceled",
    "lost": "failed",
}
DESCRIPTIONS = {
    "pending": "queued",
    "succeeded": "succeeded",
    "failed": "failed",
    "timed_out": "timed out",
    "cancelled": "was cancelled",
    "lost": "was lost",
}


def api_url_of(hook: ProjectHook) -> str:
    return (hook.api_url or DEFAULT_API.get(hook.provider, "")).rstrip("/")


def _hook_with_token(session: Session, project_id: int, provider: str) -> ProjectHook | None:
    hook = session.exec(
        select(ProjectHook).where(ProjectHook.project_id == project_id, ProjectHook.provider == provider)
    ).first()
    return hook if hook is not None and hook.status_token else None


def queue_status(session: Session, run: Run, state: str) -> Delivery | None:
    """Queue the commit status ``state`` (``pending`` or a run state) of a run a webhook started,
    when its project posts statuses; older unsent statuses of the run are superseded."""
    info = run.trigger_info
    provider = info.get("provider")
    if provider not in CHANNELS or not info.get("commit") or not info.get("repository"):
        return None
    if not from_webhook(session, run):
        return None  # trigger_info alone is the caller's word
    if _hook_with_token(session, run.project_id, provider) is None:
        return None
    channel = CHANNELS[provider]
    for older in session.exec(
        select(Delivery).where(Delivery.run_id == run.id, Delivery.channel == channel, col(Delivery.state) == "pending")
    ):
        older.state, older.last_error = "superseded", "A newer status of the run replaced it."
        session.add(older)
    payload = {
        "provider": provider,
        "repository": info["repository"],
        "repository_id": info.get("repository_id"),
        "sha": info["commit"],
        "ref": info.get("ref"),
        "context": f"devyard/{info['job']}" if info.get("job") else "devyard",
    }
    delivery = Delivery(
        project_id=run.project_id,
        run_id=run.id,
        channel=channel,
        target=f"{info['repository']}@{str(info['commit'])[:12]}",
        event=state,
        payload=payload,
    )
    session.add(delivery)
    return delivery


def status_config(session: Session, delivery: Delivery) -> dict[str, str] | None:
    """The token and API address a status is sent with (None: statuses were turned off)."""
    provider = str(delivery.payload.get("provider"))
    hook = _hook_with_token(session, delivery.project_id, provider)
    if hook is None or hook.status_token is None:
        return None
    return {"token": hook.status_token, "api_url": api_url_of(hook)}


def status_request(
    channel: str, config: dict[str, str], payload: dict[str, Any], state: str, run_id: int | None, public_url: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL, headers and JSON body of one status request."""
    target_url = f"{public_url}/api/v1/runs/{run_id}"
    description = f"Run {run_id} {DESCRIPTIONS.get(state, state)}"[:140]
    sha = str(payload["sha"])
    if channel == "github_status":
        owner_repo = "/".join(quote(part, safe="") for part in str(payload["repository"]).split("/", 1))
        url = f"{config['api_url']}/repos/{owner_repo}/statuses/{sha}"
        headers = {
            "authorization": f"Bearer {config['token']}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
            "user-agent": "devyard",
        }
        body = {
            "state": GITHUB_STATES.get(state, "error"),
            "target_url": target_url,
            "description": description,
            "context": payload["context"],
        }
        return url, headers, body
    project = str(payload.get("repository_id") or quote(str(payload["repository"]), safe=""))
    url = f"{config['api_url']}/projects/{project}/statuses/{sha}"
    body = {
        "state": GITLAB_STATES.get(state, "failed"),
        "name": payload["context"],
        "target_url": target_url,
        "description": description,
    }
    ref = payload.get("ref")
    if isinstance(ref, str) and ref:
        body["ref"] = ref.removeprefix("refs/heads/")
    return url, {"private-token": config["token"], "user-agent": "devyard"}, body


async def send_status(
    channel: str, config: dict[str, str], payload: dict[str, Any], state: str, run_id: int | None, public_url: str,
    timeout_s: float,
) -> Answer:  # fmt: skip
    url, headers, body = status_request(channel, config, payload, state, run_id, public_url)
    return await post_json(url, json.dumps(body).encode(), headers, timeout_s)
