"""`yard` as a user runs it: a real subprocess against a real embedded stack."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until

YARD = str(Path(sys.executable).parent / "yard")


def yard(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # No input: stdin is /dev/null, not the test runner's (`yard dev exec` forwards a piped stdin).
    stdin = subprocess.DEVNULL if input is None else None
    return subprocess.run(
        [YARD, *args],
        capture_output=True,
        text=True,
        input=input,
        stdin=stdin,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_sentence_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 or result.stderr.startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in " ".join(result.stderr.split()), result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Path]:
    """`yard up --detach` on a free port; `yard down` afterwards."""
    data_dir = tmp_path / "data"
    result = yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0")
    assert result.returncode == 0, result.stderr
    assert "devyard is up at http://127.0.0.1:" in result.stdout
    try:
        yield data_dir
    finally:
        down = yard("down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stderr


def test_up_status_and_down(embedded: Path) -> None:
    # The in-process agent registers just after the API answers (what `up --detach` waits for).
    def status() -> dict[str, Any]:
        shown = yard("status", "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))

    wait_until(lambda: status()["agents"], timeout=15, message="the agent to register")
    info = status()
    assert info["status"] == "ok"
    assert info["database"]["backend"] == "sqlite"
    assert info["object_store"]["status"] == "ok"
    assert [a["substrate"] for a in info["agents"]] == ["local"] and info["agents"][0]["last_heartbeat_at"]
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert "ok" in yard("status").stdout
    again = yard("up", "--detach", "--data-dir", str(embedded))
    assert_one_sentence_error(again, "already running")


def test_user_and_token_lifecycle(embedded: Path) -> None:
    created = json.loads(yard("users", "add", "alice", "--role", "developer", "--json").stdout)
    alice_token = created["token"]
    users = json.loads(yard("users", "ls", "--json").stdout)
    assert {u["name"] for u in users} >= {"alice"}
    alice = {"DEVYARD_URL": json.loads(yard("status", "--json").stdout)["url"], "DEVYARD_TOKEN": alice_token}
    assert json.loads(yard("status", "--json", env=alice).stdout)["user"]["name"] == "alice"
    made = json.loads(yard("tokens", "create", "--name", "laptop", "--json", env=alice).stdout)
    listed = json.loads(yard("tokens", "ls", "--json", env=alice).stdout)
    assert {t["name"] for t in listed} == {"initial", "laptop"}
    assert all("token" not in t for t in listed)
    assert yard("tokens", "revoke", str(made["id"]), env=alice).returncode == 0
    revoked = yard("status", env={**alice, "DEVYARD_TOKEN": made["token"]})
    assert_one_sentence_error(revoked, "revoked")
    denied = yard("users", "add", "mallory", "--role", "admin", env=alice)
    assert_one_sentence_error(denied, "Only admins")
    assert yard("projects", "add", "shop", env=alice).returncode == 0
    assert yard("envs", "add", "shop", "prod", "--var", "A=1", "--secret", "K=v", env=alice).returncode == 0
    envs = json.loads(yard("envs", "ls", "shop", "--json").stdout)
    assert envs[0]["secret_names"] == ["K"] and envs[0]["variables"] == {"A": "1"}
    assert_one_sentence_error(yard("envs", "add", "shop", "x", "--var", "novalue"), "is not KEY=VALUE")
    bob = {**alice, "DEVYARD_TOKEN": json.loads(yard("users", "add", "bob", "--json").stdout)["token"]}
    assert_one_sentence_error(
        yard("dev", "start", "-p", "shop", "-e", "prod", env=bob), "can only be used by", "yard projects members add"
    )
    assert yard("projects", "members", "add", "shop", "bob", env=alice).returncode == 0
    members = json.loads(yard("projects", "members", "ls", "shop", "--json").stdout)
    assert [(m["user"], m["role"]) for m in members] == [("bob", "developer")]
    assert yard("envs", "set", "shop", "prod", "--protected", env=alice).returncode == 0
    assert json.loads(yard("envs", "ls", "shop", "--json").stdout)[0]["protected"] is True
    run = yard("run", "-p", "shop", "-e", "prod", "--no-devserver", "--", "true", env=bob)
    assert_one_sentence_error(run, "its owner, maintainers and admins")
    assert_one_sentence_error(
        yard("projects", "members", "add", "shop", "bob", "--role", "boss"), "not developer or maintainer"
    )
    assert yard("projects", "members", "rm", "shop", "bob", env=alice).returncode == 0
    assert json.loads(yard("projects", "members", "ls", "shop", "--json").stdout) == []


def test_json_output_is_one_document(embedded: Path) -> None:
    for args in (
        ["status", "--json"],
        ["users", "ls", "--json"],
        ["tokens", "ls", "--json"],
        ["projects", "ls", "--json"],
        ["doctor", "--json"],
    ):
        result = yard(*args)
        assert result.returncode == 0, (args, result.stderr)
        json.loads(result.stdout)


def test_login_saves_a_profile(embedded: Path, tmp_path: Path) -> None:
    info = json.loads(yard("status", "--json").stdout)
    token = json.loads(yard("tokens", "create", "--name", "remote", "--json").stdout)["token"]
    result = yard("login", info["url"], "--token", token, "--profile", "remote")
    assert result.returncode == 0, result.stderr
    assert json.loads(yard("--profile", "remote", "status", "--json").stdout)["status"] == "ok"
    assert_one_sentence_error(
        yard("login", info["url"], "--token", "dy_wrong", "--profile", "bad"), "token is not valid"
    )


def test_unknown_profile() -> None:
    result = yard("--profile", "ghost", "status")
    assert_one_sentence_error(result)


def test_unreachable_url() -> None:
    result = yard("login", f"http://127.0.0.1:{free_port()}", "--token", "dy_x")
    assert_one_sentence_error(result, "Cannot reach the devyard API")


def test_not_a_url() -> None:
    assert_one_sentence_error(yard("login", "localhost:1", "--token", "x"), "is not an http")


def test_malformed_profile_file() -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[profiles\nbroken")
    assert_one_sentence_error(yard("status"), "is not valid TOML")


def test_malformed_settings_file(tmp_path: Path) -> None:
    (tmp_path / "devyard.toml").write_text("port = [")
    assert_one_sentence_error(yard("up", "--data-dir", str(tmp_path)), "is not valid TOML")


def test_a_damaged_secret_key_file_stops_up_with_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "secret.key").write_text("not a key\n")
    result = yard("up", "--detach", "--data-dir", str(tmp_path), "--port", "0")
    assert_one_sentence_error(result, "does not hold a Fernet key")
    assert "not a key" not in result.stderr + result.stdout


def test_data_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_sentence_error(yard("up", "--data-dir", str(blocker / "data")), "pass --data-dir")


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = yard("up", "--data-dir", str(tmp_path / "d"), "--port", str(port), "--detach")
    assert_one_sentence_error(result, f"Port {port} on 127.0.0.1 is already in use")


def test_database_that_does_not_connect(tmp_path: Path) -> None:
    url = f"postgresql://nobody:secret-pw@127.0.0.1:{free_port()}/nothing"
    result = yard("up", "--data-dir", str(tmp_path / "d"), env={"DEVYARD_DATABASE_URL": url})
    assert_one_sentence_error(result, "Cannot connect to the database")
    assert "secret-pw" not in result.stderr


def test_doctor_explains_a_broken_database(tmp_path: Path) -> None:
    url = f"postgresql://nobody:pw@127.0.0.1:{free_port()}/nothing"
    result = yard("doctor", "--data-dir", str(tmp_path / "d"), "--json", env={"DEVYARD_DATABASE_URL": url})
    assert result.returncode == 1
    report = json.loads(result.stdout)
    database = next(c for c in report["checks"] if c["name"] == "database")
    assert not database["ok"] and "Cannot connect" in database["detail"]


@pytest.mark.parametrize("command", ["up", "doctor"])
def test_a_broken_settings_file_is_one_sentence(tmp_path: Path, command: str) -> None:
    """Audit (issue 15, item 12): random bytes gave a traceback, a folder was silently ignored."""
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / "devyard.toml").write_bytes(bytes(range(256)) * 4)
    assert_one_sentence_error(yard(command, "--data-dir", str(data_dir)), "devyard.toml", "not UTF-8")
    (data_dir / "devyard.toml").write_bytes(b"port = [\x01")
    assert_one_sentence_error(yard(command, "--data-dir", str(data_dir)), "devyard.toml", "not valid TOML")
    (data_dir / "devyard.toml").unlink()
    (data_dir / "devyard.toml").mkdir()
    assert_one_sentence_error(yard(command, "--data-dir", str(data_dir)), "devyard.toml", "is not a file")
    assert not (data_dir / "devyard.db").exists()


def test_doctor_only_looks(tmp_path: Path) -> None:
    """It reports that yard up would create the database and object store, and creates neither."""
    database = tmp_path / "db" / "nested" / "devyard.db"
    objects = tmp_path / "store" / "objects"
    env = {"DEVYARD_DATABASE_URL": f"sqlite:///{database}", "DEVYARD_OBJECT_STORE_URL": objects.as_uri()}
    result = yard("doctor", "--data-dir", str(tmp_path / "d"), "--json", env=env)
    report = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert report["database"]["ok"] and "`yard up` creates it" in report["database"]["detail"]
    assert report["object store"]["ok"] and "`yard up` creates it" in report["object store"]["detail"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "doctor created files"
    blocked = tmp_path / "ro"
    blocked.mkdir(mode=0o500)
    env["DEVYARD_DATABASE_URL"] = f"sqlite:///{blocked / 'sub' / 'devyard.db'}"
    if os.geteuid() != 0:  # root writes anywhere
        result = yard("doctor", "--data-dir", str(tmp_path / "d"), "--json", env=env)
        database_check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "database")
        assert not database_check["ok"] and "is not writable" in database_check["detail"]
    assert list(blocked.iterdir()) == []


def test_up_on_postgres(tmp_path: Path, database_url: str) -> None:
    result = yard(
        "up", "--detach", "--data-dir", str(tmp_path / "pg"), "--port", "0", env={"DEVYARD_DATABASE_URL": database_url}
    )
    assert result.returncode == 0, result.stderr
    try:
        info = json.loads(yard("status", "--json").stdout)
        assert info["database"]["backend"] == database_url.split(":")[0].split("+")[0]
    finally:
        assert yard("down", "--data-dir", str(tmp_path / "pg")).returncode == 0
