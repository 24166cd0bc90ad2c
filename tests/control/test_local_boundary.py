"""The embedded stack on the local substrate: its files are private to the devyard user, the
database holds no usable develop server secret, commands never see the control plane's own
files, and the substrate serves one person (issue 15, items 2 and 3)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control.secretbox import SecretBox, key_file_keys
from control.tlspin import pinned_context
from tests.stack import running_agent, running_stack, wait_for_run
from tests.tui.test_cli import assert_one_sentence_error, yard

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another OS user (CI runs as root)")


def as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Python ``code`` run as the OS user nobody (a different local user than devyard's)."""
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A folder every local user may enter, so only the data dir's own modes protect it."""
    parent = Path(tempfile.mkdtemp(prefix="devyard-private-", dir="/tmp"))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def embedded(open_parent: Path) -> Iterator[Path]:
    """`yard up --detach` over a data dir an earlier version left world-readable."""
    data_dir = open_parent / "data"
    (data_dir / "state").mkdir(parents=True, mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "devyard.toml").write_text("")
    (data_dir / "devyard.toml").chmod(0o644)
    result = yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0")
    assert result.returncode == 0, result.stderr
    try:
        yield data_dir
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0


def _developer(name: str) -> dict[str, str]:
    token = json.loads(yard("users", "add", name, "--role", "developer", "--json").stdout)["token"]
    return {"DEVYARD_URL": json.loads(yard("status", "--json").stdout)["url"], "DEVYARD_TOKEN": token}


