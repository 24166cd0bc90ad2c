"""Whether a run was started by a git webhook, and what its command learns about the event.

Anyone who may create a run may write its ``trigger_info``, so nothing here trusts it alone: a
run counts as a webhook's only when its trigger (or, for a retry, its first attempt's) is
``webhook``, which the API never accepts from a caller. Otherwise a developer could post commit
statuses with the project's token to any repository.
"""

from __future__ import annotations

from sqlmodel import Session

from control.db.tables import Run

WEBHOOK = "webhook"
MAX_RETRY_CHAIN = 12  # max_retries is at most 10


def from_webhook(session: Session, run: Run) -> bool:
    current: Run | None = run
    for _ in range(MAX_RETRY_CHAIN):
        if current is None:
            return False
        if current.trigger == WEBHOOK:
            return True
        if current.trigger != "retry" or current.retry_of_id is None:
            return False
        current = session.get(Run, current.retry_of_id)
    return False


def _value(info: dict[str, object], key: str) -> str:
    value = info.get(key)
    return str(value)[:500] if isinstance(value, str | int) and not isinstance(value, bool) else ""


def git_variables(session: Session, run: Run) -> dict[str, str]:
    """``DEVYARD_GIT_*`` (and ``DEVYARD_PR_*`` for a pull request) for a webhook's run."""
    info = run.trigger_info
    if info.get("event") not in ("push", "pull_request") or not from_webhook(session, run):
        return {}
    found = {
        "DEVYARD_GIT_EVENT": _value(info, "event"),
        "DEVYARD_GIT_REPOSITORY": _value(info, "repository"),
        "DEVYARD_GIT_SHA": _value(info, "commit"),
        "DEVYARD_GIT_REF": _value(info, "ref"),
    }
    if info.get("event") == "pull_request":
        found["DEVYARD_PR_NUMBER"] = _value(info, "pull_request")
        found["DEVYARD_PR_BASE_REF"] = _value(info, "base_ref")
        found["DEVYARD_PR_HEAD_REF"] = _value(info, "head_ref")
        found["DEVYARD_PR_HEAD_SHA"] = _value(info, "commit")
    return found
