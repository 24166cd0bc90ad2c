"""Request and response bodies of the control API's resources: users, tokens, projects, members,
environments, audit entries, health, and the page every listing returns."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, StringConstraints

from control.wire.code import Ref, RepoUrl
from control.wire.fields import Name, Patch, Strict, VarName

T = TypeVar("T")
EnvironmentKind = Literal["deployment", "development"]


class Role(StrEnum):
    admin = "admin"
    developer = "developer"
    viewer = "viewer"
    agent = "agent"


class ProjectRole(StrEnum):
    """What a member may do in a project (see control/access.py)."""

    maintainer = "maintainer"
    developer = "developer"


class Page(BaseModel, Generic[T]):
    """One page of a listing; ``next_cursor`` is None on the last."""

    items: list[T]
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    version: str
    database: str


class Status(BaseModel):
    status: str
    version: str
    uptime_s: float
    database: dict[str, Any]
    object_store: dict[str, Any]
    substrate: str
    counts: dict[str, int]


class UserOut(BaseModel):
    id: int
    name: str
    email: str | None
    role: Role
    disabled: bool
    created_at: datetime
    sso_subject: str | None = None
    """The identity provider's subject this user signs in as (single sign-on), once linked."""


SsoSubject = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class UserCreate(Strict):
    name: Name
    role: Role = Role.developer
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    issue_token: bool = True
    """Also create a first API token and return it once."""
    sso_subject: SsoSubject | None = None
    """Link the user to this subject of the identity provider (``sub``) for single sign-on."""


class UserUpdate(Patch):
    NULLABLE = frozenset({"email", "sso_subject"})

    role: Role | None = None
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    disabled: bool | None = None
    sso_subject: SsoSubject | None = None
    """Link to another subject of the identity provider, or ``null`` to unlink (ends sign-ins)."""


class TokenOut(BaseModel):
    id: int
    user_id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    kind: Literal["api", "sso"] = "api"
    """``sso``: a single sign-on session; ``expires_at`` is its access token's, renewed until
    ``refresh_expires_at``."""
    refresh_expires_at: datetime | None = None


class TokenCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "cli"
    user: Name | None = None
    """Issue the token for this user (admins only); default: yourself."""
    expires_in_days: Annotated[int, Field(gt=0, le=3650)] | None = None


class TokenIssued(TokenOut):
    token: str
    """The secret; shown this once and never again."""


class UserCreated(UserOut):
    token: str | None = None


class Me(UserOut):
    token_id: int


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    repo_url: str | None
    default_branch: str = "main"
    """What a deployment environment without a branch of its own checks out."""
    repo_secret: str | None = None
    """The environment secret that holds the repository's HTTPS token or SSH deploy key."""
    owner: str
    max_concurrent_runs: int | None
    created_at: datetime
    updated_at: datetime


Limit = Annotated[int, Field(gt=0, le=10_000)]


class ProjectCreate(Strict):
    name: Name
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    repo_url: RepoUrl | None = None
    default_branch: Ref = "main"
    repo_secret: VarName | None = None
    max_concurrent_runs: Limit | None = None


class ProjectUpdate(Patch):
    NULLABLE = frozenset({"repo_url", "repo_secret", "max_concurrent_runs"})

    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    repo_url: RepoUrl | None = None
    default_branch: Ref | None = None
    repo_secret: VarName | None = None
    """The environment secret holding the HTTPS token (or SSH deploy key) for ``repo_url``."""
    max_concurrent_runs: Limit | None = None


class EnvironmentOut(BaseModel):
    id: int
    project: str
    name: str
    variables: dict[str, str]
    secret_names: list[str]
    agent_queue: str
    image: str | None
    resources: dict[str, Any]
    max_concurrent_runs: int | None
    protected: bool
    """Only the project's owner, its maintainers and admins may use it."""
    kind: EnvironmentKind = "development"
    """deployment: runs check out ``branch`` of the repository; development: the caller's workspace."""
    branch: str | None = None
    """A deployment environment's branch; unset: the project's default branch."""
    created_at: datetime
    updated_at: datetime


Resources = Annotated[dict[str, Any], Field(max_length=20)]


class EnvironmentCreate(Strict):
    name: Name
    variables: Annotated[dict[VarName, Annotated[str, StringConstraints(max_length=8192)]], Field(max_length=500)] = {}
    secrets: Annotated[dict[VarName, Annotated[str, StringConstraints(max_length=8192)]], Field(max_length=500)] = {}
    agent_queue: Name = "default"
    image: Annotated[str, StringConstraints(max_length=500)] | None = None
    resources: Resources = {}
    max_concurrent_runs: Limit | None = None
    protected: bool = False
    """Only the project's owner, its maintainers and admins may use it."""
    kind: EnvironmentKind = "development"
    branch: Ref | None = None


class EnvironmentUpdate(Patch):
    NULLABLE = frozenset({"image", "max_concurrent_runs", "branch"})

    variables: (
        Annotated[dict[VarName, Annotated[str, StringConstraints(max_length=8192)]], Field(max_length=500)] | None
    ) = None
    secrets: (
        Annotated[dict[VarName, Annotated[str, StringConstraints(max_length=8192)]], Field(max_length=500)] | None
    ) = None
    """Secrets given here are merged; a key with an empty value is removed."""
    agent_queue: Name | None = None
    image: Annotated[str, StringConstraints(max_length=500)] | None = None
    resources: Resources | None = None
    max_concurrent_runs: Limit | None = None
    protected: bool | None = None
    kind: EnvironmentKind | None = None
    branch: Ref | None = None


class MemberOut(BaseModel):
    project: str
    user: str
    role: ProjectRole
    """maintainer: every environment; developer: the environments that are not protected."""
    created_at: datetime


class MemberSet(Strict):
    role: ProjectRole = ProjectRole.developer


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
