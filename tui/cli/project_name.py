"""Which project a command means when none is given. Stdlib only: the fast paths import it."""

from __future__ import annotations

import os
from pathlib import Path


def default_project(start: Path | None = None) -> str:
    """DEVYARD_PROJECT, else the name of the git repository around ``start`` (the current
    directory), else that directory's name; lowercased like project names."""
    if os.environ.get("DEVYARD_PROJECT"):
        return os.environ["DEVYARD_PROJECT"]
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder.name.lower()
    return here.name.lower()
