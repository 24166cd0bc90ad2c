"""Environment secrets are encrypted in the database, readable only with the configured keys."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import JSON, bindparam, create_engine, text

from control.client import ApiError
from control.logformat import raw_output
from control.secretbox import new_key
from control.settings import SettingsProblem, load_settings
from tests.stack import Stack, running_agent, running_stack, wait_for_run
from tests.tui.test_cli import assert_one_sentence_error, yard

SECRET = "sk-at-rest-7f3e9c21"
LEGACY = "plaintext-legacy-5d8b40"


def raw_secrets(database_url: str) -> list[Any]:
    """The secrets column as stored, bypassing the model."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT secrets FROM environments ORDER BY id").columns(secrets=JSON)
            return [row[0] for row in conn.execute(query)]
    finally:
        engine.dispose()


def database_bytes(database_url: str) -> bytes:
    """Every byte of the SQLite database and its write-ahead log; nothing for PostgreSQL."""
    if not database_url.startswith("sqlite"):
        return b""
    path = Path(database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def store_plaintext(database_url: str, environment: str, secrets: dict[str, str]) -> None:
    """Write secrets the way versions before encryption did."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE environments SET secrets = :secrets WHERE name = :name").bindparams(
                    bindparam("secrets", type_=JSON)
                ),
                {"secrets": secrets, "name": environment},
            )
    finally:
        engine.dispose()


def token_of(stored: Any) -> bytes:
    assert isinstance(stored, dict) and set(stored) == {"$fernet"}, stored
    return str(stored["$fernet"]).encode()


def test_secrets_are_ciphertext_in_the_database_and_reach_the_run(run_stack: Stack) -> None:
    url = run_stack.settings.effective_database_url
    with run_stack.client() as client:
        created = client.create_environment("demo", "prod", secrets={"API_TOKEN": SECRET})
        assert created.secret_names == ["API_TOKEN"] and SECRET not in str(created)
        client.update_environment("demo", "prod", secrets={"OTHER": "second-secret-value"})
        # The command compares a digest: the secret itself must not be in the stored command.
        digest = hashlib.sha256(SECRET.encode()).hexdigest()
        command = f'test "$(printf %s "$API_TOKEN" | sha256sum | cut -c1-64)" = {digest} && echo t=$API_TOKEN o=$OTHER'
        run = client.create_run("demo", ["sh", "-c", command], environment="prod")
        final = wait_for_run(client, run.id)
        blob, _ = client.read_logs(run.id)
        assert client.get_environment("demo", "prod").secret_names == ["API_TOKEN", "OTHER"]
    assert final.state == "succeeded", final
    assert raw_output(blob) == b"t=*** o=***\n"
    [stored] = raw_secrets(url)
    token_of(stored)
    assert SECRET not in str(stored) and "API_TOKEN" not in str(stored)
    if url.startswith("sqlite"):
        assert SECRET.encode() not in database_bytes(url)


def test_legacy_plaintext_is_encrypted_when_the_api_starts(tmp_path: Path, database_url: str) -> None:
    with running_stack(tmp_path / "data", database_url) as stack, stack.client() as client:
        client.create_project("demo")
        client.create_environment("demo", "old")
        client.create_environment("demo", "empty")
    store_plaintext(database_url, "old", {"LEGACY_TOKEN": LEGACY})
    assert LEGACY in str(raw_secrets(database_url))
    with running_stack(tmp_path / "data", database_url) as stack, stack.client() as client:
        assert client.get_environment("demo", "old").secret_names == ["LEGACY_TOKEN"]
        assert client.get_environment("demo", "empty").secret_names == []
    old, empty = raw_secrets(database_url)
    token_of(old)
    assert empty == {}
    assert LEGACY.encode() not in database_bytes(database_url)
    # A second start finds nothing left to do and changes nothing.
    with running_stack(tmp_path / "data", database_url):
        pass
    assert raw_secrets(database_url) == [old, empty]


def test_a_rotated_key_still_decrypts_and_the_new_key_takes_over(tmp_path: Path, database_url: str) -> None:
    old_key, new = new_key(), new_key()
    with running_stack(tmp_path / "data", database_url, secret_keys=old_key) as stack, stack.client() as client:
        client.create_project("demo")
        client.create_environment("demo", "prod", secrets={"API_TOKEN": SECRET})
    Fernet(old_key).decrypt(token_of(raw_secrets(database_url)[0]))
    with (
        running_stack(tmp_path / "data", database_url, secret_keys=f"{new},{old_key}") as stack,
        stack.client() as client,
    ):
        assert client.get_environment("demo", "prod").secret_names == ["API_TOKEN"]
        client.update_environment("demo", "prod", secrets={"OTHER": "x-value"})
    token = token_of(raw_secrets(database_url)[0])
    assert Fernet(new).decrypt(token)
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(token)
    # The old key can go now: everything is under the new one.
    with running_stack(tmp_path / "data", database_url, secret_keys=new) as stack, stack.client() as client:
        assert client.get_environment("demo", "prod").secret_names == ["API_TOKEN", "OTHER"]


def test_a_wrong_key_gives_one_clear_sentence(tmp_path: Path, database_url: str) -> None:
    with running_stack(tmp_path / "data", database_url, secret_keys=new_key()) as stack, stack.client() as client:
        client.create_project("demo")
        client.create_environment("demo", "prod", secrets={"API_TOKEN": SECRET})
        client.create_environment("demo", "plain", variables={"A": "1"})
    wrong = new_key()
    with running_stack(tmp_path / "data", database_url, secret_keys=wrong) as stack:
        with stack.client() as client:
            with pytest.raises(ApiError) as refused:
                client.get_environment("demo", "prod")
            # Environments without secrets, and runs, are not affected.
            assert client.get_environment("demo", "plain").variables == {"A": "1"}
        assert refused.value.status == 500 and refused.value.code == "secrets_unreadable"
        assert "environment demo/prod cannot be decrypted with the configured keys" in refused.value.message
        assert wrong not in refused.value.message
        cli = yard("envs", "ls", "demo", env={"DEVYARD_URL": stack.url, "DEVYARD_TOKEN": stack.admin_token})
        assert_one_sentence_error(cli, "demo/prod cannot be decrypted with the configured keys")
        # A run of that environment fails with the reason instead of starting without its secrets.
        with running_agent(stack, tmp_path / "agent"), stack.client() as client:
            run = client.create_run("demo", ["true"], environment="prod")
            final = wait_for_run(client, run.id)
            assert client.create_run("demo", ["true"], environment="plain").id
    assert final.state == "failed"
    assert "demo/prod cannot be decrypted with the configured keys" in str(final.error)


def test_the_embedded_key_file_is_private_and_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'devyard.db'}"
    key_file = tmp_path / "data" / "state" / "secret.key"
    with running_stack(tmp_path / "data", url) as stack, stack.client() as client:
        client.create_project("demo")
        client.create_environment("demo", "prod", secrets={"API_TOKEN": SECRET})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    Fernet(key).decrypt(token_of(raw_secrets(url)[0]))
    with running_stack(tmp_path / "data", url) as stack, stack.client() as client:
        assert client.get_environment("demo", "prod").secret_names == ["API_TOKEN"]
        assert key not in httpx.get(stack.url + "/api/v1/health").text
    assert key_file.read_text().strip() == key


def test_configured_keys_leave_no_key_file(tmp_path: Path) -> None:
    with running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'devyard.db'}", secret_keys=new_key()):
        pass
    assert not (tmp_path / "data" / "state" / "secret.key").exists()


def test_a_replica_on_postgresql_without_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")}
    env["DEVYARD_DATABASE_URL"] = "postgresql://devyard:devyard@127.0.0.1:1/devyard"
    result = subprocess.run(
        [sys.executable, "-m", "compose.supervisor", "--data-dir", str(tmp_path / "data"), "--replica"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr
    assert "DEVYARD_SECRET_KEYS" in result.stderr
    assert not (tmp_path / "data" / "state" / "secret.key").exists()


def test_an_invalid_key_setting_is_one_sentence_that_does_not_echo_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVYARD_SECRET_KEYS", "not-a-fernet-key-1234")
    with pytest.raises(SettingsProblem, match="Key 1 of DEVYARD_SECRET_KEYS is not a Fernet key") as problem:
        load_settings(tmp_path)
    assert "not-a-fernet-key-1234" not in str(problem.value)
