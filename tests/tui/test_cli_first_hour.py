"""What a newcomer meets in the first hour: `yard up`, the TUI without a terminal, `yard login`,
Ctrl-C. Real `yard` subprocesses against a real embedded stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_cli import YARD, assert_one_sentence_error, yard


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Path]:
    """`yard up --detach` on a free port; `yard down` afterwards."""
    data_dir = tmp_path / "data"
    result = yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0")
    assert result.returncode == 0, result.stderr
    try:
        yield data_dir
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0


def config_file() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"


@pytest.mark.parametrize("detach", [False, True])
def test_a_failed_up_leaves_the_working_profile_alone(up: Path, tmp_path: Path, detach: bool) -> None:
    before = config_file().read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        failed = yard("up", "--data-dir", str(tmp_path / "other"), "--port", port, *(["--detach"] if detach else []))
    assert_one_sentence_error(failed, f"Port {port} on 127.0.0.1 is already in use")
    assert config_file().read_text() == before
    assert yard("status").returncode == 0


def test_the_tui_without_a_terminal_is_one_sentence(up: Path) -> None:
    for args in ([], ["tui"], ["tui", "--read-only"], ["--profile", "local"]):
        result = subprocess.run([YARD, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (args, result)
        assert result.stdout == "" and "\x1b" not in result.stderr
        assert_one_sentence_error(result, "needs a terminal")


def test_ctrl_c_on_a_foreground_up_stops_it_cleanly(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches the whole process group: `yard up` and its API worker.
    process = subprocess.Popen(
        [YARD, "up", "--data-dir", str(tmp_path / "fg"), "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "devyard is up at http://127.0.0.1:" in first, first
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, err
    assert "devyard stopped." in out
    assert "alembic" not in err and "cannot reach" not in err and "Traceback" not in err, err


def test_login_says_which_profile_is_the_default(up: Path) -> None:
    token = yard("tokens", "create", "--name", "other", "--json")
    assert token.returncode == 0, token.stderr
    import json

    secret = json.loads(token.stdout)["token"]
    url = yard("status", "--json")
    base = json.loads(url.stdout)["url"]
    result = yard("login", base, "--token", secret, "--profile", "work")
    assert result.returncode == 0, result.stderr
    assert "'work' is now the default profile (it was 'local'" in " ".join(result.stdout.split())
    again = yard("login", base, "--token", secret, "--profile", "work")
    assert "'work' is the default profile." in again.stdout


def test_login_without_a_token_or_a_terminal_is_one_sentence(up: Path) -> None:
    result = subprocess.run(
        [YARD, "login", "http://127.0.0.1:9"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    assert_one_sentence_error(result, "No token given", "--token")
    assert "Password" not in result.stderr and "Aborted" not in result.stderr
