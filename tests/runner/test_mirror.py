"""The mirror on the volume: its lock excludes other processes, racing fetches leave it sound, a
killed fetch's lock files do not block the next, and two agents on one queue share one mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from control.wire.code import CodeSpec
from runner import mirror as mirrors
from runner.checkout import check_out
from runner.gitcommand import CheckoutFailed
from tests.services.gitserver import GitServer, git, git_server
from tests.stack import Stack, running_agent, wait_for_run
from tests.waiting import wait_until

CHECKOUT = """
import json, sys
from pathlib import Path
from control.wire.code import CodeSpec
from runner.checkout import check_out
spec = CodeSpec.model_validate_json(sys.argv[1])
done = check_out(spec, {"GIT_TOKEN": sys.argv[5]}, Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
print(json.dumps({"commit": done.commit, "fetched": done.fetched}))
"""


@pytest.fixture
def gits(tmp_path: Path) -> Iterator[GitServer]:
    with git_server(tmp_path / "git-server") as server:
        yield server


def test_the_lock_excludes_another_process(tmp_path: Path) -> None:
    lock = tmp_path / "git" / "7-abc.lock"
    probe = (
        "import sys\nfrom pathlib import Path\nfrom runner import mirror\nfrom runner.gitcommand import CheckoutFailed\n"
        "try:\n    with mirror.locked(Path(sys.argv[1]), wait_s=0.3): print('got it')\n"
        "except CheckoutFailed as exc: print(exc)\n"
    )
    with mirrors.locked(lock):
        held = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True, text=True, check=True)
    assert held.stdout.strip() == "The repository mirror 7-abc.git stayed locked by another fetch for 0 s."
    free = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True, text=True, check=True)
    assert free.stdout.strip() == "got it"


def test_processes_racing_on_one_new_mirror_all_get_the_commit(gits: GitServer, tmp_path: Path) -> None:
    repo = gits.create("race", private=True, files={f"f{i}.txt": f"{i}\n" for i in range(200)})
    tip = repo.commit({"VERSION": "raced\n"})
    volume = tmp_path / "volume"
    spec = CodeSpec(
        source="repository", repo_url=repo.http_url, ref="main", credential_secret="GIT_TOKEN", mirror="1-race"
    )
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHECKOUT,
                spec.model_dump_json(),
                str(volume),
                str(volume / f"runs/{i}"),
                str(tmp_path / f"scratch{i}"),
                gits.token,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = [r.communicate(timeout=120) for r in racers]
    assert all(r.returncode == 0 for r in racers), [err for _, err in results]
    assert {json.loads(out)["commit"] for out, _ in results} == {tip}
    for i in range(6):
        assert (volume / f"runs/{i}/VERSION").read_text() == "raced\n"
        assert len(list((volume / f"runs/{i}").iterdir())) == 201  # VERSION, f0..f199
    mirror = volume / "git" / "1-race.git"
    assert git("--git-dir", str(mirror), "fsck", "--strict", "--no-dangling") == ""
    assert git("--git-dir", str(mirror), "config", "gc.auto") == "0"


def test_a_killed_fetch_leaves_lock_files_that_do_not_block_the_next(gits: GitServer, tmp_path: Path) -> None:
    repo = gits.create("shop")
    volume = tmp_path / "volume"
    spec = CodeSpec(source="repository", repo_url=repo.file_url, ref="main", mirror="1-shop")
    check_out(spec, {}, volume, volume / "runs/1", tmp_path / "s1")
    mirror = volume / "git" / "1-shop.git"
    # What a fetch killed in the middle of a ref update leaves behind (git would refuse to go on).
    (mirror / "refs" / "heads" / "main.lock").write_text("")
    (mirror / "packed-refs.lock").write_text("")
    newer = repo.commit({"VERSION": "2\n"})
    assert check_out(spec, {}, volume, volume / "runs/2", tmp_path / "s2").commit == newer
    assert not (mirror / "refs" / "heads" / "main.lock").exists()


def test_a_known_commit_is_checked_out_without_asking_the_server(gits: GitServer, tmp_path: Path) -> None:
    repo = gits.create("shop", private=True)
    volume = tmp_path / "volume"
    spec = CodeSpec(source="repository", repo_url=repo.http_url, ref="main", credential_secret="T", mirror="1-shop")
    first = check_out(spec, {"T": gits.token}, volume, volume / "runs/1", tmp_path / "s1")
    asked = len(gits.requests)
    again = check_out(spec.model_copy(update={"commit": first.commit}), {}, volume, volume / "runs/2", tmp_path / "s2")
    assert (again.commit, again.fetched, len(gits.requests)) == (first.commit, False, asked)
    with pytest.raises(CheckoutFailed) as not_empty:  # a checkout never goes over anything
        check_out(spec.model_copy(update={"commit": first.commit}), {}, volume, volume / "runs/2", tmp_path / "s3")
    assert "is not empty" in str(not_empty.value)


def test_two_agents_on_one_queue_share_one_mirror(stack: Stack, gits: GitServer, tmp_path: Path) -> None:
    repo = gits.create("shop", files={"VERSION": "v1\n"})
    with stack.client() as admin:
        admin.create_project("demo", repo_url=repo.file_url)
    with ExitStack() as agents:
        first = agents.enter_context(running_agent(stack, tmp_path / "a", name="agent-a"))
        second = agents.enter_context(running_agent(stack, tmp_path / "b", name="agent-b"))
        # One volume (so one mirror) for both, each its own spool: two agents of one deployment.
        second.config.volume = first.config.volume
        tip = repo.commit({"VERSION": "v2\n"})
        with stack.client() as admin:
            runs = [
                admin.create_run("demo", ["sh", "-c", "cat VERSION; echo $DEVYARD_RUN_ID > mine"]) for _ in range(8)
            ]
            finals = [wait_for_run(admin, run.id, timeout=60) for run in runs]
            logs = [admin.read_logs(run.id)[0] for run in runs]
    assert [(f.state, f.code_commit) for f in finals] == [("succeeded", tip)] * 8
    from control.logformat import raw_output

    assert {raw_output(log) for log in logs} == {b"v2\n"}
    made = [m for m in os.listdir(first.config.volume / "git") if m.endswith(".git")]
    assert len(made) == 1  # one mirror per project and repository, shared by both agents
    assert git("--git-dir", str(first.config.volume / "git" / made[0]), "fsck", "--strict", "--no-dangling") == ""
    assert {f.agent_id for f in finals} <= {first.agent_id, second.agent_id}


def test_a_commit_no_branch_reaches_and_a_pull_request_ref(gits: GitServer, tmp_path: Path) -> None:
    """What a webhook's run asks for: a pull request's head, by commit or by its forge ref."""
    repo = gits.create("shop", private=True)
    head = repo.commit({"VERSION": "pr\n"}, branch="contributor")
    repo.push_ref("refs/pull/7/head", head)
    repo.delete_branch("contributor")  # only refs/pull/7/head reaches it now, and no branch or tag
    volume = tmp_path / "volume"
    secrets = {"T": gits.token}
    spec = CodeSpec(source="repository", repo_url=repo.http_url, ref=head, credential_secret="T", mirror="1-shop")
    assert check_out(spec, secrets, volume, volume / "runs/1", tmp_path / "s1").commit == head
    assert (volume / "runs/1/VERSION").read_text() == "pr\n"
    by_ref = spec.model_copy(update={"ref": "refs/pull/7/head", "mirror": "2-shop"})
    assert check_out(by_ref, secrets, volume, volume / "runs/2", tmp_path / "s2").commit == head


def test_a_run_cancelled_while_its_code_is_fetched_ends_cancelled(run_stack: Stack, gits: GitServer) -> None:
    repo = gits.create("slow", private=True)
    with run_stack.client() as client:
        client.update_project("demo", repo_url=repo.http_url, repo_secret="GIT_TOKEN")
        client.create_environment("demo", "prod", kind="deployment", secrets={"GIT_TOKEN": gits.token})
        gits.gate = threading.Event()  # the server holds every request until the test lets go
        run = client.create_run("demo", ["sh", "-c", "echo never"], environment="prod")
        wait_until(lambda: gits.waiting > 0, timeout=30, message="the agent's fetch to reach the server")
        client.cancel_run(run.id)
        # The agent took the cancel (it reports it done after noting it) while the fetch still waits.
        wait_until(lambda: _cancel_taken(run_stack, run.id), timeout=30, message="the agent to take the cancel")
        gits.gate.set()
        final = wait_for_run(client, run.id)
        log, _ = client.read_logs(run.id)
    assert final.state == "cancelled" and log == b""
    assert final.error == f"Run {run.id} was cancelled before its command started."


def _cancel_taken(stack: Stack, run_id: int) -> bool:
    from sqlmodel import Session, select

    from control.db.tables import WorkItem

    with Session(stack.services.engine) as session:
        item = session.exec(select(WorkItem).where(WorkItem.run_id == run_id, WorkItem.kind == "cancel")).first()
        return item is not None and item.state == "done"
