"""How a run's command or a develop server's command finds its tools (a virtual environment's
``dbt``, ``pytest``): an environment variable ``VIRTUAL_ENV`` does what ``source bin/activate``
does. Imports nothing but the standard library: the run worker and the develop server use it.
"""

from __future__ import annotations

import os
from pathlib import Path

VENV = "VIRTUAL_ENV"


def with_tools(env: dict[str, str], base: Path) -> dict[str, str]:
    """``env`` with its virtual environment activated: ``VIRTUAL_ENV`` made absolute (a relative
    one is inside ``base``, the code's folder) and its ``bin`` first on ``PATH``. Without
    ``VIRTUAL_ENV``, ``env`` unchanged."""
    venv = env.get(VENV)
    if not venv:
        return env
    folder = Path(venv) if os.path.isabs(venv) else base / venv
    tools = os.fspath(folder / "bin")
    rest = [part for part in env.get("PATH", os.defpath).split(os.pathsep) if part and part != tools]
    activated = {name: value for name, value in env.items() if name != "PYTHONHOME"}  # as activate unsets it
    activated[VENV] = os.fspath(folder)
    activated["PATH"] = os.pathsep.join([tools, *rest])
    return activated
