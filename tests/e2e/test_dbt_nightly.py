"""The docs' nightly `dbt build` (docs/jobs.md), as written, against a real repository.

A tiny real dbt project (dbt-duckdb: a seed, two models, a test) is committed to a bare git
repository made here, on a `prod` branch whose `main` holds a model that does not compile (so a
run of the wrong branch fails). `yard up` runs on a fresh data dir; the example's lines are read
from docs/jobs.md and run with the `yard` CLI, with only the repository URL and the virtual
environment's folder replaced. The cron trigger is made due by moving the schedule's next fire
time into the past (the scheduler of `yard up` then fires it on its next cycle): no waiting for
02:30. dbt itself comes from a virtual environment of its own (DEVYARD_TEST_DBT_VENV, made by
.ci/run from the `dbt` extra; dbt's dependencies pin versions the dev tools cannot share).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from control.schedules.cron import fire_times
from tests.conftest import unavailable
from tests.services.gitserver import git_server
from tests.tui.test_cli import embedded, yard
from tests.waiting import wait_until

__all__ = ["embedded"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"
DOCUMENTED_URL = "https://git.example.com/acme/shop.git"
DOCUMENTED_VENV = "/opt/dbt-venv"

DBT_PROJECT: dict[str, str | bytes] = {
    "dbt_project.yml": (
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n"
        "seed-paths: [seeds]\nmodel-paths: [models]\ntarget-path: target\n"
    ),
    "profiles.yml": (
        "shop:\n  target: prod\n  outputs:\n    prod:\n      type: duckdb\n      path: warehouse.duckdb\n      threads: 1\n"
    ),
    "seeds/orders.csv": "id,customer,amount\n1,ann,12.5\n2,bob,7.0\n3,ann,3.25\n",
    "models/customer_totals.sql": "select customer, sum(amount) as total from {{ ref('orders') }} group by customer\n",
    "models/big_customers.sql": "select * from {{ ref('customer_totals') }} where total > 10\n",
    "models/schema.yml": (
        "version: 2\nmodels:\n  - name: customer_totals\n    columns:\n"
        "      - name: customer\n        data_tests: [not_null, unique]\n"
    ),
}


def dbt_venv() -> Path:
    configured = os.environ.get("DEVYARD_TEST_DBT_VENV")
    candidates = [Path(configured)] if configured else [Path(sys.prefix).parent / ".venv-dbt"]
    for venv in candidates:
        if (venv / "bin" / "dbt").exists():
            return venv
    unavailable("dbt", "no virtual environment with dbt (set DEVYARD_TEST_DBT_VENV; .ci/run makes one)")
    raise AssertionError("unreachable")


def documented_commands() -> list[list[str]]:
    """The lines of the nightly example in docs/jobs.md, as the shell would split them."""
    block = re.search(r"<!-- nightly-example[^>]*-->\s*```sh\n(.*?)```", DOCS.read_text(), re.S)
    assert block, "docs/jobs.md lost its nightly example"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def ok(*args: str) -> str:
    done = yard(*args, timeout=120)
    assert done.returncode == 0, f"yard {shlex.join(args)}: {done.stderr}{done.stdout}"
    return done.stdout


def nightly_runs() -> list[dict[str, Any]]:
    return list(json.loads(ok("runs", "ls", "--job", "nightly", "--json")))


def test_the_documented_nightly_dbt_build_runs_the_prod_branch(embedded: Path, tmp_path: Path) -> None:
    venv = dbt_venv()
    with git_server(tmp_path / "git") as server:
        repo = server.create("shop", files=DBT_PROJECT)
        prod = repo.commit({"README.md": "# shop, as deployed\n"}, branch="prod")
        # main moves on with a model that does not compile: only the prod branch builds.
        repo.commit({"models/broken.sql": "select * from {{ ref('no_such_model') }}\n"}, branch="main")

        for command in documented_commands():
            assert command[0] == "yard", command
            args = [
                arg.replace(DOCUMENTED_URL, repo.file_url).replace(DOCUMENTED_VENV, str(venv)) for arg in command[1:]
            ]
            ok(*args)

        # Make the 02:30 Berlin tick due: its next fire time is the one after yesterday's.
        engine = create_engine(f"sqlite:///{embedded / 'devyard.db'}")
        due = next(fire_times("30 2 * * *", "Europe/Berlin", datetime.now(UTC) - timedelta(days=1)))
        with engine.begin() as db:
            moved = db.execute(text("UPDATE schedules SET next_fire_at = :t WHERE name = 'nightly'"), {"t": due})
            assert moved.rowcount == 1
        engine.dispose()

        runs = wait_until(nightly_runs, timeout=30, message="the nightly schedule to fire")
        run_id = runs[0]["id"]

        def ended() -> dict[str, Any] | None:
            shown = json.loads(ok("runs", "show", str(run_id), "--json"))
            return shown if shown["state"] not in ("queued", "starting", "running") else None

        run = wait_until(ended, timeout=240, message="the nightly dbt build to end")
        log = yard("runs", "logs", str(run_id)).stdout
        assert run["state"] == "succeeded", f"{run['error']}\n{log[-3000:]}"
        assert run["trigger"] == "schedule" and run["job"] == "nightly" and run["environment"] == "prod"
        assert (run["code_source"], run["code_ref"], run["code_commit"]) == ("repository", "prod", prod)
        assert [(s["name"], s["state"], s["exit_code"]) for s in run["steps"]] == [
            ("deps", "succeeded", 0),
            ("build", "succeeded", 0),
        ]
        assert run["stop_signals"] == ["INT", "TERM"] and run["stop_grace_s"] == 60 and run["timeout_s"] == 7200
        assert "Completed successfully" in log

        # What dbt's --state needs: the newest good prod run's artifacts.
        state_dir = tmp_path / "prod-state"
        ok("runs", "artifacts", "--latest", "--job", "nightly", "--state", "succeeded", "--download", str(state_dir))
        results = json.loads((state_dir / "target" / "run_results.json").read_text())
        statuses = {r["unique_id"].split(".")[-1]: r["status"] for r in results["results"]}
        assert statuses["customer_totals"] == statuses["big_customers"] == "success"
        assert statuses["orders"] == "success" and "broken" not in statuses
        assert (state_dir / "target" / "manifest.json").exists()

        listed = json.loads(ok("jobs", "show", "nightly", "-p", "shop", "--json"))
        assert listed["last_run"]["id"] == run_id and listed["last_run"]["state"] == "succeeded"
        assert listed["next_fire_at"] is not None
