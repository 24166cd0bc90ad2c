"""What a newcomer meets in the first hour: `yard up`, the TUI without a terminal, `yard login`,
Ctrl-C. Real `yard` subprocesses against a real embedded stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
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


def test_shell_completion(tmp_path: Path) -> None:
    # Typed in a shell, as a user does: the shell is detected from the parent process (the
    # "; exit $?" keeps bash from replacing itself with yard, which would leave no shell to find).
    env = {**os.environ, "HOME": str(tmp_path)}
    script = subprocess.run(
        ["bash", "-c", f"{YARD} --show-completion; exit $?"], capture_output=True, text=True, env=env
    )
    assert script.returncode == 0 and "_YARD_COMPLETE=complete_bash" in script.stdout, script
    words = yard(env={"_YARD_COMPLETE": "complete_bash", "COMP_WORDS": "yard runs l", "COMP_CWORD": "2"})
    assert words.returncode == 0 and words.stdout.split() == ["ls", "logs"], words
    options = yard(env={"_YARD_COMPLETE": "complete_bash", "COMP_WORDS": "yard run --de", "COMP_CWORD": "2"})
    assert options.stdout.split() == ["--detach"], options
    installed = subprocess.run(
        ["bash", "-c", f"{YARD} --install-completion; exit $?"], capture_output=True, text=True, env=env
    )
    assert installed.returncode == 0, installed.stderr
    assert "_YARD_COMPLETE" in (tmp_path / ".bash_completions" / "yard.sh").read_text()
    assert ".bash_completions/yard.sh" in (tmp_path / ".bashrc").read_text()


def test_artifacts_that_cannot_be_saved_are_one_sentence(up: Path, tmp_path: Path) -> None:
    assert yard("projects", "add", "demo").returncode == 0
    made = yard("run", "-p", "demo", "--artifact", "out.txt", "--", "sh", "-c", "echo data > out.txt")
    assert made.returncode == 0, made.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for target in (a_file, Path("/proc/nope")):
        result = yard("runs", "artifacts", "1", "--download", str(target))
        assert_one_sentence_error(result, "Cannot save out.txt under")
    saved = yard("runs", "artifacts", "1", "--download", str(tmp_path / "deep" / "er" / "still" / "deeper" / "x"))
    assert saved.returncode == 0, saved.stderr
    # Piped: the table keeps its full width, so the saved path is not cut at 80 columns.
    assert str(tmp_path / "deep" / "er" / "still" / "deeper" / "x" / "out.txt") in saved.stdout


def test_doctor_with_a_file_as_data_dir_explains_it_in_full(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = yard("doctor", "--data-dir", str(a_file))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    # The whole sentence: when piped, tables are no longer cut to 80 columns.
    assert (
        f"The SQLite database {a_file}/devyard.db does not exist and cannot be created: {a_file} is not a folder."
        in (result.stdout)
    )


def test_connection_problems_are_said_in_words(up: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {"DEVYARD_URL": f"http://127.0.0.1:{port}", "DEVYARD_TOKEN": "dy_x"}
    for args in (["status"], ["run", "-p", "demo", "--", "true"], ["dev", "exec", "-p", "demo", "--", "true"]):
        result = yard(*args, env=env)
        assert_one_sentence_error(result, "the connection was refused", "is it running")
        assert "Error" not in result.stderr, result.stderr
    odd = yard("status", env={"DEVYARD_URL": "ftp://example.com", "DEVYARD_TOKEN": "dy_x"})
    assert_one_sentence_error(odd, "is not an http:// or https:// address")
    assert "UnsupportedProtocol" not in odd.stderr


def test_a_refused_token_from_the_environment_names_devyard_token(up: Path) -> None:
    import json

    url = json.loads(yard("status", "--json").stdout)["url"]
    env = {"DEVYARD_URL": url, "DEVYARD_TOKEN": "dy_not-a-real-token"}
    for args in (["status"], ["run", "-p", "demo", "--", "true"]):
        result = yard(*args, env=env)
        assert_one_sentence_error(result, "check DEVYARD_TOKEN")
        assert "token of your profile" not in result.stderr


def test_a_user_change_reads_as_a_sentence(up: Path) -> None:
    assert yard("users", "add", "alice", "--role", "developer").returncode == 0
    disabled = yard("users", "disable", "alice")
    assert disabled.returncode == 0
    assert (
        " ".join(disabled.stdout.split()) == "User alice is now a developer and disabled: their tokens no longer work."
    )
    assert "True" not in disabled.stdout
    enabled = yard("users", "enable", "alice")
    assert " ".join(enabled.stdout.split()) == "User alice is now a developer and enabled."


def test_dev_commands_for_a_missing_project_suggest_creating_it(up: Path) -> None:
    # The fast path (`yard dev exec`) and the full CLI (`yard -p local dev ...`) say the same.
    for args in (
        ["dev", "exec", "-p", "nope", "--", "true"],
        ["-p", "local", "dev", "exec", "-p", "nope", "--", "true"],
    ):
        assert_one_sentence_error(yard(*args), "Project nope does not exist", "yard projects add nope")
    status = yard("dev", "status", "-p", "nope")
    assert status.returncode == 3
    assert_one_sentence_error(status, "yard projects add nope")


def test_run_listing_filters_are_checked(up: Path) -> None:
    assert_one_sentence_error(yard("runs", "ls", "--project", "nope"), "Project nope does not exist")
    assert_one_sentence_error(yard("runs", "ls", "--trigger", "bogus"), "Unknown trigger 'bogus'", "schedule")
    assert yard("projects", "add", "demo").returncode == 0
    assert yard("runs", "ls", "--project", "demo", "--trigger", "schedule").returncode == 0


def test_a_run_cannot_leave_its_code_folder(up: Path) -> None:
    import json

    import httpx

    assert yard("projects", "add", "demo").returncode == 0
    for cwd in ("../../..", "/etc", "sub/../../x"):
        # The fast path of `yard run` and the full CLI (`yard -p local run`) both reach the API's check.
        for prefix in ([], ["-p", "local"]):
            result = yard(*prefix, "run", "-p", "demo", "--cwd", cwd, "--", "pwd")
            assert_one_sentence_error(result, f"the working directory '{cwd}' is outside the run's code folder")
    status = json.loads(yard("status", "--json").stdout)
    token = _local_token()
    answer = httpx.post(
        f"{status['url']}/api/v1/runs",
        json={"project": "demo", "command": ["pwd"], "cwd": "/etc"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"
    assert json.loads(yard("runs", "ls", "--json").stdout) == []


def test_only_the_stacks_admin_runs_in_a_local_tree(up: Path, tmp_path: Path) -> None:
    """`yard watch` without a develop server runs in the caller's own folder: the one absolute
    working directory a run may have, only for the embedded stack's admin."""
    import json

    import httpx

    assert yard("projects", "add", "demo").returncode == 0
    tree = tmp_path / "tree"
    tree.mkdir()
    url = json.loads(yard("status", "--json").stdout)["url"]
    admin = {"Authorization": f"Bearer {_local_token()}"}
    body = {"project": "demo", "command": ["sh", "-c", "pwd > here.txt"], "local_tree": str(tree)}
    created = httpx.post(f"{url}/api/v1/runs", json=body, headers=admin)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    followed = yard("runs", "logs", str(run_id), "-f")
    assert followed.returncode == 0, followed.stderr
    assert (tree / "here.txt").read_text().strip() == str(tree)

    both = httpx.post(f"{url}/api/v1/runs", json={**body, "cwd": "sub"}, headers=admin)
    assert both.status_code == 409 and "no --cwd" in both.json()["error"]["message"]
    relative = httpx.post(f"{url}/api/v1/runs", json={**body, "local_tree": "tree"}, headers=admin)
    assert relative.status_code == 422

    added = yard("users", "add", "bob", "--role", "developer")
    assert added.returncode == 0, added.stderr
    bob_token = next(word for word in added.stdout.split() if word.startswith("dy_"))
    assert yard("projects", "members", "add", "demo", "bob").returncode == 0
    refused = httpx.post(f"{url}/api/v1/runs", json=body, headers={"Authorization": f"Bearer {bob_token}"})
    assert refused.status_code == 403, refused.text


