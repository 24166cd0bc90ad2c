"""The standard-library fast paths of `yard run` and `yard dev exec` behave like the full CLI."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_cli import YARD, assert_one_sentence_error, embedded, yard
from tui.cli import quick, quick_exec, quick_sync
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
    assert (fast.returncode, fast.stdout) == (full.returncode, full.stdout) == (4, "a\nberr\n"), (
        fast.stderr,
        full.stderr,
    )
    # The log is one channel in order: the command's stderr is printed where it was written.
    assert "Run " in fast.stderr and "failed: exit code 4" in fast.stderr
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


@pytest.fixture
def silent_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An "API" on loopback that accepts connections and never answers, as a hung server would."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        monkeypatch.setenv("DEVYARD_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("DEVYARD_TOKEN", "dy_anything")
        monkeypatch.setenv("DEVYARD_PROJECT", "shop")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(quick, "ANSWER_TIMEOUT_S", 0.3)
        yield


def test_a_hung_api_is_one_sentence_not_a_hang(silent_api: None, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert quick_exec.main(["--", "true"]) == 1
    assert "The devyard API did not answer within 0 s" in capsys.readouterr().err
    assert quick_sync.main([]) is None  # the full CLI then says what is wrong, with its own timeout
    assert time.monotonic() - started < 5
