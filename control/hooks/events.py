"""What a git provider's webhook says, in one shape: a push to a branch or a pull request change.

GitHub (``X-GitHub-Event``: ``push``, ``pull_request``), GitLab (``object_kind``: ``push``,
``merge_request``) and a Standard Webhooks sender (``type``: ``push``, ``pull_request``, with our
own ``data`` shape, docs/webhooks.md) are read here. Anything else, or an action that starts
nothing (a PR labelled, a tag pushed, a branch deleted) is :class:`Ignored` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ZERO_SHA = "0" * 40


class Ignored(Exception):
    """The event starts nothing; the message says why (the sender sees it)."""


class Malformed(Exception):
    """The body is not the payload the event names; one sentence."""


@dataclass(frozen=True)
class GitEvent:
    kind: Literal["push", "pull_request"]
    action: Literal["push", "opened", "updated", "reopened", "closed"]
    repository: str
    """``owner/name`` (GitHub), the project's path with namespace (GitLab)."""
    sha: str
    """The commit to run: the pushed head, or the pull request's head."""
    branch: str
    """The pushed branch, or the pull request's base (target) branch."""
    repository_id: str | None = None
    """GitLab's numeric project id (its status API takes it)."""
    number: int | None = None
    head: str | None = None
    """The pull request's head (source) branch."""
    title: str = ""
    sender: str = ""
    url: str = ""

    def as_info(self) -> dict[str, Any]:
        """The run's ``trigger_info`` for this event (also what cancels and statuses look up)."""
        info: dict[str, Any] = {"event": self.kind, "repository": self.repository, "commit": self.sha}
        if self.repository_id:
            info["repository_id"] = self.repository_id
        if self.kind == "push":
            info["ref"] = f"refs/heads/{self.branch}"
        else:
            info.update(pull_request=self.number, base_ref=self.branch, head_ref=self.head, ref=self.head)
        return info


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(data: Any, *path: str, required: bool = True) -> str:
    value = _get(data, *path)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if required:
        raise Malformed(f"The payload has no {'.'.join(path)}.")
    return ""


def _branch_of(ref: str) -> str:
    if ref.startswith("refs/tags/"):
        raise Ignored(f"Tag {ref.removeprefix('refs/tags/')} was pushed; only branch pushes start runs.")
    if not ref.startswith("refs/heads/"):
        raise Ignored(f"A push to {ref} starts nothing; only branch pushes start runs.")
    return ref.removeprefix("refs/heads/")


def _number(data: Any, *path: str) -> int:
    value = _get(data, *path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"The payload has no {'.'.join(path)}.")
    return value


GITHUB_PR_ACTIONS = {"opened": "opened", "synchronize": "updated", "reopened": "reopened", "closed": "closed"}


def github(event: str, payload: Any) -> GitEvent:
    """A GitHub ``push`` or ``pull_request`` delivery (``X-GitHub-Event``)."""
    if event == "ping":
        raise Ignored("Ping received; the webhook is set up.")
    repository = _text(payload, "repository", "full_name")
    if event == "push":
        branch = _branch_of(_text(payload, "ref"))
        sha = _text(payload, "after")
        if _get(payload, "deleted") is True or sha == ZERO_SHA:
            raise Ignored(f"Branch {branch} was deleted; nothing to run.")
        return GitEvent(
            "push", "push", repository, sha, branch, sender=_text(payload, "sender", "login", required=False)
        )
    if event == "pull_request":
        raw = _text(payload, "action")
        action = GITHUB_PR_ACTIONS.get(raw)
        if action is None:
            raise Ignored(f"Pull request action '{raw}' starts nothing (opened, synchronize, reopened, closed do).")
        return GitEvent(
            "pull_request",
            action,  # type: ignore[arg-type]
            repository,
            _text(payload, "pull_request", "head", "sha"),
            _text(payload, "pull_request", "base", "ref"),
            number=_number(payload, "pull_request", "number"),
            head=_text(payload, "pull_request", "head", "ref"),
            title=_text(payload, "pull_request", "title", required=False),
            sender=_text(payload, "sender", "login", required=False),
            url=_text(payload, "pull_request", "html_url", required=False),
        )
    raise Ignored(f"GitHub event '{event}' starts nothing (push and pull_request do).")


GITLAB_MR_ACTIONS = {"open": "opened", "reopen": "reopened", "update": "updated", "close": "closed", "merge": "closed"}


def gitlab(payload: Any) -> GitEvent:
    """A GitLab push or merge request hook (read by its ``object_kind``)."""
    kind = _get(payload, "object_kind")
    repository = _text(payload, "project", "path_with_namespace")
    project_id = _text(payload, "project", "id", required=False) or None
    if kind == "push":
        branch = _branch_of(_text(payload, "ref"))
        sha = _text(payload, "checkout_sha", required=False) or _text(payload, "after")
        if sha == ZERO_SHA or _text(payload, "after", required=False) == ZERO_SHA:
            raise Ignored(f"Branch {branch} was deleted; nothing to run.")
        return GitEvent(
            "push", "push", repository, sha, branch, repository_id=project_id,
            sender=_text(payload, "user_username", required=False),
        )  # fmt: skip
    if kind == "merge_request":
        raw = _text(payload, "object_attributes", "action", required=False)
        action = GITLAB_MR_ACTIONS.get(raw)
        # An "update" that changed only the title or labels has no oldrev: nothing new to run.
        if action == "updated" and not _get(payload, "object_attributes", "oldrev"):
            raise Ignored("The merge request changed without new commits; nothing to run.")
        if action is None:
            raise Ignored(f"Merge request action '{raw}' starts nothing (open, update, reopen, close, merge do).")
        return GitEvent(
            "pull_request",
            action,  # type: ignore[arg-type]
            repository,
            _text(payload, "object_attributes", "last_commit", "id"),
            _text(payload, "object_attributes", "target_branch"),
            repository_id=project_id,
            number=_number(payload, "object_attributes", "iid"),
            head=_text(payload, "object_attributes", "source_branch"),
            title=_text(payload, "object_attributes", "title", required=False),
            sender=_text(payload, "user", "username", required=False),
            url=_text(payload, "object_attributes", "url", required=False),
        )
    raise Ignored(f"GitLab event '{kind or 'unknown'}' starts nothing (push and merge_request do).")


STANDARD_ACTIONS = ("opened", "updated", "reopened", "closed")


def standard(payload: Any) -> GitEvent:
    """A Standard Webhooks message ``{"type": "push"|"pull_request", "data": {...}}``."""
    kind = _get(payload, "type")
    data = _get(payload, "data")
    if kind == "push":
        return GitEvent("push", "push", _text(data, "repository"), _text(data, "sha"), _text(data, "branch"))
    if kind == "pull_request":
        action = _text(data, "action")
        if action not in STANDARD_ACTIONS:
            raise Ignored(f"Pull request action '{action}' starts nothing ({', '.join(STANDARD_ACTIONS)} do).")
        return GitEvent(
            "pull_request",
            action,  # type: ignore[arg-type]
            _text(data, "repository"),
            _text(data, "sha"),
            _text(data, "base"),
            number=_number(data, "number"),
            head=_text(data, "head"),
        )
    raise Ignored(f"Event type '{kind}' starts nothing (push and pull_request do).")
