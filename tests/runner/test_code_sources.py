"""Where a run's code comes from, end to end with real git: a bare repository over file:// and a
private one over HTTP (git http-backend behind a token), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import secrets
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from control.client import ApiError
from control.logformat import raw_output
from control.wire.runs import RunOut
from tests.services.gitserver import GitServer, Repo, git_server
from tests.stack import Stack, wait_for_run


@pytest.fixture
def gits(tmp_path: Path) -> Iterator[GitServer]:
    with git_server(tmp_path / "git-server") as server:
        yield server


def output(stack: Stack, run_id: int) -> str:
    with stack.client() as client:
        blob, _ = client.read_logs(run_id)
    return raw_output(blob).decode()


def run_to_end(stack: Stack, command: str, **fields: object) -> tuple[RunOut, str]:
    with stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", command], **fields)
        final = wait_for_run(client, run.id)
    return final, output(stack, run.id)


def test_a_deployment_environment_runs_a_fresh_checkout_of_its_branch(run_stack: Stack, gits: GitServer) -> None:
    repo = gits.create("shop", files={"VERSION": "one\n", "models/a.sql": "select 1\n"})
    first = repo.commit({"VERSION": "two\n"})
    with run_stack.client() as client:
        client.update_project("demo", repo_url=repo.file_url)
        client.create_environment("demo", "prod", kind="deployment")
    # Writes a file that must not be there for the next run: nothing survives from an earlier run.
    ran, log = run_to_end(
        run_stack,
        "cat VERSION; ls; test ! -e leftover && touch leftover && echo $DEVYARD_GIT_COMMIT",
        environment="prod",
    )
    assert ran.state == "succeeded", ran.error
    assert (ran.code_source, ran.code_ref, ran.code_commit) == ("repository", "main", first)
    assert ran.code_repo_url == repo.file_url
    assert log.splitlines()[0] == "two" and "models" in log and first in log
    assert ".git" not in log.split()  # the run's folder holds the commit's files and nothing else
    again, log = run_to_end(run_stack, "test ! -e leftover && cat VERSION", environment="prod")
    assert again.state == "succeeded" and log == "two\n"


def test_refs_branches_tags_commits_and_a_force_push(run_stack: Stack, gits: GitServer) -> None:
    repo = gits.create("shop", files={"VERSION": "v1\n"})
    v1 = repo.tag("v1.0")
    v2 = repo.commit({"VERSION": "v2\n"})
    feature = repo.commit({"VERSION": "feature\n"}, branch="feature")
    with run_stack.client() as client:
        client.update_project("demo", repo_url=repo.file_url, default_branch="main")
    for ref, commit, content in (
        ("v1.0", v1, "v1"),
        (v1, v1, "v1"),
        (v2[:10], v2, "v2"),
        ("feature", feature, "feature"),
    ):
        ran, log = run_to_end(run_stack, "cat VERSION", ref=ref)
        assert ran.state == "succeeded", (ref, ran.error)
        assert (ran.code_ref, ran.code_commit, log) == (ref, commit, content + "\n")
    # main is rewritten from nothing: the next run sees the new history, not the old tip.
    rewritten = repo.commit({"VERSION": "rewritten\n"}, force=True)
    ran, log = run_to_end(run_stack, "cat VERSION", ref="main")
    assert (ran.code_commit, log) == (rewritten, "rewritten\n")
    # The old tip is still a commit of the repository's history in the mirror; a missing branch is not.
    missing, log = run_to_end(run_stack, "true", ref="no-such-branch")
    assert missing.state == "failed" and log == ""
    assert missing.error == f"'no-such-branch' is not a branch, tag or commit of the repository {repo.file_url}."
    assert missing.code_commit is None


def test_a_retry_runs_the_same_commit_even_when_the_branch_moved(run_stack: Stack, gits: GitServer) -> None:
    repo = gits.create("shop", files={"VERSION": "first\n"})
    with run_stack.client() as client:
        client.update_project("demo", repo_url=repo.file_url)
    first = repo.commit({"VERSION": "asked\n"})
    # The first attempt pushes a new commit to main, then fails: its retry must not pick it up.
    work = shlex.quote(str(repo.work))
    push = f"git -C {work} -c user.name=t -c user.email=t@t commit -q --allow-empty -m moved && git -C {work} push -q origin main"
    with run_stack.client() as client:
        run = client.create_run(
            "demo",
            ["sh", "-c", f'cat VERSION; [ "$DEVYARD_ATTEMPT" = 1 ] && {{ {push}; exit 3; }}; exit 0'],
            max_retries=1,
        )
        failed = wait_for_run(client, run.id)
        retry = next(r for r in client.list_runs(limit=10).items if r.retry_of_id == run.id)
        retried = wait_for_run(client, retry.id)
    moved = repo.work and __import__("tests.services.gitserver", fromlist=["git"]).git(
        "rev-parse", "HEAD", cwd=repo.work
    )
    assert moved != first
    assert (failed.state, failed.code_commit) == ("failed", first)
    assert (retried.state, retried.code_commit, retried.attempt) == ("succeeded", first, 2)
    assert output(run_stack, retry.id) == "asked\n"


def test_the_rule_picks_a_code_source_or_says_why_it_cannot(run_stack: Stack, gits: GitServer) -> None:
    repo = gits.create("shop")
    with run_stack.client() as client:
        client.create_environment("demo", "prod", kind="deployment", branch="release")
        client.create_environment("demo", "dev")
        with pytest.raises(ApiError) as no_repo:
            client.create_run("demo", ["true"], environment="prod")
        assert no_repo.value.status == 409 and no_repo.value.code == "no_repository"
        assert "yard projects set demo --repo-url URL" in no_repo.value.message
        with pytest.raises(ApiError) as no_workspace:
            client.create_run("demo", ["true"], code="workspace")
        assert no_workspace.value.code == "no_workspace"
        assert no_workspace.value.message.startswith("You have no running develop server for project demo")
        bare = client.create_run("demo", ["true"], code="none", environment="prod")
        assert (bare.code_source, bare.code_ref) == ("none", None)
        plain = client.create_run("demo", ["true"])  # no repository, no develop server: an empty folder
        assert plain.code_source == "none"
        client.update_project("demo", repo_url=repo.file_url, default_branch="trunk")
        deploy = client.create_run("demo", ["true"], environment="prod")
        assert (deploy.code_source, deploy.code_ref) == ("repository", "release")
        develop = client.create_run("demo", ["true"], environment="dev")  # nobody's workspace runs: the default branch
        assert (develop.code_source, develop.code_ref) == ("repository", "trunk")
        with pytest.raises(ApiError) as both:
            client.create_run("demo", ["true"], code="none", ref="main")
        assert both.value.status == 422
        for run in (bare, plain, deploy, develop):
            wait_for_run(client, run.id)


def _everything_stored(stack: Stack) -> str:
    """Every row of every table, read raw (sealed columns stay sealed), as one text."""
    engine = stack.services.engine
    rows = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            rows += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    return "\n".join(rows)


def test_a_private_repository_over_http_with_a_token_and_with_a_wrong_one(
    run_stack: Stack, gits: GitServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    repo: Repo = gits.create("private-shop", private=True, files={"VERSION": "secret-code\n"})
    wrong = "wrongtok_" + secrets.token_hex(12)
    with run_stack.client() as client:
        client.update_project("demo", repo_url=repo.http_url, repo_secret="GIT_TOKEN")
        client.create_environment("demo", "prod", kind="deployment", secrets={"GIT_TOKEN": gits.token})
        client.create_environment("demo", "stale", kind="deployment", secrets={"GIT_TOKEN": wrong})
        client.create_environment("demo", "none", kind="deployment")
    good, log = run_to_end(run_stack, "cat VERSION", environment="prod")
    assert (good.state, log) == ("succeeded", "secret-code\n"), good.error
    refused, log = run_to_end(run_stack, "cat VERSION", environment="stale")
    assert refused.state == "failed" and log == ""
    assert refused.error == (
        f"The repository {repo.http_url} refused the credentials in secret GIT_TOKEN;"
        " check the token or deploy key and its access to the repository."
    )
    anonymous, _ = run_to_end(run_stack, "true", environment="none")
    assert (anonymous.error or "").startswith(f"The repository {repo.http_url} asks for credentials")
    # Neither token is anywhere: the run's log, the events, the API's answers, the database, the agent's log.
    with run_stack.client() as client:
        answers = json.dumps(
            [
                client.get_run(refused.id).model_dump(mode="json"),
                client.get_project("demo").model_dump(mode="json"),
                [e.model_dump(mode="json") for e in client.list_environments("demo")],
                [r.model_dump(mode="json") for r in client.list_runs(limit=50).items],
                client.list_audit().model_dump(mode="json"),
            ]
        )
        logs = "".join(output(run_stack, r) for r in (good.id, refused.id, anonymous.id))
    events = json.dumps([e.as_json() for e in run_stack.services.events._recent])
    stored = _everything_stored(run_stack)
    assert "refused the credentials" in events and "refused the credentials" in stored  # the places were looked at
    for token in (wrong, gits.token):
        for place, content in (("log", logs), ("events", events), ("API", answers), ("database", stored)):
            assert token not in content, f"a token is in the {place}"
        assert token not in caplog.text
    assert any(status == 401 for _, _, status in gits.requests)  # the server really refused
