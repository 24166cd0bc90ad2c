"""Client profiles: ``$XDG_CONFIG_HOME/devyard/config.toml``, one table per profile, mode 0600.

```toml
default = "local"

[profiles.local]
url = "https://devyard.example.com:8421"
token = "dy_..."
fingerprint = "SHA256:AB:CD:..."   # or ca_file = "/path/ca.pem"; neither: the system trust store
```
``insecure_http = true`` lets the token travel over plain HTTP to another machine. A profile made
by `yard login --sso` also holds its session's ``refresh_token`` and the access token's
``expires_at`` (Unix seconds); :mod:`control.renewal` renews them.
``DEVYARD_URL`` and ``DEVYARD_TOKEN`` override the file (handy for CI and agents), with
``DEVYARD_FINGERPRINT``, ``DEVYARD_CA_FILE`` and ``DEVYARD_INSECURE_HTTP`` (see control.trust).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from control.trust import Trust, TrustProblem, parse_fingerprint

LOCAL = "local"


class ProfileProblem(Exception):
    """The profile cannot be used; the message is one sentence for the user."""


class Profile:
    """A named API URL and token, and which certificate the API may present. A plain class, not a
    dataclass: the CLI's fast paths read profiles too, and ``dataclasses`` (through ``inspect``)
    would be most of their imports."""

    __slots__ = ("expires_at", "name", "refresh_token", "token", "trust", "url")

    def __init__(
        self,
        name: str,
        url: str,
        token: str,
        trust: Trust | None = None,
        *,
        refresh_token: str | None = None,
        expires_at: float | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.token = token
        self.trust = trust or Trust()
        self.refresh_token = refresh_token  # a single sign-on session's; None for an API token
        self.expires_at = expires_at  # when the access token expires (Unix seconds), if known

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.url, self.token, self.trust, self.refresh_token, self.expires_at)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:  # never the token
        return f"Profile(name={self.name!r}, url={self.url!r})"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "devyard" / "config.toml"


def _read(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileProblem(
            f"{path} is not valid TOML ({exc}); fix or delete it, then run `yard login` again."
        ) from exc
    except OSError as exc:
        raise ProfileProblem(f"Cannot read {path} ({exc.strerror}).") from exc


def load_profiles(path: Path | None = None) -> tuple[str | None, dict[str, Profile]]:
    """The default profile name and every profile in the file."""
    path = path or config_path()
    data = _read(path)
    raw = data.get("profiles", {})
    if not isinstance(raw, dict):
        raise ProfileProblem(f"{path}: 'profiles' must be a table; fix it or run `yard login` again.")
    profiles: dict[str, Profile] = {}
    for name, entry in raw.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("url"), str)
            or not isinstance(entry.get("token"), str)
        ):
            raise ProfileProblem(f"{path}: profile '{name}' needs a url and a token; run `yard login` again.")
        refresh, expires = entry.get("refresh_token"), entry.get("expires_at")
        profiles[name] = Profile(
            name,
            entry["url"],
            entry["token"],
            _trust(path, name, entry),
            refresh_token=refresh if isinstance(refresh, str) else None,
            expires_at=float(expires) if isinstance(expires, int | float) else None,
        )
    default = data.get("default")
    return (default if isinstance(default, str) else None), profiles


def _trust(path: Path, name: str, entry: dict[str, object]) -> Trust:
    ca_file, fingerprint, insecure = entry.get("ca_file"), entry.get("fingerprint"), entry.get("insecure_http", False)
    pin_file = entry.get("certificate_file")
    if not all(isinstance(value, str | None) for value in (ca_file, fingerprint, pin_file)) or not isinstance(
        insecure, bool
    ):
        raise ProfileProblem(
            f"{path}: profile '{name}' has an invalid ca_file, fingerprint, certificate_file or insecure_http."
        )
    try:
        pin = parse_fingerprint(fingerprint) if isinstance(fingerprint, str) and fingerprint else None
    except TrustProblem as exc:
        raise ProfileProblem(f"{path}: profile '{name}': {exc}") from None
    return Trust(ca_file=ca_file, fingerprint=pin, pin_file=pin_file, insecure_http=insecure)  # type: ignore[arg-type]


def find(name: str, path: Path | None = None) -> Profile | None:
    """The profile called ``name`` in the file; None if there is none or the file is unusable."""
    try:
        return load_profiles(path)[1].get(name)
    except ProfileProblem:
        return None


def resolve(name: str | None = None, path: Path | None = None) -> Profile:
    """The profile to use: ``name``, else ``DEVYARD_PROFILE``, else the file's default, else ``local``."""
    env_url, env_token = os.environ.get("DEVYARD_URL"), os.environ.get("DEVYARD_TOKEN")
    if name is None and bool(env_url) != bool(env_token):
        raise ProfileProblem("Set both DEVYARD_URL and DEVYARD_TOKEN, or neither.")
    if name is None and env_url and env_token:
        try:
            return Profile("env", env_url, env_token, Trust.from_environment())
        except TrustProblem as exc:
            raise ProfileProblem(f"DEVYARD_FINGERPRINT: {exc}") from None
    default, profiles = load_profiles(path)
    chosen = name or os.environ.get("DEVYARD_PROFILE") or default or LOCAL
    if chosen not in profiles:
        if not profiles:
            raise ProfileProblem(
                "No devyard profile is configured; run `yard up` for a local stack or `yard login URL --token T`."
            )
        known = ", ".join(sorted(profiles))
        raise ProfileProblem(f"Unknown profile '{chosen}' (known: {known}); run `yard login` to add it.")
    return profiles[chosen]


def save_profile(profile: Profile, *, make_default: bool = False, path: Path | None = None) -> Path:
    """Add or replace a profile, writing the file with mode 0600 (it holds tokens)."""
    path = path or config_path()
    default, profiles = load_profiles(path)
    profiles[profile.name] = profile
    if make_default or default is None:
        default = profile.name
    lines = [f"default = {json.dumps(default)}", ""]
    for p in sorted(profiles.values(), key=lambda p: p.name):
        lines += [
            f"[profiles.{json.dumps(p.name)}]",
            f"url = {json.dumps(p.url)}",
            f"token = {json.dumps(p.token)}",
        ]
        if p.trust.fingerprint:
            lines.append(f"fingerprint = {json.dumps(p.trust.fingerprint)}")
        if p.trust.pin_file:  # the local profile: the certificate file of the stack on this machine
            lines.append(f"certificate_file = {json.dumps(p.trust.pin_file)}")
        if p.trust.ca_file:
            lines.append(f"ca_file = {json.dumps(p.trust.ca_file)}")
        if p.trust.insecure_http:
            lines.append("insecure_http = true")
        if p.refresh_token:
            lines.append(f"refresh_token = {json.dumps(p.refresh_token)}")
        if p.expires_at is not None:
            lines.append(f"expires_at = {p.expires_at!r}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
