"""The environment of a `yard` process the TUI starts (a shell, a sync): the TUI's own API and
credentials, whatever profile file (if any) they came from."""

from __future__ import annotations

import os

from control.profiles import Profile


def yard_environment(profile: Profile, **extra: str) -> dict[str, str]:
    """A single sign-on profile is passed by name, so the child renews its access token from the
    profile file as the TUI does; any other by URL and token."""
    own = {"DEVYARD_PROFILE", "DEVYARD_URL", "DEVYARD_TOKEN", "DEVYARD_FINGERPRINT", "DEVYARD_CERTIFICATE_FILE"}
    own |= {"DEVYARD_CA_FILE", "DEVYARD_INSECURE_HTTP"}
    env = {k: v for k, v in os.environ.items() if k not in own}
    if profile.refresh_token:
        env["DEVYARD_PROFILE"] = profile.name
    else:
        env.update(DEVYARD_URL=profile.url, DEVYARD_TOKEN=profile.token, **profile.trust.environment())
    return {**env, **extra}