def _local_token() -> str:
    import tomllib

    return str(tomllib.loads(config_file().read_text())["profiles"]["local"]["token"])


def test_dates_carry_the_year_and_the_zone(up: Path) -> None:
    import re

    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d")
    assert yard("tokens", "create", "--name", "ci", "--expires-in-days", "30").returncode == 0
    listing = yard("tokens", "ls")
    row = next(line for line in listing.stdout.splitlines() if " ci " in f" {line} ")
    assert stamp.search(row), row  # EXPIRES
    assert yard("projects", "add", "demo").returncode == 0
    added = yard(
        "schedule", "add", "nightly", "-p", "demo", "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--", "true"
    )
    assert added.returncode == 0, added.stderr
    assert stamp.search(added.stdout), added.stdout
    assert stamp.search(yard("schedule", "ls").stdout)


def test_placeholder_urls_are_refused_by_deploy_render(tmp_path: Path) -> None:
    base = ["deploy", "render", "--target", "kubernetes", "--out", str(tmp_path / "out")]
    real_db, real_s3 = "postgresql://devyard:pw@db.internal:5432/devyard", "s3://devyard-logs/prod"
    placeholder_db = yard(*base, "--database-url", "postgresql://...", "--object-store-url", real_s3)
    assert_one_sentence_error(placeholder_db, "--database-url names no host and database")
    placeholder_s3 = yard(*base, "--database-url", real_db, "--object-store-url", "s3://...")
    assert_one_sentence_error(placeholder_s3, "names no valid bucket")
    assert not (tmp_path / "out").exists()
    rendered = yard(*base, "--database-url", real_db, "--object-store-url", real_s3)
    assert rendered.returncode == 0, rendered.stderr


