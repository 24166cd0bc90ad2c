"""Webhook deliveries as GitHub and GitLab send them, signed for real.

The bodies follow the providers' documented payloads (GitHub: "Webhook events and payloads",
``push`` and ``pull_request``; GitLab: "Webhook events", push and merge request events), with the
fields a receiver meets in practice, not only the ones devyard reads. The headers are the ones
each provider sets on a delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from control import standard_webhooks

ZERO = "0" * 40


def _github_repository(full_name: str) -> dict[str, Any]:
    owner, name = full_name.split("/", 1)
    return {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {"name": owner, "login": owner, "id": 21031067, "type": "User", "site_admin": False},
        "html_url": f"https://github.com/{full_name}",
        "description": None,
        "fork": False,
        "url": f"https://api.github.com/repos/{full_name}",
        "created_at": 1557933565,
        "updated_at": "2019-05-15T15:20:41Z",
        "pushed_at": 1557933657,
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
        "visibility": "public",
    }


def _sender(login: str) -> dict[str, Any]:
    return {"login": login, "id": 21031067, "node_id": "MDQ6VXNlcjIxMDMxMDY3", "type": "User", "site_admin": False}


def github_push(full_name: str, branch: str, before: str, after: str, pusher: str = "octocat") -> dict[str, Any]:
    deleted = after == ZERO
    commit = {
        "id": after,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": "Update README.md",
        "timestamp": "2019-05-15T15:20:30-05:00",
        "url": f"https://github.com/{full_name}/commit/{after}",
        "author": {"name": pusher, "email": f"{pusher}@example.com", "username": pusher},
        "committer": {"name": pusher, "email": f"{pusher}@example.com", "username": pusher},
        "added": [],
        "removed": [],
        "modified": ["README.md"],
    }
    return {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": after,
        "repository": _github_repository(full_name),
        "pusher": {"name": pusher, "email": f"{pusher}@example.com"},
        "sender": _sender(pusher),
        "created": before == ZERO,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{full_name}/compare/{before[:12]}...{after[:12]}",
        "commits": [] if deleted else [commit],
        "head_commit": None if deleted else commit,
    }


def github_pull_request(
    full_name: str, action: str, number: int, head_ref: str, head_sha: str, base_ref: str = "main"
) -> dict[str, Any]:
    repository = _github_repository(full_name)
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{full_name}/pulls/{number}",
            "id": 279147437,
            "node_id": "MDExOlB1bGxSZXF1ZXN0Mjc5MTQ3NDM3",
            "html_url": f"https://github.com/{full_name}/pull/{number}",
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "locked": False,
            "title": "Update the README with new information",
            "user": _sender("octocat"),
            "body": "This is a pretty simple change that we need to pull into main.",
            "created_at": "2019-05-15T15:20:33Z",
            "updated_at": "2019-05-15T15:20:33Z",
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "draft": False,
            "head": {
                "label": f"octocat:{head_ref}",
                "ref": head_ref,
                "sha": head_sha,
                "user": _sender("octocat"),
                "repo": repository,
            },
            "base": {
                "label": f"octocat:{base_ref}",
                "ref": base_ref,
                "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                "user": _sender("octocat"),
                "repo": repository,
            },
            "merged": False,
            "mergeable": None,
            "comments": 0,
            "commits": 1,
            "additions": 1,
            "deletions": 1,
            "changed_files": 1,
        },
        "repository": repository,
        "sender": _sender("octocat"),
    }


def github_headers(secret: str, event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    """The headers of a GitHub delivery, ``X-Hub-Signature-256`` computed over ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "User-Agent": "GitHub-Hookshot/044aadd",
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-GitHub-Hook-Installation-Target-ID": "79929171",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def _gitlab_project(path: str, project_id: int) -> dict[str, Any]:
    namespace, name = path.rsplit("/", 1)
    return {
        "id": project_id,
        "name": name,
        "description": "",
        "web_url": f"https://gitlab.example.com/{path}",
        "avatar_url": None,
        "git_ssh_url": f"git@gitlab.example.com:{path}.git",
        "git_http_url": f"https://gitlab.example.com/{path}.git",
        "namespace": namespace,
        "visibility_level": 0,
        "path_with_namespace": path,
        "default_branch": "main",
        "ci_config_path": None,
        "homepage": f"https://gitlab.example.com/{path}",
        "url": f"git@gitlab.example.com:{path}.git",
        "ssh_url": f"git@gitlab.example.com:{path}.git",
        "http_url": f"https://gitlab.example.com/{path}.git",
    }


