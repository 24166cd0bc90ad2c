"""The sync engine against a real develop server, through the control API's gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sync.remote import DevserverUnavailable
from sync.status import local_status
from tests.compose.devserver_helpers import wait_for_state
from tests.sync.conftest import AgentStack, Workspace
from tests.sync.trees import snapshot, write
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def local_tree(root: Path) -> Path:
    write(
        root,
        {
            "README.md": "# shop\n",
            "src/app.py": "print('hello')\n",
            "src/pkg/__init__.py": "",
            "bin/run": "#!/bin/sh\necho run\n",
            ".gitignore": "build/\n*.log\n",
            "build/out.o": "ignored",
            "debug.log": "ignored",
        },
    )
    (root / "bin" / "run").chmod(0o755)
    (root / "private").mkdir(mode=0o700)
    (root / "empty").mkdir()
    (root / "link-inside").symlink_to("src/app.py")
    (root / "link-outside").symlink_to("/etc")  # synced as a link, never followed
    return root


def ignored(path: str) -> bool:
    return path.startswith("build") or path.endswith(".log")


def test_initial_sync_then_changes_then_nothing(workspace: Workspace, tmp_path: Path) -> None:
    root = local_tree(tmp_path / "shop")
    first = workspace.engine(root).sync()
    assert (first.files, first.links, first.deleted, first.refused) == (5, 2, 0, [])
    assert snapshot(root, ignored) == snapshot(workspace.path)
    assert os.readlink(workspace.path / "link-outside") == "/etc"
    assert not (workspace.path / "link-outside").is_dir() or (workspace.path / "link-outside").is_symlink()

    again = workspace.engine(root).sync()
    assert not again.changed and again.unchanged == len(snapshot(root, ignored))

    # Edits, a deletion, a mode change, a file that became a folder, and one "touched" only.
    (root / "src" / "app.py").write_text("print('changed')\n")
    (root / "README.md").unlink()
    (root / "src" / "pkg" / "__init__.py").chmod(0o600)
    (root / "empty").rmdir()
    write(root, {"empty": "now a file\n"})
    os.utime(root / ".gitignore", ns=(1, 1))  # same content: must not be sent
    (workspace.path / "build").mkdir()
    (workspace.path / "build" / "made-there.o").write_text("left alone: ignored\n")
    changed = workspace.engine(root).sync()
    assert (changed.files, changed.deleted) == (3, 2), changed
    assert snapshot(root, ignored) == snapshot(workspace.path, ignored)
    assert (workspace.path / "build" / "made-there.o").exists()


def test_changes_made_on_the_develop_server_are_kept_as_conflict_copies(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"notes.md": "v1\n", "same.txt": "same\n"})
    workspace.engine(root).sync()
    (workspace.path / "notes.md").write_text("edited on the server\n")
    (workspace.path / "report.csv").write_text("made by a run\n")  # never synced: stays, not a conflict
    (workspace.path / "same.txt").write_text("same\n")  # rewritten with the same content: no conflict
    (root / "notes.md").write_text("edited locally\n")

    preview = workspace.engine(root).sync(dry_run=True)
    assert sorted(c["path"] for c in preview.conflicts) == ["notes.md"]
    assert preview.left == ["report.csv"]
    assert not list(root.glob("*.remote-*")), "a dry run must not write anything"

    report = workspace.engine(root).sync()
    kept = {c["path"]: c["kept_as"] for c in report.conflicts}
    assert set(kept) == {"notes.md"} and report.left == ["report.csv"]
    assert (root / kept["notes.md"]).read_text() == "edited on the server\n"
    assert (workspace.path / "notes.md").read_text() == "edited locally\n"
    assert (workspace.path / "report.csv").read_text() == "made by a run\n"
    assert not (root / "report.csv").exists()
    assert snapshot(root) == {k: v for k, v in snapshot(workspace.path).items() if k != "report.csv"}
    status = local_status(root)  # what the TUI shows for this folder
    assert status is not None and status["conflicts"] == 1 and status["project"] == workspace.server.project
    assert workspace.engine(root).sync().conflicts == []
    assert local_status(root)["conflicts"] == 0  # type: ignore[index]
    assert local_status(tmp_path / "elsewhere") is None


def test_a_conflict_copy_finds_a_place_when_its_folder_is_a_local_file(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"made": "a local file\n"})
    (workspace.path / "made").mkdir()
    (workspace.path / "made" / "there.txt").write_text("written on the develop server\n")
    report = workspace.engine(root).sync()
    [conflict] = report.conflicts
    assert conflict["path"] == "made/there.txt" and conflict["kept_as"].startswith("made__there.txt.remote-")
    assert (root / conflict["kept_as"]).read_text() == "written on the develop server\n"
    assert snapshot(root) == snapshot(workspace.path)


def test_a_path_the_develop_server_refuses(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"pkg/a.py": "a\n", "pkg/b.py": "b\n", "other.txt": "o\n"})
    engine = workspace.engine(root)
    engine.sync()
    # On the develop server, pkg/ is swapped for a link to a folder outside the workspace.
    outside = tmp_path / "outside"
    outside.mkdir()
    for child in (workspace.path / "pkg").iterdir():
        child.unlink()
    (workspace.path / "pkg").rmdir()
    (workspace.path / "pkg").symlink_to(outside)
    write(root, {"pkg/a.py": "a2\n", "other.txt": "o2\n"})

    report = engine.push(["pkg/a.py", "other.txt"])  # what a watch sends, without a manifest check
    assert [r["path"] for r in report.refused] == ["pkg/a.py"]
    assert "outside the workspace" in report.refused[0]["message"]
    assert (workspace.path / "other.txt").read_text() == "o2\n", "the rest of the batch still goes"
    assert list(outside.iterdir()) == [], "nothing outside the workspace is ever written"

    full = workspace.engine(root).sync()  # the next full sync sees the link and puts things right
    assert [c["path"] for c in full.conflicts] == ["pkg"]
    assert snapshot(root) == snapshot(workspace.path) and list(outside.iterdir()) == []


def test_a_file_over_a_gigabyte_streams(workspace: Workspace, agent_stack: AgentStack, tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    size = 1_100_000_000
    with open(root / "sparse.bin", "wb") as out:
        out.truncate(size)  # sparse: no disk used locally, but every byte is sent
    (root / "small.txt").write_text("small\n")
    # The sync runs in its own process so its peak memory can be measured.
    script = (
        "import sys; from pathlib import Path\n"
        "from control.client import ControlClient\n"
        "from sync.engine import SyncEngine\n"
        "client = ControlClient(sys.argv[1], sys.argv[2])\n"
        "report = SyncEngine.open(client, int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])).sync()\n"
        "assert report.files == 2 and report.bytes > 1_000_000_000, report\n"
        "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])\n"
    )
    argv = [sys.executable, "-c", script, agent_stack.stack.url, agent_stack.stack.admin_token]
    argv += [str(workspace.server_id), str(workspace.server.workspace), str(root)]
    child = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert child.returncode == 0, child.stderr
    # The child's own VmHWM, not its rusage: at exec the kernel folds the RSS of the process that
    # forked it (this pytest process, which grows over a whole suite) into the child's ru_maxrss.
    client_peak = int(child.stdout.split()[-1])
    assert client_peak < 200 * 1024, f"the client peaked at {client_peak // 1024} MB"
    status_lines = Path(f"/proc/{workspace.pid()}/status").read_text().splitlines()
    server_peak = int(next(line for line in status_lines if line.startswith("VmHWM")).split()[1])
    assert server_peak < 300 * 1024, f"the develop server peaked at {server_peak // 1024} MB"
    remote = workspace.path / "sparse.bin"
    assert remote.stat().st_size == size
    with open(remote, "rb") as data:
        for offset in (0, size // 2, size - 4096):
            data.seek(offset)
            assert data.read(4096) == bytes(4096)
    remote.unlink()  # a gigabyte of zeros is not worth keeping


def test_the_develop_server_going_away_mid_sync(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "many"
    files = {f"part{i:03d}/blob.bin": os.urandom(512 * 1024) for i in range(120)}  # 60 MB, several requests
    write(root, files)
    pid = workspace.pid()

    def kill_when_some_arrived() -> None:
        wait_until(lambda: len(list(workspace.path.glob("part*/blob.bin"))) >= 10, message="the first files")
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_some_arrived)
    killer.start()
    with pytest.raises(DevserverUnavailable):
        workspace.engine(root).sync()
    killer.join()
    # No half-written file is visible: whatever arrived is complete.
    arrived = [p for p in workspace.path.glob("part*/blob.bin")]
    assert 10 <= len(arrived) < len(files)
    for path in arrived:
        assert path.read_bytes() == files[path.relative_to(workspace.path).as_posix()]

    wait_for_state(workspace.client, workspace.server_id, "running")  # the agent restarted it
    wait_until(lambda: _answers(workspace), message="the restarted develop server to answer")
    resumed = workspace.engine(root).sync()
    assert resumed.files <= len(files) - len(arrived) + 1, "what was confirmed is not sent again"
    # The file being written when the server died stays behind under its temporary name, which
    # no listing shows (and which is never mistaken for content).
    assert snapshot(root) == snapshot(workspace.path, lambda path: ".devyard-tmp-" in path)
    listed = workspace.client.devserver_call(workspace.server_id, "GET", "/files/manifest")["entries"]
    assert not [e for e in listed if ".devyard-tmp-" in e["path"]]


def _answers(workspace: Workspace) -> bool:
    try:
        return bool(workspace.client.devserver_call(workspace.server_id, "GET", "/health")["ok"])
    except Exception:
        return False


def test_a_changed_gitignore_is_honoured_at_the_next_sync(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"keep.txt": "k\n", "data/big.csv": "1,2\n", "sub/.gitignore": "", "sub/tmp.out": "o\n"})
    workspace.engine(root).sync()
    workspace.engine(root).sync()  # the second sync trusts what the first one sent
    # Newly ignored: the workspace copies are left alone (no longer managed), not deleted.
    write(root, {".gitignore": "*.csv\n", "sub/.gitignore": "*.out\n", "new.csv": "n\n"})
    report = workspace.engine(root).sync()
    assert report.deleted == 0 and (workspace.path / "data" / "big.csv").exists()
    assert not (workspace.path / "new.csv").exists()
    (workspace.path / "data" / "big.csv").write_text("changed there: not a conflict, it is ignored\n")
    (workspace.path / "sub" / "tmp.out").unlink()
    assert workspace.engine(root).sync().conflicts == []
    # Un-ignored again: sent again.
    (root / ".gitignore").write_text("")
    (root / "sub" / ".gitignore").unlink()
    again = workspace.engine(root).sync()
    assert {c["path"] for c in again.conflicts} == {"data/big.csv"}  # changed there since it was last sent
    assert (workspace.path / "new.csv").read_text() == "n\n"
    assert (workspace.path / "sub" / "tmp.out").read_text() == "o\n"


def test_timing_is_reported_and_a_no_change_sync_reads_nothing(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {f"f{i}.txt": f"{i}\n" * 100 for i in range(200)})
    workspace.engine(root).sync()
    time.sleep(2.1)  # files older than the racy window get their hashes remembered
    workspace.engine(root).sync()
    engine = workspace.engine(root)
    report = engine.sync()
    assert not report.changed and report.seconds > 0
    assert engine.state.hashes.misses == 0, "an unchanged tree must not be read again"


def clean_sync(workspace: Workspace, root: Path) -> None:
    """Sync until a sync finds nothing to do (and so leaves its snapshot)."""
    workspace.engine(root).sync()
    time.sleep(2.1)  # older than the racy window
    assert not workspace.engine(root).sync().changed


def test_a_no_change_sync_compares_stat_data_only(workspace: Workspace, tmp_path: Path) -> None:
    root = local_tree(tmp_path / "shop")
    clean_sync(workspace, root)
    engine = workspace.engine(root)
    report = engine.sync()
    assert not report.changed and report.unchanged == len(snapshot(root, ignored))
    assert "state" not in engine.__dict__ and "rules" not in engine.__dict__, "nothing but stat data was needed"

    (root / "src" / "app.py").write_text("print('edited after the clean sync')\n")
    (root / "build" / "more.o").write_text("ignored: never sent\n")
    changed = workspace.engine(root).sync()
    assert changed.files == 1
    assert (workspace.path / "src" / "app.py").read_text() == "print('edited after the clean sync')\n"
    assert not (workspace.path / "build").exists()


@pytest.mark.parametrize("change", ["edit", "create", "shell"])
def test_changes_on_the_develop_server_after_a_no_change_sync_are_conflicts(
    workspace: Workspace, tmp_path: Path, change: str
) -> None:
    root = tmp_path / "shop"
    write(root, {"notes.md": "v1\n", "src/deep/mod.py": "x = 1\n"})
    clean_sync(workspace, root)
    if change == "edit":
        (workspace.path / "src" / "deep" / "mod.py").write_text("x = 2  # on the server\n")
    elif change == "create":
        (workspace.path / "src" / "deep" / "made-by-a-run.txt").write_text("output\n")
        (root / "src" / "deep" / "made-by-a-run.txt").write_text("made here too\n")  # both made it: a conflict
    else:
        subprocess.run(["sh", "-c", "echo edited >> notes.md"], cwd=workspace.path, check=True)
    report = workspace.engine(root).sync()
    assert len(report.conflicts) == 1, report
    kept = root / report.conflicts[0]["kept_as"]
    assert kept.exists()
    assert snapshot(root) == snapshot(workspace.path)


def test_a_commit_after_a_no_change_sync_moves_the_workspace(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root, {"a.txt": "a\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], cwd=root, check=True)
    clean_sync(workspace, root)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "two"], cwd=root, check=True)
    report = workspace.engine(root).sync()
    assert report.git is not None and report.git.moved
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert report.git.head == head


def test_a_no_change_sync_never_says_unchanged_without_asking_the_develop_server(
    workspace: Workspace, tmp_path: Path
) -> None:
    root = tmp_path / "shop"
    write(root, {"a.txt": "a\n"})
    clean_sync(workspace, root)
    assert not workspace.engine(root).sync().changed
    workspace.client.stop_devserver(workspace.server_id)
    wait_for_state(workspace.client, workspace.server_id, "stopped")
    with pytest.raises(DevserverUnavailable):
        workspace.engine(root).sync()


def test_the_no_change_fast_path_through_a_linked_root_and_after_every_kind_of_change(
    workspace: Workspace, tmp_path: Path
) -> None:
    real = local_tree(tmp_path / "real")
    root = tmp_path / "linked"
    root.symlink_to(real)  # a synced folder reached through a link
    clean_sync(workspace, root)
    engine = workspace.engine(root)
    assert not engine.sync().changed and "state" not in engine.__dict__, "the fast path answered"

    (real / "src" / "new.py").write_text("created\n")
    assert workspace.engine(root).sync().files == 1
    clean_sync(workspace, root)
    (real / "src" / "new.py").unlink()
    assert workspace.engine(root).sync().deleted == 1
    clean_sync(workspace, root)
    (real / "bin" / "run").chmod(0o700)
    assert workspace.engine(root).sync().changed
    clean_sync(workspace, root)
    (real / "debug.log").unlink()
    (real / "debug.log").mkdir()  # an ignored path that changed kind: compared in full again
    assert not workspace.engine(root).sync().changed
    assert snapshot(real, ignored) == snapshot(workspace.path)


def test_what_tools_on_the_develop_server_mark_as_ignored_is_left_alone(workspace: Workspace, tmp_path: Path) -> None:
    # pytest, mypy and ruff put a .gitignore holding "*" in their cache folders; git in the
    # workspace ignores them, and so must a full sync: no conflict copies, nothing deleted.
    root = tmp_path / "shop"
    write(root, {"src/app.py": "print(1)\n", ".gitignore": "*.o\n"})
    workspace.engine(root).sync()
    made = {
        ".pytest_cache/.gitignore": "# Created by pytest automatically.\n*\n",
        ".pytest_cache/v/cache/nodeids": '["tests/test_app.py::test_it"]\n',
        "tools/.gitignore": "*.tmp\n!keep.tmp\n.gitignore\n",  # ignores itself: it counts
        "tools/scratch.tmp": "ignored there\n",
        "tools/keep.tmp": "not ignored: a conflict\n",
        "notes/.gitignore": "*.bak\n",  # does not ignore itself: work done there, like the rest
        "notes/draft.bak": "a conflict too\n",
        "out/result.o": "ignored by the local rules\n",
        "out/notes.txt": "made there, not ignored: a conflict\n",
    }
    write(workspace.path, made)

    report = workspace.engine(root).sync()
    # Made there and never synced: not conflicts either, left where they are and reported.
    assert report.conflicts == [] and report.left == ["notes", "out/notes.txt", "tools/keep.tmp"], report
    for path, content in made.items():
        assert (workspace.path / path).read_text() == content, f"{path} was touched"
    assert not any((root / top).exists() for top in (".pytest_cache", "notes", "out", "tools")), "nothing comes back"
    again = workspace.engine(root).sync()
    assert again.conflicts == [] and not again.changed, again

    # A rule file that changes is read again; what it no longer ignores is reported, not moved.
    (workspace.path / ".pytest_cache" / ".gitignore").write_text("nodeids\n.gitignore\n")
    (workspace.path / ".pytest_cache" / "v" / "cache" / "lastfailed").write_text("{}\n")
    third = workspace.engine(root).sync()
    assert third.conflicts == [] and any(path.startswith(".pytest_cache") for path in third.left), third
    assert (workspace.path / ".pytest_cache" / "v" / "cache" / "nodeids").exists()
    assert (workspace.path / ".pytest_cache" / "v" / "cache" / "lastfailed").exists()


def test_a_folder_a_tool_marks_still_loses_what_you_delete(workspace: Workspace, tmp_path: Path) -> None:
    # What the sync itself put in the workspace is ours: a workspace-only rule file (a tool's
    # "*" in a synced folder, or a committed one since removed with git rm) never keeps it there.
    root = tmp_path / "shop"
    write(root, {"src/a.py": "a\n", "src/b.py": "b\n", "vendor/.gitignore": "*\n", "vendor/lib.py": "lib\n"})
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-f", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    workspace.engine(root).sync()
    assert (workspace.path / "vendor" / "lib.py").exists()

    (workspace.path / "src" / ".gitignore").write_text("*\n")  # e.g. python -m venv src
    (root / "src" / "b.py").unlink()
    subprocess.run([*git, "rm", "-rq", "vendor"], check=True)
    subprocess.run([*git, "commit", "-qm", "two"], check=True)
    report = workspace.engine(root).sync()
    assert report.conflicts == [], report.conflicts
    assert not (workspace.path / "src" / "b.py").exists(), "deleted here, so deleted there"
    assert not (workspace.path / "vendor").exists(), "removed with git rm, rule file and all"
    assert (workspace.path / "src" / ".gitignore").exists(), "the tool's own marker is left alone"

    # A tracked file deleted here (not committed) goes there too, whatever a marker there says.
    (workspace.path / "src" / "a.py").write_text("a\n")
    (root / "src" / "a.py").unlink()
    workspace.engine(root).sync()
    assert not (workspace.path / "src" / "a.py").exists()
