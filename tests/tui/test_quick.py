"""The standard-library fast paths of `yard run` and `yard dev exec` behave like the full CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.tui.test_cli import YARD, assert_one_sentence_error, embedded, yard
from tui.cli.quick import parse
from tui.cli.quick_run import FLAGS, OPTIONS

__all__ = ["embedded"]


def test_parse_takes_only_the_plain_form() -> None:
    assert parse(["-p", "shop", "--timeout=5", "--", "make", "-j"], OPTIONS, FLAGS) == (
        {"project": "shop", "timeout": "5"},
        ["make", "-j"],
    )
    assert parse(["--in-devserver", "--", "true"], OPTIONS, FLAGS) == ({"devserver": "--in-devserver"}, ["true"])
    # Anything else goes to the full CLI: unknown options, --help, no `--`, a dangling value.
    for args in (["--detach", "--", "x"], ["--help"], ["-p", "shop", "make"], ["-p"]):
        assert parse(args, OPTIONS, FLAGS) is None


def test_fast_and_full_paths_agree(embedded: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    script = "printf 'a\\nb'; echo err >&2; exit 4"
    fast = yard("run", "-p", "demo", "--", "sh", "-c", script)
    full = yard("run", "-p", "demo", "--retries", "0", "--", "sh", "-c", script)  # an option only the full CLI takes
    assert (fast.returncode, fast.stdout) == (full.returncode, full.stdout) == (4, "a\nb")
    assert "err" in fast.stderr and "Run " in fast.stderr and "failed: exit code 4" in fast.stderr
    assert_one_sentence_error(yard("run", "-p", "ghost", "--", "true"), "Project ghost does not exist")
    assert_one_sentence_error(yard("dev", "exec", "-p", "demo", "--", "true"), "does not exist")


def test_without_a_profile_the_full_cli_explains(tmp_path: Path) -> None:
    result = subprocess.run(
        [YARD, "run", "-p", "demo", "--", "true"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )
    assert_one_sentence_error(result, "No devyard profile is configured")