def gitlab_push(path: str, branch: str, before: str, after: str, project_id: int = 15) -> dict[str, Any]:
    commits = []
    if after != ZERO:
        commits.append(
            {
                "id": after,
                "message": "Update Catalan translation to e38cb41.\n",
                "title": "Update Catalan translation to e38cb41.",
                "timestamp": "2011-12-12T14:27:31+02:00",
                "url": f"https://gitlab.example.com/{path}/-/commit/{after}",
                "author": {"name": "Jordi Mallach", "email": "jordi@softcatala.org"},
                "added": ["CHANGELOG"],
                "modified": ["app/controller/application.rb"],
                "removed": [],
            }
        )
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": after,
        "ref": f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": None if after == ZERO else after,
        "message": None,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "user_email": "john@example.com",
        "user_avatar": "https://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=8://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=80",
        "project_id": project_id,
        "project": _gitlab_project(path, project_id),
        "commits": commits,
        "total_commits_count": len(commits),
        "push_options": {},
        "repository": {
            "name": path.rsplit("/", 1)[1],
            "url": f"git@gitlab.example.com:{path}.git",
            "description": "",
            "homepage": f"https://gitlab.example.com/{path}",
            "git_http_url": f"https://gitlab.example.com/{path}.git",
            "git_ssh_url": f"git@gitlab.example.com:{path}.git",
            "visibility_level": 0,
        },
    }


def gitlab_merge_request(
    path: str, action: str, iid: int, source: str, sha: str, target: str = "main", project_id: int = 15,
    oldrev: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    project = _gitlab_project(path, project_id)
    attributes: dict[str, Any] = {
        "id": 99,
        "iid": iid,
        "target_branch": target,
        "source_branch": source,
        "source_project_id": project_id,
        "author_id": 51,
        "assignee_ids": [6],
        "title": "MS-Viewport",
        "created_at": "2013-12-03T17:23:34Z",
        "updated_at": "2013-12-03T17:23:34Z",
        "milestone_id": None,
        "state": {"close": "closed", "merge": "merged"}.get(action, "opened"),
        "blocking_discussions_resolved": True,
        "work_in_progress": False,
        "draft": False,
        "first_contribution": True,
        "merge_status": "unchecked",
        "target_project_id": project_id,
        "description": "",
        "url": f"https://gitlab.example.com/{path}/-/merge_requests/{iid}",
        "source": project,
        "target": project,
        "last_commit": {
            "id": sha,
            "message": "fixed readme",
            "title": "Update file README.md",
            "timestamp": "2012-01-03T23:36:29+02:00",
            "url": f"https://gitlab.example.com/{path}/-/commit/{sha}",
            "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"},
        },
        "labels": [],
        "action": action,
        "detailed_merge_status": "mergeable",
    }
    if oldrev is not None:
        attributes["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Administrator", "username": "root", "email": "admin@example.com"},
        "project": project,
        "object_attributes": attributes,
        "labels": [],
        "changes": {},
        "repository": {"name": project["name"], "url": project["url"], "homepage": project["homepage"]},
    }


def gitlab_headers(token: str, event: str, idempotency_key: str | None = None) -> dict[str, str]:
    return {
        "User-Agent": "GitLab/17.5.0-ee",
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
    }


def standard_message(kind: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "timestamp": "2026-12-06T22:00:00Z", "data": data}).encode()


def standard_headers(secret: str, body: bytes, message_id: str | None = None, now: float | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **standard_webhooks.headers(secret, message_id or f"msg_{uuid.uuid4().hex}", body, now),
    }


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes a provider sends (compact JSON, as GitHub does)."""
    return json.dumps(payload, separators=(",", ":")).encode()
