"""Server-side settings: environment (``DEVYARD_*``) over ``devyard.toml`` in the data dir.

Precedence, highest first: explicit arguments, environment variables, ``<data-dir>/devyard.toml``,
defaults. The data dir itself can only come from an argument or ``DEVYARD_DATA_DIR`` because the
TOML file lives inside it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Substrate = Literal["local", "docker", "kubernetes"]

SETTINGS_FILE = "devyard.toml"


class SettingsProblem(Exception):
    """Settings could not be loaded; the message is one sentence for the user."""


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def default_data_dir() -> Path:
    """Where the embedded stack keeps its state unless told otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "devyard"


class Settings(BaseSettings):
    """Settings of the control plane and the processes it supervises."""

    # hide_input_in_errors: an invalid secret key must not end up in a message or a log.
    model_config = SettingsConfigDict(
        env_prefix="DEVYARD_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    """Folder holding the SQLite database, local objects, the shared volume and process state."""

    database_url: str = ""
    """SQLAlchemy URL of the metadata database; empty means SQLite in the data dir."""

    secret_keys: str = Field(default="", repr=False)
    """Comma-separated Fernet keys that encrypt environment secrets; the first encrypts, all decrypt.
    Empty means the key file ``<data-dir>/state/secret.key`` (created on first use)."""

    object_store_url: str = ""
    """``file:///path`` or ``s3://bucket/prefix``; empty means ``<data-dir>/objects``."""

    s3_endpoint: str | None = None
    """Endpoint override for S3-compatible stores (SeaweedFS, MinIO); ``AWS_ENDPOINT_URL`` also works."""

    s3_region: str | None = None
    """Region for S3; falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, then ``us-east-1``."""

    substrate: Substrate = "local"
    """Where develop servers and runs are launched."""

    local_multi_user: bool = False
    """Let users other than admins start develop servers and runs on the local substrate. It runs
    every command as the server's own OS user, so each of them can read the others' workspaces and
    the server's files: one person's tool. Use Docker or Kubernetes for a team."""

    docker_image: str = "devyard:latest"
    """Docker substrate: the image for runs and develop servers of environments that name none."""

    docker_python: str = "/opt/devyard/venv/bin/python"
    """Docker substrate: the Python inside the image that has devyard installed."""

    kubernetes_namespace: str = "devyard"
    """Kubernetes substrate: the namespace for Jobs, develop server Pods and their Services."""

    kubernetes_volume_claim: str = "devyard-volume"
    """Kubernetes substrate: the ReadWriteMany claim that is the shared volume (mounted at the data dir)."""

    kubernetes_service_account: str | None = None
    """Kubernetes substrate: service account for run and develop server pods (none: the namespace default)."""

    host: str = "127.0.0.1"
    """Address the control API binds to."""

    devserver_host: str = "127.0.0.1"
    """Local substrate: the address develop servers listen on and the API reaches them at. Keep
    loopback when the API runs on the agent's machine; an agent on another machine sets an address
    of its own that the API hosts can reach (each develop server still requires its secret)."""

    port: int = Field(default=8421, ge=0, le=65535)
    """Port the control API binds to."""

    tls_cert: Path | None = None
    """PEM certificate (chain) the API serves TLS with; read again when the file changes. Empty
    on a non-loopback ``host``: a self-signed one is made in ``<data-dir>/tls/``."""

    tls_key: Path | None = None
    """PEM private key of ``tls_cert``; read again when the file changes."""

    insecure_http: bool = False
    """Serve plain HTTP on a non-loopback ``host`` (behind a proxy that terminates TLS, or on a
    network you trust) instead of a self-signed certificate."""

    api_workers: int | None = Field(default=None, ge=1, le=64)
    """API processes of `yard up`, sharing its port; none means one per CPU, at most 2."""

    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Requests with a larger body are refused with 413."""

    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Time a client has to send a request's headers (from its first byte, or from connecting);
    past it the connection gets 408 and is closed, so trickled headers cannot hold it."""

    max_terminals_per_user: int = Field(default=16, ge=1, le=1000)
    """Interactive terminals (``yard dev shell``) one user may have open at once through each API
    process; one more is refused with 429 ``too_many_terminals``."""

    max_connections_per_client: int = Field(default=256, ge=0)
    """Open connections one client address may hold per API process; more are answered 429 and
    closed (0: no limit). Behind a proxy every client shares its address: raise it there."""

    max_artifact_bytes: int = Field(default=2 * 1024**3, gt=0)
    """Largest artifact a run may upload."""

    token_ttl_days: int | None = Field(default=None, gt=0)
    """Default lifetime of new API tokens; none means they never expire unless asked."""

    oidc_issuer: str = ""
    """Single sign-on: the OpenID Connect provider's issuer URL; empty turns single sign-on off."""

    oidc_client_id: str = ""
    """Single sign-on: devyard's client id at the provider."""

    oidc_client_secret: str = Field(default="", repr=False)
    """Single sign-on: devyard's client secret at the provider (empty for a public client).
    Set it in the environment or devyard.toml, never on a command line."""

    oidc_scopes: str = "openid email profile"
    """Single sign-on: the scopes asked for (``openid`` is required; add ``groups`` if the
    provider needs it to send group claims)."""

    oidc_match: Literal["email", "subject"] = "email"
    """Single sign-on: how a signed-in identity finds its devyard user: by ``email`` (the first
    sign-in links the provider's subject, later ones use it) or by ``subject`` only."""

    oidc_auto_create: bool = False
    """Single sign-on: create a devyard user for an identity that matches none."""

    oidc_default_role: Literal["admin", "developer", "viewer", "none"] = "developer"
    """Single sign-on: the role of an auto-created user, and of anyone in no mapped group when
    ``oidc_group_roles`` is set; ``none`` refuses them instead."""

    oidc_groups_claim: str = "groups"
    """Single sign-on: the ID token or userinfo claim that lists the person's groups."""

    oidc_group_roles: dict[str, Literal["admin", "developer", "viewer"]] = Field(default_factory=dict)
    """Single sign-on: group name to role (JSON in ``DEVYARD_OIDC_GROUP_ROLES``). When set, the
    provider manages roles: each sign-in sets the highest role of the person's mapped groups."""

    sso_access_token_ttl_s: int = Field(default=3600, gt=0, le=7 * 86400)
    """Lifetime of an access token made by single sign-on; clients renew it with the refresh token."""

    sso_refresh_token_ttl_days: float = Field(default=30.0, gt=0, le=3650)
    """A single sign-on session ends when it has not been renewed for this long."""

    sso_device_code_ttl_s: int = Field(default=600, ge=10, le=3600)
    """How long `yard login --sso` waits for the approval in the browser."""

    sso_poll_interval_s: float = Field(default=5.0, ge=0.05, le=60)
    """How often `yard login --sso` may ask whether the approval happened."""

    max_concurrent_runs: int | None = Field(default=None, gt=0)
    """Runs in starting/running state across the whole installation; more wait in the queue."""

    run_lost_after_s: float = Field(default=90.0, gt=0)
    """A running run whose worker and agent have been silent this long is marked lost. It is the
    network outage an agent's host may have without its runs being lost: a 30 s cut leaves the
    worker silent for up to ~50 s (its heartbeat period, a request timing out, the back-off)."""

    cancel_grace_s: float = Field(default=10.0, ge=0)
    """After SIGTERM, a cancelled or timed-out command gets this long before SIGKILL."""

    housekeeping_interval_s: float = Field(default=5.0, gt=0)
    """How often the API checks for lost runs."""

    agent: bool = True
    """Whether `yard up` runs a local agent in-process."""

    scheduler: bool = True
    """Whether `yard up` runs the scheduler in-process."""

    misfire_grace_s: float = Field(default=60.0, gt=0)
    """A tick later than this counts as missed (catch-up policy `none` drops it)."""

    scheduler_lease_s: float = Field(default=10.0, gt=0)
    """SQLite: how long the scheduler lease lasts without renewal before another scheduler takes over."""

    cleanup_interval_s: float = Field(default=30.0, gt=0)
    """How often the scheduler runs the background cleanup."""

    compact_after_s: float = Field(default=60.0, ge=0)
    """Finished runs' log chunks are compacted into one object after this long."""

    log_retention_days: float | None = Field(default=None, gt=0)
    """Delete logs of runs that finished longer ago than this; none keeps them."""

    artifact_retention_days: float | None = Field(default=None, gt=0)
    """Delete artifacts of runs that finished longer ago than this; none keeps them."""

    log_retention_runs: int | None = Field(default=None, gt=0)
    """Keep logs and artifacts of only the newest N finished runs per project; none keeps all."""

    public_url: str = ""
    """The address people and git providers reach the API at (``https://yard.example.com``); used in
    notification links, commit statuses and `yard hooks show`. Empty: ``http://<host>:<port>``
    (single sign-on's verification link and redirect URI: the URL each request came to)."""

    smtp_host: str = ""
    """SMTP server that sends e-mail notifications; empty: e-mail notifications cannot be added."""

    smtp_port: int = Field(default=587, ge=1, le=65535)
    """Port of the SMTP server (587: submission with STARTTLS)."""

    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` upgrades the connection (refusing a server that cannot), ``tls`` connects with
    TLS (port 465), ``none`` sends in the clear (only for a relay on the same host)."""

    smtp_username: str = ""
    """Log in to the SMTP server as this user (empty: no login)."""

    smtp_password: str = Field(default="", repr=False)
    """Password of ``smtp_username``."""

    smtp_from: str = "devyard@localhost"
    """Sender address of e-mail notifications."""

    smtp_ca_file: Path | None = None
    """Certificates to trust for the SMTP server's TLS (default: the system's trust store)."""

    notify_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long one delivery attempt (a Slack or webhook POST, an e-mail, a commit status) may take."""

    notify_retry_delays_s: list[float] = Field(default=[10.0, 60.0, 300.0, 1800.0, 7200.0], max_length=20)
    """Pauses before the 2nd, 3rd, ... attempt of a delivery that failed; after the last it is failed."""

    hook_max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    """Inbound webhook bodies larger than this are refused with 413."""

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("devserver_host", mode="after")
    @classmethod
    def _an_address(cls, value: str) -> str:
        import ipaddress
        import re

        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", value):
            raise ValueError(f"'{value[:100]}' is not an IP address or host name (no scheme, port or path)")
        return value

    @field_validator("secret_keys", mode="after")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        if value:
            from control.secretbox import SecretKeyProblem, parse_keys  # it imports this module

            try:
                parse_keys(value)
            except SecretKeyProblem as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("oidc_issuer", "public_url", mode="after")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if bool(self.oidc_issuer) != bool(self.oidc_client_id):
            raise ValueError("single sign-on needs both oidc_issuer and oidc_client_id (or neither)")
        if self.oidc_issuer and "openid" not in self.oidc_scopes.split():
            raise ValueError("oidc_scopes must include 'openid'")
        if self.oidc_issuer.startswith("http://") and not _loopback(self.oidc_issuer):
            # Codes, tokens and the client secret travel to the provider: plain HTTP only on this machine.
            raise ValueError("oidc_issuer must be https:// (plain http:// only for a provider on loopback)")
        return self

    @property
    def sso_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'devyard.db'}"

    @property
    def effective_api_workers(self) -> int:
        return self.api_workers or min(2, os.cpu_count() or 1)

    @property
    def effective_object_store_url(self) -> str:
        return self.object_store_url or (self.data_dir / "objects").as_uri()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(data_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings for a data dir, raising :class:`SettingsProblem` with a readable message."""
    resolved = Path(data_dir or os.environ.get("DEVYARD_DATA_DIR") or default_data_dir())
    resolved = resolved.expanduser().resolve()
    toml_path = resolved / SETTINGS_FILE
    if toml_path.exists() and not toml_path.is_file():
        raise SettingsProblem(f"{toml_path} is not a file; remove it or put TOML settings in a file of that name.")
    if toml_path.is_file():
        try:
            data = tomllib.loads(toml_path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise SettingsProblem(f"Cannot read {toml_path} ({exc.strerror}).") from exc
        except UnicodeDecodeError:
            raise SettingsProblem(f"{toml_path} is not UTF-8 text, so not TOML; fix or remove it.") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsProblem(f"{toml_path} is not valid TOML ({exc}); fix or remove it.") from exc
        unknown = sorted(set(data) - set(Settings.model_fields))
        if unknown:
            raise SettingsProblem(f"{toml_path} has an unknown setting '{unknown[0]}'; see docs/configuration.md.")

    bound: type[Settings] = Settings
    if toml_path.is_file():
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml_path})
        bound = type("FileSettings", (Settings,), {"model_config": config})
    try:
        return bound(data_dir=resolved, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        reason = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        raise SettingsProblem(
            f"Setting '{where}' is invalid: {reason} (check DEVYARD_* variables and {toml_path})."
        ) from exc
