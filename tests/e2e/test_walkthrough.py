"""The README's "A short tour", command by command, as a newcomer types it: the real `yard`
executable in subprocesses (no terminal), a fresh data dir and config home, a small real git
project. Each step asserts what the user sees: the exit code, the words on stdout, one-sentence
errors, and never a traceback. A change that breaks the first hour fails here."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_cli import YARD

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d")  # year and zone, never "12-07 01:30:00"


class Newcomer:
    """Runs `yard` as a user would, from a folder, and keeps everything it printed."""

    def __init__(self, home: Path, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DEVYARD_")} | {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "DEVYARD_DATA_DIR": str(data_dir),
        }
        self.transcript: list[str] = []
        self.seconds: list[tuple[float, str]] = []  # per command, shown when a step fails
        self.down = False

    def yard(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(
            [YARD, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        self.transcript.append(f"$ yard {' '.join(args)}\n{result.stdout}{result.stderr}")
        self.seconds.append((time.monotonic() - started, " ".join(args)))
        return result

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        """Run a step that must succeed; its stdout."""
        result = self.yard(*args, cwd=cwd)
        assert result.returncode == 0, f"yard {' '.join(args)} exited {result.returncode}: {result.stderr}"
        return result.stdout

    def refused(self, *args: str, code: int = 1, cwd: Path | None = None) -> str:
        """Run a step that must fail with one sentence on stderr; that sentence."""
        result = self.yard(*args, cwd=cwd)
        assert result.returncode == code, f"yard {' '.join(args)} exited {result.returncode}: {result.stderr}"
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return " ".join(lines[0].split())


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def small_project(root: Path) -> Path:
    """A real git repository named shop with a Makefile, as someone's laptop would have."""
    repo = root / "shop"
    repo.mkdir()
    (repo / "Makefile").write_text(
        "test:\n\t@echo tests pass for $$DBT_TARGET\n\ndocs:\n\t@mkdir -p site && echo '<h1>shop</h1>' > site/index.html\n"
    )
    (repo / "README.md").write_text("# shop\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=New Comer", "-c", "user.email=new@example.com", "add", ".")
    git(repo, "-c", "user.name=New Comer", "-c", "user.email=new@example.com", "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[Newcomer]:
    user = Newcomer(tmp_path / "home", tmp_path / "home" / ".local" / "share" / "devyard")
    try:
        yield user
    finally:
        if not user.down:
            user.yard("down")
        print("\n".join(f"{took:6.2f} s  yard {args}" for took, args in user.seconds))
        everything = "\n".join(user.transcript)
        assert "Traceback" not in everything, everything


def test_the_short_tour(newcomer: Newcomer, tmp_path: Path) -> None:
    yard, ok, refused = newcomer.yard, newcomer.ok, newcomer.refused
    repo = small_project(tmp_path)

    # yard up --detach; yard status
    up = ok("up", "--detach", "--port", "0")
    assert "devyard is up at http://127.0.0.1:" in up and str(newcomer.data_dir) in up
    url = re.findall(r"http://127\.0\.0\.1:\d+", up)[0]
    status = ok("status")
    assert status.startswith("ok devyard") and "(admin)" in status

    # yard: the TUI needs a terminal, and says so instead of writing escape codes forever.
    assert "needs a terminal" in refused(code=2)

    # yard users add alice --role developer: her first token, once.
    alice = ok("users", "add", "alice", "--role", "developer")
    assert "User alice (developer) created." in alice
    alice_token = re.search(r"dy_\S+", alice)
    assert alice_token is not None

    # yard projects add shop; yard envs add shop prod (the secret is never printed back)
    assert "Project shop created." in ok("projects", "add", "shop", "--description", "web shop")
    env = ok("envs", "add", "shop", "prod", "--var", "DBT_TARGET=prod", "--secret", "DB_PASSWORD=hunter2-secret")
    assert "hunter2-secret" not in env

    # yard dev start -p shop, then yard sync from the repository (the project is its name)
    assert "running" in ok("dev", "start", "-p", "shop")
    synced = yard("sync", cwd=repo)
    assert synced.returncode == 0, synced.stderr

    # yard dev exec -p shop -- make test: in the workspace, with the command's exit code
    assert ok("dev", "exec", "-p", "shop", "--", "make", "test").strip() == "tests pass for"
    failed = yard("dev", "exec", "-p", "shop", "--", "make", "no-such-target")
    assert failed.returncode == 2 and "No rule to make target" in failed.stderr
    timed = yard("dev", "exec", "-p", "shop", "--timeout", "1", "--", "sleep", "30")
    assert timed.returncode == 124 and "Timed out: sleep ran longer than 1 s" in timed.stderr
    assert "Project nope does not exist" in refused("dev", "exec", "-p", "nope", "--", "true")

    # yard run -p shop -e prod -- make test: follows the log, secret values masked
    run = yard("run", "-p", "shop", "-e", "prod", "--", "sh", "-c", "make test; echo pw=$DB_PASSWORD")
    assert run.returncode == 0, run.stderr
    assert "tests pass for prod" in run.stdout and "hunter2-secret" not in run.stdout
    # A run works inside its code folder: not above it, and not through a link out of it.
    assert "outside the run's code folder" in refused("run", "-p", "shop", "--cwd", "../..", "--", "pwd")
    ok("dev", "exec", "-p", "shop", "--", "ln", "-s", "/etc", "escape")
    escaped = yard("run", "-p", "shop", "--cwd", "escape", "--", "ls")
    assert escaped.returncode == 127 and "outside the run's code folder" in escaped.stderr
    assert "passwd" not in escaped.stdout

    # yard run -p shop --detach -- make docs: the run id, and back at once
    detached = ok("run", "-p", "shop", "--detach", "--", "make", "docs")
    found = re.fullmatch(r"Run (\d+) (is queued|is starting|is running)\.\n", detached)
    assert found, detached
    docs_run = found.group(1)

    # yard runs logs N -f (until it ends); yard runs ls
    ok("runs", "logs", docs_run, "-f")
    listing = ok("runs", "ls")
    assert re.search(rf"^{docs_run}\s+succeeded\s", listing, re.M) and STAMP.search(listing), listing
    assert "Project nope does not exist" in refused("runs", "ls", "--project", "nope")

    # yard schedule add / next / show
    added = ok(
        "schedule", "add", "nightly", "-p", "shop", "-e", "prod", "--cron", "30 2 * * *",
        "--tz", "Europe/Berlin", "--", "make", "test",
    )  # fmt: skip
    assert "Schedule nightly added; next run" in added and STAMP.search(added), added
    upcoming = ok("schedule", "next", "nightly").splitlines()
    assert len(upcoming) == 5 and all("02:30 CE" in line and "local)" in line for line in upcoming), upcoming
    assert "nightly" in ok("schedule", "show", "nightly")

    # yard tokens create --name ci --expires-in-days 30
    assert re.search(r"dy_\S+", ok("tokens", "create", "--name", "ci", "--expires-in-days", "30"))
    assert STAMP.search(ok("tokens", "ls"))

    # yard login URL --token ... (here: alice on this stack); it says which profile is the default
    login = " ".join(ok("login", url, "--token", alice_token.group(0), "--profile", "alice").split())
    assert "'alice' is now the default profile (it was 'local'" in login
    assert "as alice (developer)" in ok("status")

    # yard doctor: the data dir's database and store are fine; piped, nothing is cut
    doctor = ok("doctor")
    assert re.search(r"^database\s+ok\s", doctor, re.M) and "…" not in doctor, doctor

    # yard deploy render: placeholders (postgresql://..., s3://...) are refused, real-looking values render
    out = tmp_path / "deploy"
    render = ["deploy", "render", "--target", "kubernetes", "--out", str(out)]
    assert "placeholder" in refused(*render, "--database-url", "postgresql://...", "--object-store-url", "s3://...")
    ok(*render, "--database-url", "postgresql://devyard:pw@db.example.com:5432/devyard",
       "--object-store-url", "s3://devyard-logs/prod")  # fmt: skip
    assert any(out.iterdir())

    # yard dev stop -p shop; yard down
    ok("--profile", "local", "dev", "stop", "-p", "shop")
    assert "stopped." in ok("down")
    newcomer.down = True
