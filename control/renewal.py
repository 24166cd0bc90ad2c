"""Renewing a single sign-on profile's access token with its refresh token, for every client
(the full CLI and TUI through :mod:`control.client`, the CLI's fast paths directly).

Standard library only (the fast paths import it). Several processes share one profile file, and a
refresh token works once, so a renewal holds an exclusive lock on ``config.toml.lock``, and first
looks whether another process renewed the profile meanwhile: then it takes that token instead
of spending the (already replaced) refresh token.
"""

from __future__ import annotations

import json
import os
import time

from control import profiles

RENEW_BEFORE_S = 30.0  # renew this long before expiry, so a request does not meet the edge


class SessionEnded(Exception):
    """The profile's sign-in cannot be renewed; the message is one sentence for the user."""


def due(profile: profiles.Profile, now: float | None = None) -> bool:
    """Whether the profile's access token expires within :data:`RENEW_BEFORE_S`."""
    if not profile.refresh_token or profile.expires_at is None:
        return False
    return (time.time() if now is None else now) >= profile.expires_at - RENEW_BEFORE_S


def renew(profile: profiles.Profile) -> profiles.Profile:
    """The profile with a live access token, saved to the profile file. Raises
    :class:`SessionEnded` when the API refuses the refresh or cannot be reached."""
    if not profile.refresh_token:
        raise SessionEnded(f"The token of profile '{profile.name}' cannot be renewed; run `yard login` again.")
    path = profiles.config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import fcntl

    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        saved = profiles.find(profile.name, path)
        if saved is not None and saved.url == profile.url and saved.token != profile.token and not due(saved):
            return saved  # another process renewed it
        source = saved if saved is not None and saved.url == profile.url and saved.refresh_token else profile
        renewed = _refresh(source)
        profiles.save_profile(renewed, path=path)
        return renewed
    finally:
        os.close(fd)  # releases the lock


def _refresh(profile: profiles.Profile) -> profiles.Profile:
    from control.transport import Connection, Unreachable, error_of

    body = json.dumps({"grant_type": "refresh_token", "refresh_token": profile.refresh_token}).encode()
    connection = Connection(profile.url, None, trust=profile.trust)
    try:
        status, data = connection.call("POST", "/api/v1/auth/token", body, content_type="application/json")
    except Unreachable as exc:
        raise SessionEnded(f"Cannot renew your sign-in: {exc}") from None
    finally:
        connection.close()
    if status != 200:
        message = error_of(status, data)[1].rstrip(".")
        raise SessionEnded(
            f"Your sign-in to {profile.url} has ended ({message}); run `yard login {profile.url} --sso` again."
        )
    grant = json.loads(data)
    return profiles.Profile(
        profile.name,
        profile.url,
        grant["access_token"],
        profile.trust,
        refresh_token=grant["refresh_token"],
        expires_at=time.time() + grant["expires_in"],
    )
