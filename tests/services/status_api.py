"""Local stand-ins for GitHub's and GitLab's commit status REST APIs.

GitHub and GitLab cannot be reached from here, so these servers check each request against the
providers' documented shapes and answer as they do:

- GitHub, "Create a commit status": ``POST /repos/{owner}/{repo}/statuses/{sha}``, a token in
  ``Authorization: Bearer`` (or ``token``), ``Accept: application/vnd.github+json``,
  ``X-GitHub-Api-Version: 2022-11-28``; JSON ``state`` (error, failure, pending, success),
  optional ``target_url``, ``description``, ``context``. 201 with the status; 401 for a bad
  token; 422 for a bad body.
- GitLab, "Set the pipeline status of a commit": ``POST /projects/{id}/statuses/{sha}`` with
  ``PRIVATE-TOKEN``; ``state`` (pending, running, success, failed, canceled, skipped), optional
  ``ref``, ``name``, ``target_url``, ``description``. 201; 401; 400 for a bad body.

Anything else is refused and recorded in ``problems``, so a test fails on a malformed request even
when the sender would have retried it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.services.receiver import Receiver, Request, http_receiver

SHA = re.compile(r"[0-9a-f]{40}")
GITHUB_PATH = re.compile(r"^/api/repos/([^/]+)/([^/]+)/statuses/([^/]+)$")
GITLAB_PATH = re.compile(r"^/api/v4/projects/([^/]+)/statuses/([^/]+)$")
GITHUB_STATES = {"error", "failure", "pending", "success"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}


@dataclass
class StatusApi:
    receiver: Receiver
    token: str
    provider: str
    statuses: list[dict[str, Any]] = field(default_factory=list)
    """Accepted statuses in order: the body plus ``repository`` and ``sha`` from the path."""
    problems: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.receiver.url}/api" if self.provider == "github" else f"{self.receiver.url}/api/v4"


def _json(status: int, body: dict[str, Any]) -> tuple[int, bytes]:
    return status, json.dumps(body).encode()


def _body(request: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(request.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _github(api: StatusApi, request: Request) -> tuple[int, bytes]:
    path = GITHUB_PATH.match(request.path)
    if request.method != "POST" or path is None or not SHA.fullmatch(path.group(3)):
        api.problems.append(f"not a GitHub status route: {request.method} {request.path}")
        return _json(404, {"message": "Not Found"})
    if request.headers.get("authorization") not in (f"Bearer {api.token}", f"token {api.token}"):
        api.problems.append("bad or missing Authorization")
        return _json(401, {"message": "Bad credentials"})
    if request.headers.get("accept") != "application/vnd.github+json":
        api.problems.append(f"Accept is {request.headers.get('accept')!r}")
    if request.headers.get("x-github-api-version") != "2022-11-28":
        api.problems.append("no X-GitHub-Api-Version: 2022-11-28")
    body = _body(request)
    allowed = {"state", "target_url", "description", "context"}
    if (
        body is None
        or body.get("state") not in GITHUB_STATES
        or set(body) - allowed
        or not all(isinstance(body.get(k, ""), str) for k in allowed - {"state"})
        or not str(body.get("target_url", "http://")).startswith(("http://", "https://"))
    ):
        api.problems.append(f"invalid GitHub status body: {request.body[:300]!r}")
        return _json(422, {"message": "Validation Failed"})
    api.statuses.append({**body, "repository": f"{path.group(1)}/{path.group(2)}", "sha": path.group(3)})
    return _json(201, {"id": len(api.statuses), "state": body["state"], "context": body.get("context", "default")})


def _gitlab(api: StatusApi, request: Request) -> tuple[int, bytes]:
    path = GITLAB_PATH.match(request.path)
    if request.method != "POST" or path is None or not SHA.fullmatch(path.group(2)):
        api.problems.append(f"not a GitLab status route: {request.method} {request.path}")
        return _json(404, {"message": "404 Not Found"})
    if request.headers.get("private-token") != api.token:
        api.problems.append("bad or missing PRIVATE-TOKEN")
        return _json(401, {"message": "401 Unauthorized"})
    body = _body(request)
    allowed = {"state", "ref", "name", "context", "target_url", "description", "coverage", "pipeline_id"}
    if body is None or body.get("state") not in GITLAB_STATES or set(body) - allowed:
        api.problems.append(f"invalid GitLab status body: {request.body[:300]!r}")
        return _json(400, {"message": "400 Bad request - state does not have a valid value"})
    api.statuses.append({**body, "repository": path.group(1), "sha": path.group(2)})
    return _json(201, {"id": len(api.statuses), "status": body["state"], "name": body.get("name", "default")})


@contextmanager
def status_api(provider: str, token: str) -> Iterator[StatusApi]:
    with http_receiver() as receiver:
        api = StatusApi(receiver, token, provider)
        receiver.respond = (lambda r: _github(api, r)) if provider == "github" else (lambda r: _gitlab(api, r))
        yield api
