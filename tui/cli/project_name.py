"""Which project a command means when none is given. Only ``os``: the fast paths import it."""

from __future__ import annotations

import os


def default_project(start: str | None = None) -> str:
    """DEVYARD_PROJECT, else the name of the git repository around ``start`` (the current
    directory), else that directory's name; lowercased like project names."""
    if os.environ.get("DEVYARD_PROJECT"):
        return os.environ["DEVYARD_PROJECT"]
    here = os.path.realpath(start or os.getcwd())
    folder = here
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return os.path.basename(folder).lower()
        parent = os.path.dirname(folder)
        if parent == folder:
            return os.path.basename(here).lower()
        folder = parent
