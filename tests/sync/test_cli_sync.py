"""`yard sync` and `yard dev start`'s offer, as a user runs them: the real console script against
a real embedded stack (`yard up --detach`), a real develop server and a real git repository."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.sync.conftest import YardStack
from tests.sync.trees import checkout_branch, commit_all, repository, snapshot, write
from tests.tui.test_cli import YARD, assert_one_sentence_error
from tests.tui.test_cli_dev import _drive
from tests.waiting import wait_until


def fresh_clone(tmp_path: Path, name: str) -> pygit2.Repository:
    """A clone (fetched as a pack, like any clone) of a small repository with two commits."""
    origin = tmp_path / "origin"
    repo = repository(origin, {"README.md": "# shop\n", "src/app.py": "print(1)\n", ".gitignore": "*.pyc\n"})
    write(origin, {"src/lib.py": "x = 1\n"})
    commit_all(repo, "add lib")
    return pygit2.clone_repository(origin.as_uri(), str(tmp_path / name))


def start(stack: YardStack, clone: Path) -> Path:
    """`yard dev start` in the clone (not a terminal: no question asked); the workspace folder."""
    started = stack.yard("dev", "start", cwd=clone)
    assert started.returncode == 0, started.stderr
    assert "Sync" not in started.stdout, "no prompt without a terminal"
    server: dict[str, Any] = json.loads(stack.yard("dev", "status", "--json", cwd=clone).stdout)
    return stack.data_dir / "volume" / str(server["workspace"])


def same(clone: Path, workspace: Path) -> bool:
    def compiled(path: str) -> bool:
        return path.endswith(".pyc")

    return snapshot(clone, compiled) == snapshot(workspace, compiled)


def remote_head(workspace: Path) -> tuple[str, str] | None:
    try:
        repo = pygit2.Repository(str(workspace))
        return repo.head.shorthand, str(repo.head.target)
    except (pygit2.GitError, KeyError):
        return None


def test_a_fresh_clone_stays_identical_while_watching(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    repo = fresh_clone(tmp_path, project)
    clone = Path(repo.workdir)
    workspace = start(yard_stack, clone)
    watch = subprocess.Popen(
        [YARD, "sync", "--watch", "--json"],
        cwd=clone,
        env=yard_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        first: dict[str, Any] = json.loads(watch.stdout.readline())
        assert first["kind"] == "sync" and first["git"]["moved"] is True
        assert same(clone, workspace) and remote_head(workspace) == ("main", str(repo.head.target))

        write(clone, {"src/app.py": "print(2)\n", "src/new/mod.py": "y = 2\n", "cache.pyc": "ignored"})
        (clone / "README.md").rename(clone / "README.rst")
        wait_until(lambda: same(clone, workspace), message="the edits to arrive")
        commit_all(repo, "edits")
        wait_until(lambda: remote_head(workspace) == ("main", str(repo.head.target)), message="the commit")
        checkout_branch(repo, "feature", create=True)
        write(clone, {f"gen/f{i}.txt": f"{i}\n" for i in range(200)})
        feature = commit_all(repo, "generated")
        wait_until(lambda: same(clone, workspace) and remote_head(workspace) == ("feature", feature), message="feature")
        checkout_branch(repo, "main")  # 200 files go away at once
        main = ("main", str(repo.head.target))
        wait_until(lambda: same(clone, workspace) and remote_head(workspace) == main, message="main again")

        # Frozen for a while (as a laptop asleep), with edits meanwhile: it catches up after.
        watch.send_signal(signal.SIGSTOP)
        write(clone, {"while-frozen.txt": "written while stopped\n"})
        (clone / "src" / "lib.py").unlink()
        wait_until(lambda: not same(clone, workspace))
        watch.send_signal(signal.SIGCONT)
        wait_until(lambda: same(clone, workspace), message="the catch-up")
    finally:
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(15)
    assert code == 0, watch.stderr.read() if watch.stderr else ""
    assert not (workspace / "cache.pyc").exists()
    remote = pygit2.Repository(str(workspace))
    local_changes = {path: flags for path, flags in repo.status().items() if not path.endswith(".pyc")}
    assert remote.status() == local_changes, "the same working-tree changes on both sides"


def test_sync_once_dry_run_json_and_mistakes(yard_stack: YardStack, project: str, tmp_path: Path) -> None:
    repo = fresh_clone(tmp_path, project)
    clone = Path(repo.workdir)
    nothing = yard_stack.yard("sync", cwd=clone)
    assert_one_sentence_error(nothing, f"Your develop server for project {project} does not exist")
    workspace = start(yard_stack, clone)

    dry = yard_stack.yard("sync", "--dry-run", "--json", cwd=clone)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True and planned["files"] == 4 and planned["git"]["moved"] is True
    assert {c["path"] for c in planned["changes"]} >= {"README.md", "src/app.py", "src/lib.py"}
    assert not (workspace / "README.md").exists() and not (workspace / ".git").exists()

    once = yard_stack.yard("sync", cwd=clone)
    assert once.returncode == 0, once.stderr
    assert "4 files" in once.stdout and "git: main moved to" in once.stdout
    assert same(clone, workspace)
    again = json.loads(yard_stack.yard("sync", "--json", cwd=clone).stdout)
    assert (again["files"], again["deleted"], again["git"]["moved"]) == (0, 0, False)

    (workspace / "README.md").write_text("edited on the develop server\n")
    (clone / "README.md").write_text("edited here\n")
    conflict = yard_stack.yard("sync", cwd=clone)
    assert conflict.returncode == 0
    assert "conflict: README.md changed on the develop server" in " ".join(conflict.stderr.split())
    kept = list(clone.glob("README.md.remote-*"))
    assert len(kept) == 1 and kept[0].read_text() == "edited on the develop server\n"

    assert_one_sentence_error(yard_stack.yard("sync", "src", cwd=clone), "inside the git repository")
    assert_one_sentence_error(yard_stack.yard("sync", "--watch", "--dry-run", cwd=clone), "cannot be combined")
    assert_one_sentence_error(yard_stack.yard("sync", "no-such-folder", cwd=clone), "is not a directory")


def test_dev_start_offers_to_sync_in_a_terminal(
    yard_stack: YardStack, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = fresh_clone(tmp_path, project)
    clone = Path(repo.workdir)
    for name in ("DEVYARD_URL", "DEVYARD_TOKEN"):  # _drive runs in this process's environment
        monkeypatch.setenv(name, yard_stack.env[name])
    monkeypatch.chdir(clone)
    code, screen = _drive([YARD, "dev", "start"], [b"y\r"])
    assert code == 0, screen
    assert b"into the workspace now?" in screen
    assert b"Keep it in sync as you edit with `yard sync --watch`." in screen
    server = json.loads(yard_stack.yard("dev", "status", "--json", cwd=clone).stdout)
    workspace = yard_stack.data_dir / "volume" / server["workspace"]
    assert same(clone, workspace) and remote_head(workspace) == ("main", str(repo.head.target))
    # With --json it never asks, terminal or not.
    code, screen = _drive([YARD, "dev", "start", "--json"], [])
    assert code == 0 and b"now?" not in screen
    assert json.loads(screen.decode().replace("\r\n", "\n"))["state"] == "running"


def test_the_progress_bar_says_when_the_git_push_follows_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from tui.cli import sync as sync_cli

    screen = io.StringIO()
    monkeypatch.setattr(sync_cli, "errors", Console(file=screen, force_terminal=True, width=100))
    bar = sync_cli.BarProgress()
    bar.begin(10_000, 200 * 1024 * 1024)
    assert bar._bar is not None, "a big sync in a terminal gets a bar"
    bar.advance(10_000, 200 * 1024 * 1024)
    assert bar._bar.tasks[0].description == "syncing"
    bar.git()
    assert bar._bar.tasks[0].description == "pushing git objects"
    bar.end()
    assert bar._bar is None

    small = sync_cli.BarProgress()
    small.begin(3, 100)  # a small sync draws nothing, and the git step is a no-op
    small.git()
    small.end()
    assert small._bar is None


def test_files_a_command_made_in_the_workspace_stay_there_and_can_be_fetched(
    yard_stack: YardStack, project: str, tmp_path: Path
) -> None:
    """A warehouse file and dbt's .user.yml, made by a command in the workspace, are neither
    conflicts nor copied around: the next sync leaves them and says so; --fetch brings one here."""
    repo = fresh_clone(tmp_path, project)
    clone = Path(repo.workdir)
    workspace = start(yard_stack, clone)
    assert yard_stack.yard("sync", cwd=clone).returncode == 0
    made = yard_stack.yard(
        "dev",
        "exec",
        "--",
        "sh",
        "-c",
        "head -c 2400000 /dev/urandom > jaffle_prod.duckdb; echo id: 1 > .user.yml",
        cwd=clone,
    )
    assert made.returncode == 0, made.stderr
    warehouse = (workspace / "jaffle_prod.duckdb").read_bytes()

    synced = yard_stack.yard("sync", cwd=clone)
    assert synced.returncode == 0, synced.stderr
    said = " ".join(synced.stderr.split())
    assert "only in the workspace: .user.yml, jaffle_prod.duckdb" in said and "yard sync --fetch" in said
    assert "conflict" not in said and "Traceback" not in said
    assert (workspace / "jaffle_prod.duckdb").read_bytes() == warehouse  # not moved, not deleted
    assert not (clone / "jaffle_prod.duckdb").exists() and not list(clone.glob("*.remote-*"))
    assert not list(workspace.glob("*.remote-*"))

    fetched = yard_stack.yard("sync", "--fetch", "jaffle_prod.duckdb", cwd=clone)
    assert fetched.returncode == 0, fetched.stderr
    assert "Fetched jaffle_prod.duckdb" in fetched.stdout
    assert (clone / "jaffle_prod.duckdb").read_bytes() == warehouse
    again = json.loads(yard_stack.yard("sync", "--json", cwd=clone).stdout)
    assert (again["files"], again["deleted"], again["conflicts"], again["left"]) == (0, 0, [], [".user.yml"])

    assert_one_sentence_error(yard_stack.yard("sync", "--fetch", "jaffle_prod.duckdb", cwd=clone), "already exists")
    assert_one_sentence_error(yard_stack.yard("sync", "--fetch", "../outside", cwd=clone), "not a path inside")
    assert_one_sentence_error(
        yard_stack.yard("sync", "--fetch", "nope.txt", cwd=clone), "The workspace has no nope.txt"
    )
