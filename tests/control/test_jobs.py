"""Jobs over the real API: definitions, who may change them, runs of them, cron and chained triggers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from control.client import ApiError, Conflict, Forbidden, NotFound
from control.db.tables import Run, Schedule
from control.schedules.scheduler import Scheduler
from control.schedules.ticks import first_fire_after
from tests.stack import Stack, running_agent, running_stack, wait_for_run


@pytest.fixture
def jobs_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """A control API without an agent: runs stay queued unless a test ends them."""
    with running_stack(tmp_path / "data", database_url, cleanup_interval_s=1e9) as running:
        with running.client() as admin:
            admin.create_project("demo")
            admin.create_environment("demo", "prod")
        yield running


def scheduler(stack: Stack) -> Scheduler:
    return Scheduler(stack.services.engine, stack.services.store, stack.settings)


def step(*command: str, name: str | None = None) -> dict[str, Any]:
    return {"command": list(command), **({"name": name} if name else {})}


def test_a_job_is_defined_shown_changed_and_removed(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        created = client.create_job(
            "demo",
            "nightly",
            environment="prod",
            steps=[step("dbt", "deps"), step("dbt", "build", name="build")],
            artifacts=["target/run_results.json"],
            timeout_s=600,
            max_retries=1,
            stop_signals=["INT", "TERM"],
            stop_grace_s=30,
            triggers=[{"kind": "cron", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}],
        )
        assert [s.name for s in created.steps] == ["dbt deps", "build"]
        assert created.environment == "prod" and created.user == "admin" and created.stop_signals == ["INT", "TERM"]
        (cron,) = created.triggers
        assert cron.kind == "cron" and cron.schedule == "nightly" and cron.summary == "cron 30 2 * * * (Europe/Berlin)"
        assert created.next_fire_at is not None and created.next_fire_at == cron.next_fire_at
        assert created.next_fire_at.astimezone(UTC).minute == 30 and created.last_run is None
        # The cron trigger is a schedule: `yard schedule` sees it and says whose it is.
        schedule = client.get_schedule("nightly")
        assert schedule.job == "nightly" and schedule.command == ["dbt", "deps"] and schedule.environment == "prod"

        changed = client.update_job("demo", "nightly", timeout_s=None, steps=[step("dbt", "build")], triggers=[])
        assert changed.timeout_s is None and len(changed.steps) == 1 and changed.triggers == []
        assert changed.next_fire_at is None and changed.stop_signals == ["INT", "TERM"]
        with pytest.raises(NotFound):
            client.get_schedule("nightly")
        assert [j.name for j in client.list_jobs(project="demo")] == ["nightly"]
        client.delete_job("demo", "nightly")
        with pytest.raises(NotFound, match="Job nightly does not exist in project demo"):
            client.get_job("demo", "nightly")


def test_bad_definitions_are_refused_with_one_sentence(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        ok = {"steps": [step("true")]}
        with pytest.raises(ApiError, match="is not a valid cron expression"):
            client.create_job("demo", "x", **ok, triggers=[{"kind": "cron", "cron": "61 * * * *"}])
        with pytest.raises(ApiError, match="at most one cron trigger"):
            client.create_job(
                "demo",
                "x",
                **ok,
                triggers=[{"kind": "cron", "cron": "0 1 * * *"}, {"kind": "cron", "cron": "0 2 * * *"}],
            )
        with pytest.raises(ApiError, match="Job ghost does not exist in this project"):
            client.create_job("demo", "x", **ok, triggers=[{"kind": "job", "job": "ghost"}])
        with pytest.raises(ApiError, match="must stay inside the working directory"):
            client.create_job("demo", "x", **ok, artifacts=["../secrets"])
        with pytest.raises(ApiError, match=r"steps\.0\.command: the command is empty"):
            client.create_job("demo", "x", steps=[step("")])
        with pytest.raises(ApiError, match="KILL is always sent after the last grace period"):
            client.create_job("demo", "x", **ok, stop_signals=["KILL"])
        with pytest.raises(NotFound, match="Environment demo/nope does not exist"):
            client.create_job("demo", "x", **ok, environment="nope")
        with pytest.raises(NotFound, match="Project nope does not exist"):
            client.create_job("nope", "x", **ok)
        client.create_job("demo", "x", **ok)
        with pytest.raises(Conflict, match="Job x already exists in project demo"):
            client.create_job("demo", "x", **ok)
        with pytest.raises(ApiError, match="cannot be null"):
            client.update_job("demo", "x", steps=None)
        # Nothing half-made was left by the refusals.
        assert [j.name for j in client.list_jobs()] == ["x"]


def test_chains_that_would_loop_are_refused_and_followed_jobs_cannot_go(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        client.create_job("demo", "a", steps=[step("true")])
        client.create_job("demo", "b", steps=[step("true")], triggers=[{"kind": "job", "job": "a"}])
        client.create_job(
            "demo", "c", steps=[step("true")], triggers=[{"kind": "job", "job": "b", "states": ["failed"]}]
        )
        with pytest.raises(ApiError, match="Job a cannot run after c: c already runs after a, which would loop"):
            client.update_job("demo", "a", triggers=[{"kind": "job", "job": "c"}])
        with pytest.raises(ApiError, match="would loop"):
            client.update_job("demo", "a", triggers=[{"kind": "job", "job": "a"}])
        with pytest.raises(Conflict, match="Job a starts job b when it ends"):
            client.delete_job("demo", "a")
        assert [t.summary for t in client.get_job("demo", "c").triggers] == ["after job b failed"]


def test_only_owners_maintainers_and_admins_define_jobs_members_run_them(jobs_stack: Stack) -> None:
    dev = jobs_stack.user("dev", "developer")
    lead = jobs_stack.user("lead", "developer")
    outsider = jobs_stack.user("outsider", "developer")
    with jobs_stack.client() as admin:
        admin.set_member("demo", "dev", "developer")
        admin.set_member("demo", "lead", "maintainer")
        admin.create_job("demo", "check", steps=[step("true")])
    with jobs_stack.client(dev) as client:
        with pytest.raises(Forbidden, match="its maintainers or an admin can define its jobs"):
            client.create_job("demo", "mine", steps=[step("true")])
        with pytest.raises(Forbidden):
            client.update_job("demo", "check", max_retries=2)
        run = client.run_job("demo", "check", trigger="manual")
        assert run.job == "check" and run.user == "dev" and run.trigger == "manual"
    with jobs_stack.client(lead) as client:
        assert client.create_job("demo", "lead-job", steps=[step("true")]).user == "lead"
    with jobs_stack.client(outsider) as client:
        assert [j.name for j in client.list_jobs(project="demo")] == ["check", "lead-job"]  # readers see them
        with pytest.raises(Forbidden, match="its members or an admin can run its jobs"):
            client.run_job("demo", "check")


def test_runs_of_a_job_record_it_and_are_listed_by_it(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        client.create_job(
            "demo", "build", environment="prod", steps=[step("make", "all")], artifacts=["out/*.txt"], timeout_s=60
        )
        first = client.run_job("demo", "build", idempotency_key="k1")
        again = client.run_job("demo", "build", idempotency_key="k1")
        assert again.id == first.id
        assert first.job == "build" and first.command == ["make", "all"] and first.environment == "prod"
        assert first.artifact_globs == ["out/*.txt"] and first.timeout_s == 60 and first.trigger_info["job"] == "build"
        client.create_run("demo", ["echo", "not a job"])
        listed = client.list_runs(job="build").items
        assert [r.id for r in listed] == [first.id] and listed[0].job == "build"
        assert client.get_run(first.id).job == "build"
        assert client.get_job("demo", "build").last_run is not None
        with pytest.raises(NotFound, match="Job nope does not exist"):
            client.list_runs(job="nope")


def test_a_cron_trigger_fires_a_run_of_the_job(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        client.create_job(
            "demo",
            "hourly",
            steps=[step("echo", "tick")],
            max_retries=2,
            triggers=[{"kind": "cron", "cron": "0 * * * *"}],
        )
    with Session(jobs_stack.services.engine) as session:
        schedule = session.exec(select(Schedule).where(Schedule.name == "hourly")).one()
        schedule.next_fire_at = first_fire_after(schedule, datetime(2030, 1, 1, 0, 30, tzinfo=UTC))
        session.add(schedule)
        session.commit()
    report = scheduler(jobs_stack).run_once(datetime(2030, 1, 1, 1, 0, 5, tzinfo=UTC))
    (tick,) = report.fired
    assert tick.run is not None and tick.run.job == "hourly" and tick.run.trigger == "schedule"
    assert tick.run.command == ["echo", "tick"] and tick.run.max_retries == 2


def test_a_project_with_jobs_is_deleted_only_with_its_history(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        client.create_project("gone")
        client.create_job("gone", "j", steps=[step("true")], triggers=[{"kind": "cron", "cron": "0 * * * *"}])
        with pytest.raises(Conflict, match="still has jobs"):
            client.delete_project("gone")
        client.delete_project("gone", with_runs=True)
        assert client.list_jobs() == [] and client.list_schedules() == []


@pytest.fixture
def chain_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    with (
        running_stack(tmp_path / "data", database_url, cleanup_interval_s=1e9) as running,
        running_agent(running, tmp_path / "agent"),
    ):
        with running.client() as admin:
            admin.create_project("demo")
        yield running


def test_a_job_runs_after_another_ends_in_the_state_it_waits_for(chain_stack: Stack) -> None:
    with chain_stack.client() as client:
        client.create_job("demo", "load", steps=[step("sh", "-c", "exit ${FAIL:-0}")])
        client.create_job(
            "demo", "transform", steps=[step("echo", "transform")], triggers=[{"kind": "job", "job": "load"}]
        )
        client.create_job(
            "demo",
            "alert",
            steps=[step("echo", "alert")],
            triggers=[{"kind": "job", "job": "load", "states": ["failed"]}],
        )
        ticker = scheduler(chain_stack)
        load = client.run_job("demo", "load")
        assert ticker.run_once().chained == []  # still going: nothing follows yet
        assert wait_for_run(client, load.id).state == "succeeded"
        report = ticker.run_once()
        (follower,) = report.chained
        assert follower.job == "transform" and follower.trigger == "job"
        assert follower.trigger_info == {
            "job": "transform",
            "after_job": "load",
            "after_run": load.id,
            "after_state": "succeeded",
        }
        assert ticker.run_once().chained == []  # each end starts its followers once
        assert wait_for_run(client, follower.id).state == "succeeded"
        assert ticker.run_once().chained == []  # transform has no followers


def test_only_the_last_attempt_of_a_retried_run_starts_followers(chain_stack: Stack) -> None:
    with chain_stack.client() as client:
        client.create_job("demo", "flaky", steps=[step("false")], max_retries=1)
        client.create_job(
            "demo", "cleanup", steps=[step("true")], triggers=[{"kind": "job", "job": "flaky", "states": ["failed"]}]
        )
        ticker = scheduler(chain_stack)
        first = client.run_job("demo", "flaky")
        assert wait_for_run(client, first.id).state == "failed"
        assert ticker.run_once().chained == []  # its retry decides
        with Session(chain_stack.services.engine) as session:
            retry_id = session.exec(select(Run.id).where(Run.retry_of_id == first.id)).one()
        assert retry_id is not None
        assert wait_for_run(client, retry_id).state == "failed"
        (follower,) = ticker.run_once().chained
        assert follower.job == "cleanup" and follower.trigger_info["after_run"] == retry_id
        with Session(chain_stack.services.engine) as session:
            runs = session.exec(select(Run).where(col(Run.job_id).is_not(None)).order_by(col(Run.id))).all()
        assert [r.id for r in runs][-1] == follower.id and len(runs) == 3


def test_a_cancelled_queued_run_starts_the_jobs_waiting_for_cancelled(jobs_stack: Stack) -> None:
    with jobs_stack.client() as client:
        client.create_job("demo", "main", steps=[step("true")])
        client.create_job(
            "demo",
            "on-cancel",
            steps=[step("true")],
            triggers=[{"kind": "job", "job": "main", "states": ["cancelled"]}],
        )
        run = client.run_job("demo", "main")
        assert client.cancel_run(run.id).state == "cancelled"
        later = datetime.now(UTC) + timedelta(seconds=1)
        (follower,) = scheduler(jobs_stack).run_once(later).chained
        assert follower.job == "on-cancel" and follower.trigger_info["after_state"] == "cancelled"


def test_a_job_of_several_steps_runs_them_in_one_folder_and_keeps_its_artifacts(chain_stack: Stack) -> None:
    with chain_stack.client() as client:
        client.create_job(
            "demo",
            "build",
            steps=[step("sh", "-c", "echo one > a.txt", name="first"), step("sh", "-c", "cat a.txt > b.txt")],
            artifacts=["*.txt"],
            stop_signals=["int", "SIGTERM"],
            stop_grace_s=2.5,
        )
        client.create_job("demo", "other", steps=[step("sh", "-c", "echo x > c.txt")], artifacts=["*.txt"])
        run = client.run_job("demo", "build")
        assert [s.name for s in run.steps] == ["first", "sh -c"] and run.command == []
        assert run.stop_signals == ["INT", "TERM"] and run.stop_grace_s == 2.5
        done = wait_for_run(client, run.id)
        assert done.state == "succeeded" and [s.state for s in done.steps] == ["succeeded", "succeeded"]
        other = client.run_job("demo", "other")
        assert wait_for_run(client, other.id).state == "succeeded"
        # The newest run of *this* job, not the newest run: what dbt's --state needs.
        latest = client.latest_artifacts(project="demo", job="build", state=["succeeded"])
        assert latest.run.id == run.id and latest.run.job == "build"
        assert [a.path for a in latest.artifacts] == ["a.txt", "b.txt"]
        assert client.latest_run(job="other").id == other.id
        with pytest.raises(NotFound, match="Job ghost does not exist"):
            client.latest_artifacts(job="ghost")
