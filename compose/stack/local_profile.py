"""The ``local`` client profile that `yard up` keeps pointing at its own server."""

from __future__ import annotations

import getpass
import re
from typing import Any

from control import profiles
from control.trust import Trust


def admin_name() -> str:
    """The operating-system user, shaped into a valid devyard user name."""
    try:
        raw = getpass.getuser()
    except (KeyError, OSError):
        raw = "admin"
    name = re.sub(r"[^a-z0-9._-]", "-", raw.lower()).strip("-._")[:64]
    return name or "admin"


def save_local_profile(engine: Any, url: str, trust: Trust | None = None) -> None:
    """Point the local profile at ``url`` (trusting its certificate as ``trust`` says) with a
    working admin token of this stack's database, keeping the current token when it still works
    there. Called by a server that holds its port."""
    from control.bootstrap import local_admin_token

    current = profiles.find(profiles.LOCAL)
    token = local_admin_token(engine, admin_name(), current.token if current else None)
    wanted = profiles.Profile(profiles.LOCAL, url, token, trust)
    if current != wanted:
        profiles.save_profile(wanted, make_default=current is None)
