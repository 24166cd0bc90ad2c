"""The fast path from the `yard` script into the TUI: which argument lists it takes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.tui.with_terminal import run_with_terminal
from tui.launch import parse


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], (None, False)),
        (["tui"], (None, False)),
        (["tui", "--read-only"], (None, True)),
        (["--profile", "prod"], ("prod", False)),
        (["-p", "prod", "tui", "--read-only"], ("prod", True)),
        (["--profile=prod", "tui"], ("prod", False)),
        (["runs", "ls"], None),
        (["tui", "--help"], None),
        (["--profile"], None),
        (["-p", "--help"], None),
        (["--help"], None),
    ],
)
def test_only_tui_invocations_take_the_fast_path(args: list[str], expected: object) -> None:
    assert parse(args) == expected


def test_a_missing_profile_is_one_sentence() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")}
    code = "import sys; from tui.launch import main; sys.exit(main(['--profile', 'ghost']))"
    returncode, stderr = run_with_terminal([sys.executable, "-c", code], env=env)
    assert returncode == 1
    assert stderr.startswith("error:") and "profile" in stderr and "Traceback" not in stderr
    probe = "import sys; from tui.launch import parse; parse([]); print('typer' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
