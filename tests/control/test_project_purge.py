"""Deleting a project with its history (`?with_runs=true`), on SQLite and PostgreSQL: retries,
schedule ticks, log chunks and artifacts all go, objects after the rows."""

from __future__ import annotations

import pytest

from control.client import Conflict, NotFound
from tests.stack import Stack, wait_for_run


def test_a_project_with_runs_retries_and_schedules_is_deleted_with_them(run_stack: Stack) -> None:
    with run_stack.client() as admin:
        done = admin.create_run("demo", ["sh", "-c", "echo hi > out.txt"], artifacts=["out.txt"])
        retried = admin.create_run("demo", ["false"], max_retries=1)
        admin.create_schedule(name="nightly", project="demo", cron="0 3 * * *", command=["true"])
        fired = admin.trigger_schedule("nightly")
        for run_id in (done.id, retried.id, fired.run_id):
            assert run_id is not None
            wait_for_run(admin, run_id)
        runs = admin.list_runs(project="demo").items
        wait_for_run(admin, max(int(r.id) for r in runs))  # the retry
        assert any(r.retry_of_id == retried.id for r in admin.list_runs(project="demo").items)
        keys = [o.key for o in run_stack.services.store.list("runs/")]
        assert keys, "logs and the artifact are stored"

        with pytest.raises(Conflict) as plain:
            admin.delete_project("demo")
        assert plain.value.code == "has_history" and "--with-runs" in plain.value.message

        admin.delete_project("demo", with_runs=True)
        with pytest.raises(NotFound):
            admin.get_project("demo")
        assert admin.list_runs().items == []
        assert not admin.list_schedules()
        assert list(run_stack.services.store.list("runs/")) == []
        assert [e for e in admin.list_audit().items if e.action == "project.delete"]


def test_a_project_with_a_run_still_going_is_not_deleted(run_stack: Stack) -> None:
    with run_stack.client() as admin:
        going = admin.create_run("demo", ["sleep", "30"])
        wait_for_run(admin, int(going.id), states=("running",))
        with pytest.raises(Conflict) as refused:
            admin.delete_project("demo", with_runs=True)
        assert refused.value.code == "in_use" and f"({going.id})" in refused.value.message
        assert admin.get_run(int(going.id)).state == "running"
        admin.cancel_run(int(going.id))
        wait_for_run(admin, int(going.id))
