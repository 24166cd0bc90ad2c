"""Where a run's code comes from: repository URLs, refs, and the code part of a run's spec.

A repository URL never carries a credential: the token or deploy key lives in an environment
secret that the project names (``repo_secret``), so a URL can be stored, shown, logged and put
in an error message as it is.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, StringConstraints

CodeSource = Literal["repository", "workspace", "none"]
SOURCES: tuple[str, ...] = ("repository", "workspace", "none")

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)[^\s]+$")  # git@github.com:org/repo.git
_SHA = re.compile(r"^[0-9a-f]{40}$")
# A branch, a tag, a commit (7 to 40 hex digits) or a full ref (refs/pull/7/head): what
# `git check-ref-format` accepts, minus what could be read as an option or a revision range.
_REF = re.compile(
    r"^(?!-)(?!.*\.\.)(?!.*@\{)(?!.*//)(?!/)(?!.*/$)(?!.*\.lock$)(?!.*\.$)[^\s~^:?*\[\\\x00-\x1f\x7f]{1,255}$"
)


def check_repo_url(value: str) -> str:
    """https://, http://, ssh://, file:// or scp-like ``user@host:path``, without a password."""
    value = value.strip()
    if _SCP_LIKE.match(value):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http", "ssh", "file"):
        raise ValueError(f"the repository URL '{value}' is not https://, ssh://, file:// or user@host:path")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError(f"the repository URL '{value}' has no host")
    if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        raise ValueError(f"the repository URL '{value}' must be file:///absolute/path")
    if parts.password is not None:
        raise ValueError(
            "the repository URL contains a password or token; give the URL without it and put the"
            " credential in an environment secret named by the project's repo_secret"
        )
    if any(c.isspace() or c == "\x00" for c in value):
        raise ValueError(f"the repository URL '{value}' contains spaces or control characters")
    return value


def check_ref(value: str) -> str:
    if not _REF.match(value):
        raise ValueError(f"'{value}' is not a valid branch, tag or commit name")
    return value


RepoUrl = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(check_repo_url)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(check_ref)]


def is_commit(ref: str) -> bool:
    """A full commit id (what a resolved run records)."""
    return bool(_SHA.match(ref))


def uses_ssh(url: str) -> bool:
    return url.startswith("ssh://") or bool(_SCP_LIKE.match(url))


class CodeSpec(BaseModel):
    """The code part of a run's spec: what the agent puts in the run's folder."""

    source: CodeSource
    repo_url: str | None = None
    ref: str | None = None
    """What was asked for: a branch, a tag, a commit or a full ref."""
    commit: str | None = None
    """Already resolved (a retry or rerun): check out exactly this commit."""
    credential_secret: str | None = None
    """The environment secret holding the HTTPS token or SSH deploy key; its value is in the
    spec's ``env`` (and is masked like every secret)."""
    mirror: str | None = None
    """The mirror's folder name under ``git/`` on the volume: one per project and repository."""