def test_the_data_dir_is_private_and_holds_no_usable_devserver_secret(embedded: Path, open_parent: Path) -> None:
    assert yard("projects", "add", "shop").returncode == 0
    assert yard("envs", "add", "shop", "prod", "--secret", "DB_PASSWORD=Sup3rS3cr3t").returncode == 0
    started = yard("dev", "start", "-p", "shop", "-e", "prod", "--json")
    assert started.returncode == 0, started.stderr
    ran = yard("run", "-p", "shop", "--no-devserver", "--", "sh", "-c", "echo a log line")
    assert ran.returncode == 0 and "a log line" in ran.stdout, ran

    # Sanity: nobody can enter the parent, so what stops them below is the data dir itself.
    assert as_nobody(f"import os; print(os.listdir({str(open_parent)!r}))").returncode == 0
    paths = [p for p in embedded.rglob("*") if not p.is_symlink()]
    files = [p for p in paths if p.is_file()]
    assert {"devyard.db", "secret.key", "server.log"} <= {p.name for p in files}
    assert any("objects" in p.parts for p in files), "the run's log is stored under objects/"
    probe = (
        "import sys\n"
        "opened = []\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'rb').close(); opened.append(path)\n"
        "    except OSError:\n"
        "        pass\n"
        "print('\\n'.join(opened))\n"
    )
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-I", "-c", probe]
        + [str(p) for p in files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"nobody could read: {result.stdout}"
    assert as_nobody(f"import os; os.listdir({str(embedded)!r})").returncode != 0

    # The control plane's own files carry no group or other bits (the commands' own files live
    # in volume/, which is inside the private data dir).
    for path in paths:
        if "volume" in path.relative_to(embedded).parts:
            continue
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    assert stat.S_IMODE(embedded.stat().st_mode) == 0o700

    # The database holds the develop server's secret sealed; the plain one does not open the server.
    with sqlite3.connect(embedded / "devyard.db") as db:
        stored, endpoint, pin = db.execute("SELECT secret, endpoint, tls_fingerprint FROM dev_servers").fetchone()
    assert stored.startswith("$fernet:")
    # Only with the key (state/secret.key, as private as the rest) does it open.
    box = SecretBox(key_file_keys(embedded / "state" / "secret.key"))
    real_secret = box.open(stored.removeprefix("$fernet:"))["v"]
    assert len(real_secret) >= 40 and real_secret not in stored
    database_bytes = b"".join(p.read_bytes() for p in files if p.name.startswith("devyard.db"))
    assert real_secret.encode() not in database_bytes
    with httpx.Client(base_url=endpoint, timeout=10, verify=pinned_context(pin)) as http:
        assert http.get("/health", headers={"Authorization": f"Bearer {stored}"}).status_code == 401
        assert http.get("/health", headers={"Authorization": f"Bearer {real_secret}"}).status_code == 200


@pytest.fixture
def operator_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's HOME as in real life: the client profile in ~/.config/devyard."""
    home = tmp_path / "operator"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME")
    return home


def test_commands_never_see_the_control_planes_files(operator_home: Path, embedded: Path) -> None:
    assert yard("projects", "add", "shop").returncode == 0
    assert yard("dev", "start", "-p", "shop").returncode == 0
    probe = (
        'echo "HOME=$HOME"; env | grep -c "^DEVYARD_TOKEN=\\|^XDG_CONFIG_HOME=" ;'
        ' ls "$HOME/.config/devyard" 2>&1 | head -1'
    )
    real_home = str(operator_home)
    for argv in (
        ["dev", "exec", "-p", "shop", "--", "sh", "-c", probe],
        ["run", "-p", "shop", "--no-devserver", "--", "sh", "-c", probe],
    ):
        result = yard(*argv)
        home = next(line for line in result.stdout.splitlines() if "HOME=" in line).split("HOME=", 1)[1]
        assert home == str(embedded / "volume" / "home"), result.stdout
        assert home != real_home and not home.startswith(real_home + "/")
        assert "\n0\n" in "\n" + result.stdout.replace("\r", "") + "\n", result.stdout
        assert "config.toml" not in result.stdout
    assert (Path(real_home) / ".config" / "devyard" / "config.toml").exists()  # the profile is real, only hidden


def test_a_second_user_is_refused_on_the_local_substrate(embedded: Path) -> None:
    assert yard("projects", "add", "shop").returncode == 0
    bob = _developer("bob")
    assert yard("projects", "add", "bobs", env=bob).returncode == 0
    for argv in (["dev", "start", "-p", "bobs"], ["run", "-p", "bobs", "--no-devserver", "--", "true"]):
        assert_one_sentence_error(yard(*argv, env=bob), "serves one person", "Docker or Kubernetes")
    listed = json.loads(yard("runs", "ls", "--json").stdout)
    assert [r for r in listed if r["user"] == "bob"] == []


def test_the_multi_user_setting_warns_loudly(open_parent: Path) -> None:
    data_dir = open_parent / "data"
    result = yard(
        "up", "--detach", "--data-dir", str(data_dir), "--port", "0", env={"DEVYARD_LOCAL_MULTI_USER": "true"}
    )
    try:
        assert result.returncode == 0, result.stderr
        assert "warning:" in result.stderr and "DEVYARD_LOCAL_MULTI_USER" in result.stderr
        bob = _developer("bob")
        assert yard("projects", "add", "bobs", env=bob).returncode == 0
        ran = yard("run", "-p", "bobs", "--no-devserver", "--", "echo", "allowed", env=bob)
        assert ran.returncode == 0 and "allowed" in ran.stdout, ran
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0


def test_a_local_agent_refuses_other_users_work_at_claim(tmp_path: Path) -> None:
    """An API without an agent of its own takes the run; the local agent that claims it refuses."""
    with running_stack(
        tmp_path / "data", f"sqlite:///{tmp_path / 'devyard.db'}", agent=False, local_multi_user=False
    ) as stack:
        bob = stack.user("bob", "developer")
        with stack.client(bob) as client:
            client.create_project("bobs")
            run = client.create_run("bobs", ["true"], in_devserver=False)
        with running_agent(stack, tmp_path / "agent"), stack.client() as admin:
            done = wait_for_run(admin, run.id)
            assert done.state == "failed" and "serves one person" in str(done.error)
            mine = admin.create_run("bobs", ["true"], in_devserver=False)
            assert wait_for_run(admin, mine.id).state == "succeeded"
