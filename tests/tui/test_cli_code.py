"""`yard projects set`, `yard envs set` and `yard run --ref|--workspace|--no-checkout` as a user
types them, against an embedded stack and a real git repository."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.gitserver import git_server
from tests.tui.test_cli import assert_one_sentence_error, embedded, yard

__all__ = ["embedded"]


def test_a_project_repository_environments_and_runs_of_a_ref(embedded: Path, tmp_path: Path) -> None:
    with git_server(tmp_path / "git") as server:
        repo = server.create("shop", files={"VERSION": "main\n"})
        tag = repo.tag("v1")
        repo.commit({"VERSION": "release\n"}, branch="release")
        assert yard("projects", "add", "shop").returncode == 0
        changed = yard("projects", "set", "shop", "--repo-url", repo.file_url, "--default-branch", "main")
        assert changed.returncode == 0, changed.stderr
        assert f"repo url: {repo.file_url}" in changed.stdout and "default branch: main" in changed.stdout
        leaky = yard("projects", "set", "shop", "--repo-url", "https://bot:hunter22@example.com/shop.git")
        assert_one_sentence_error(leaky, "contains a password or token")
        assert "hunter22" not in leaky.stderr
        assert yard("envs", "add", "shop", "prod").returncode == 0
        env = yard(
            "envs", "set", "shop", "prod", "--kind", "deployment", "--branch", "release", "--secret", "GIT_TOKEN=s3cr3t-value",
            "--image", "python:3.11", "--resource", "cpus=2", "--resource", "memory_mb=512",
        )  # fmt: skip
        assert env.returncode == 0, env.stderr
        assert "deployment environment, runs branch release" in env.stdout and "secrets: GIT_TOKEN" in env.stdout
        shown = json.loads(yard("envs", "show", "shop", "prod", "--json").stdout)
        assert (shown["kind"], shown["branch"], shown["image"]) == ("deployment", "release", "python:3.11")
        assert shown["resources"] == {"cpus": 2.0, "memory_mb": 512} and shown["secret_names"] == ["GIT_TOKEN"]
        assert "s3cr3t-value" not in json.dumps(shown)
        assert_one_sentence_error(yard("envs", "set", "shop", "prod", "--kind", "staging"), "deployment or development")

        deployed = yard("run", "-p", "shop", "-e", "prod", "--", "cat", "VERSION")
        assert (deployed.returncode, deployed.stdout) == (0, "release\n"), deployed.stderr
        tagged = yard("run", "-p", "shop", "--ref", "v1", "--", "cat", "VERSION")
        assert (tagged.returncode, tagged.stdout) == (0, "main\n"), tagged.stderr
        runs = json.loads(yard("runs", "ls", "--json").stdout)
        shown_run = yard("runs", "show", str(runs[0]["id"]))
        assert "repository" in shown_run.stdout and tag in shown_run.stdout and "v1" in shown_run.stdout
        empty = yard("run", "-p", "shop", "-e", "prod", "--no-checkout", "--", "sh", "-c", "ls -A | wc -l")
        assert (empty.returncode, empty.stdout.strip()) == (0, "0")
        assert_one_sentence_error(
            yard("run", "-p", "shop", "--workspace", "--", "true"), "no running develop server for project shop"
        )
        missing = yard("run", "-p", "shop", "--ref", "nope", "--", "true")
        assert missing.returncode != 0
        assert f"'nope' is not a branch, tag or commit of the repository {repo.file_url}" in " ".join(
            missing.stderr.split()
        )
