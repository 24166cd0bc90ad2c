"""The standard-library fast paths of `yard run` and `yard dev exec` behave like the full CLI."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from control import transport
from tests.tui.test_cli import YARD, assert_one_sentence_error, embedded, free_port, yard
from tui.cli import quick_exec, quick_run, quick_sync
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


FULL_CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'yard'; from tui.cli.main import main; main()"]


def full(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The full Typer CLI on ``args``, never a fast path (what `yard` falls back to)."""
    return subprocess.run(
        [*FULL_CLI, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def seen(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    """What the user sees, with what differs between two runs of the same thing (run ids) named."""
    return result.returncode, result.stdout, re.sub(r"\bRun \d+\b", "Run <id>", result.stderr)


def assert_same(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    fast, slow = seen(yard(*args, env=env)), seen(full(*args, env=env))
    assert fast == slow, f"yard {' '.join(args)}: fast path {fast!r}, full CLI {slow!r}"
    assert "Traceback" not in fast[2]
    return fast


def test_the_fast_paths_print_what_the_full_cli_prints(embedded: Path, tmp_path: Path) -> None:
    """The contract of tui/cli/quick*.py: for the same input, the same stdout, stderr and exit
    code as the full CLI, in success and in every error case."""
    assert yard("projects", "add", "demo").returncode == 0
    # yard run: the log byte for byte (one channel in order: the command's stderr where it was
    # written), the command's exit code, the outcome line.
    assert assert_same(["run", "-p", "demo", "--", "sh", "-c", "printf 'a\\nb'; echo err >&2"]) == (0, "a\nberr\n", "")
    code, out, err = assert_same(["run", "-p", "demo", "--", "sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (code, out, err) == (4, "out\nerr\n", "Run <id> failed: exit code 4.\n")
    assert assert_same(["run", "-p", "demo", "--timeout", "1", "--", "sleep", "30"])[0] == 124
    assert assert_same(["run", "-p", "demo", "--", "no-such-command-here"])[0] == 127
    # Errors before anything exists: an unknown project, an empty command, a bad option value.
    assert "Project ghost does not exist" in assert_same(["run", "-p", "ghost", "--", "true"])[2]
    assert assert_same(["run", "-p", "demo", "--", " "])[0] != 0
    assert assert_same(["run", "-p", "demo", "--timeout", "0", "--", "true"])[0] != 0
    # yard dev exec: no develop server yet, then a running one.
    assert "does not exist" in assert_same(["dev", "exec", "-p", "demo", "--", "true"])[2]
    assert yard("dev", "start", "-p", "demo").returncode == 0
    script = "echo out; echo err >&2; exit 3"
    assert assert_same(["dev", "exec", "-p", "demo", "--", "sh", "-c", script]) == (3, "out\n", "err\n")
    assert assert_same(["dev", "exec", "-p", "demo", "--", "true"]) == (0, "", "")
    assert assert_same(["dev", "exec", "-p", "demo", "--cwd", "../..", "--", "true"])[0] != 0
    # A token the API refuses, and an API that is not there.
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
    url = tomllib.loads(config.read_text())["profiles"]["local"]["url"]
    refused = {"DEVYARD_URL": url, "DEVYARD_TOKEN": "dy_not_a_token"}
    for args in (["run", "-p", "demo", "--", "true"], ["dev", "exec", "-p", "demo", "--", "true"]):
        assert "check DEVYARD_TOKEN" in assert_same(args, refused)[2]
    gone = {"DEVYARD_URL": f"http://127.0.0.1:{free_port()}", "DEVYARD_TOKEN": "dy_anything"}
    for args in (["run", "-p", "demo", "--", "true"], ["dev", "exec", "-p", "demo", "--", "true"]):
        assert "Cannot reach the devyard API" in assert_same(args, gone)[2]


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
        monkeypatch.setattr(transport, "DEFAULT_TIMEOUT_S", 0.3)
        yield


def test_a_hung_api_is_one_sentence_not_a_hang(silent_api: None, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    # Nothing started yet: the full CLI takes over and says what is wrong, with its own timeout.
    assert quick_exec.main(["--", "true"]) is None
    assert quick_sync.main([]) is None
    # The run may exist (the request was sent): no second request, the full CLI's sentence.
    assert quick_run.main(["--", "true"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: Cannot reach the devyard API at http://127.0.0.1:") and "did not answer in time" in err
    )
    assert time.monotonic() - started < 5
