"""A develop server's tools and environment as a user meets them (issue 18, items 24 and 26):
`yard envs add --venv` puts a real virtual environment's bin/ first on PATH for `yard dev exec`
and for runs in the workspace; an environment changed after the server started is reported
(`yard dev status`, the API's stale_environment) until `yard dev restart`. Against a real
embedded stack (`yard up --detach`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.tui.test_cli import assert_one_sentence_error, embedded, yard

__all__ = ["embedded"]

TOOL = "printf '#!/bin/sh\\necho tool from $VIRTUAL_ENV\\n' > .venv/bin/mytool && chmod +x .venv/bin/mytool"


def test_a_venv_setting_and_a_changed_environment(embedded: Path) -> None:
    assert yard("projects", "add", "venvshop").returncode == 0
    added = yard("envs", "add", "venvshop", "dev", "--venv", ".venv", "--var", "TARGET=dev")
    assert added.returncode == 0, added.stderr
    started = yard("dev", "start", "-p", "venvshop", "--env", "dev", "--json")
    assert started.returncode == 0, started.stderr
    server = json.loads(started.stdout)
    assert server["stale_environment"] is False
    workspace = (embedded / "volume" / server["workspace"]).resolve()

    made = yard("dev", "exec", "-p", "venvshop", "--", sys.executable, "-m", "venv", "--without-pip", ".venv")
    assert made.returncode == 0, made.stderr
    assert yard("dev", "exec", "-p", "venvshop", "--", "sh", "-c", TOOL).returncode == 0
    tool = yard("dev", "exec", "-p", "venvshop", "--", "mytool")  # found by name: the venv's bin is on PATH
    assert (tool.returncode, tool.stdout) == (0, f"tool from {workspace}/.venv\n"), tool.stderr
    prefix = yard("dev", "exec", "-p", "venvshop", "--", "python", "-c", "import sys; print(sys.prefix)")
    assert prefix.stdout.strip() == f"{workspace}/.venv", prefix.stderr  # the venv's own python

    run = yard("run", "-p", "venvshop", "--env", "dev", "--", "mytool")  # a run in the workspace: the same
    assert run.returncode == 0, run.stderr
    assert f"tool from {workspace}/.venv" in run.stdout

    changed = yard("envs", "set", "venvshop", "dev", "--var", "TARGET=prod")
    assert changed.returncode == 0, changed.stderr
    assert "keep the old values; `yard dev restart` updates yours" in " ".join(changed.stdout.split())
    status = yard("dev", "status", "-p", "venvshop")
    assert "Environment dev changed after this server started" in " ".join(status.stdout.split())
    assert json.loads(yard("dev", "status", "-p", "venvshop", "--json").stdout)["stale_environment"] is True
    old = yard("dev", "exec", "-p", "venvshop", "--", "sh", "-c", "echo $TARGET")
    assert old.stdout == "dev\n"  # what the server started with, said above

    restarted = yard("dev", "restart", "-p", "venvshop")
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted with environment dev's current values" in " ".join(restarted.stdout.split())
    new = yard("dev", "exec", "-p", "venvshop", "--", "sh", "-c", "echo $TARGET; command -v mytool")
    assert new.stdout == f"prod\n{workspace}/.venv/bin/mytool\n", new.stderr
    assert json.loads(yard("dev", "status", "-p", "venvshop", "--json").stdout)["stale_environment"] is False

    assert_one_sentence_error(yard("envs", "set", "venvshop", "dev"), "Nothing to change")
    assert_one_sentence_error(yard("envs", "set", "venvshop", "dev", "--venv", "../other"), "leaves the code's folder")
    assert_one_sentence_error(yard("dev", "restart", "-p", "nothing-here"), "You have no develop server")