def test_a_project_with_runs_can_be_deleted_with_them(up: Path) -> None:
    import json

    assert yard("projects", "add", "shop").returncode == 0
    done = yard("run", "-p", "shop", "--artifact", "out.txt", "--", "sh", "-c", "echo hello; echo x > out.txt")
    assert done.returncode == 0, done.stderr
    objects = up / "objects"
    assert any(objects.rglob("*")), "the run's log and artifact are in the store"
    assert yard("schedule", "add", "nightly", "-p", "shop", "--cron", "0 3 * * *", "--", "true").returncode == 0
    plain = yard("projects", "rm", "shop", "-y")
    assert_one_sentence_error(plain, "Project shop still has runs", "yard projects rm shop --with-runs")
    going = json.loads(yard("run", "-p", "shop", "--detach", "--json", "--", "sleep", "30").stdout)
    busy = yard("projects", "rm", "shop", "-y", "--with-runs")
    assert_one_sentence_error(busy, f"has runs that are not finished ({going['id']})", "yard runs cancel")
    assert yard("runs", "cancel", str(going["id"])).returncode == 0
    deadline = time.monotonic() + 30
    while json.loads(yard("runs", "show", str(going["id"]), "--json").stdout)["state"] != "cancelled":
        assert time.monotonic() < deadline, "the run was not cancelled"
        time.sleep(0.2)
    deleted = yard("projects", "rm", "shop", "-y", "--with-runs")
    assert deleted.returncode == 0, deleted.stderr
    assert "Project shop deleted with its runs and schedules." in deleted.stdout
    assert json.loads(yard("projects", "ls", "--json").stdout) == []
    assert json.loads(yard("runs", "ls", "--json").stdout) == []
    assert json.loads(yard("schedule", "ls", "--json").stdout) == []
    assert not [p for p in objects.rglob("*") if p.is_file() and "runs" in p.parts], "logs and artifacts are gone"
    # The name is free again.
    assert yard("projects", "add", "shop").returncode == 0


def test_dev_shell_without_a_terminal_is_one_sentence(up: Path) -> None:
    result = subprocess.run(
        [YARD, "dev", "shell", "-p", "demo"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert_one_sentence_error(result, "needs a terminal", "yard dev exec")
