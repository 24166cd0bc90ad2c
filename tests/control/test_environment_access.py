"""Who may use an environment's secrets: admins, the project's owner, its members (maintainers
for protected environments), for develop servers, runs, schedules and watches alike, checked
when asked and again when an agent claims the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from control.client import ControlClient
from control.wire.runs import RunOut
from tests.compose.devserver_helpers import gateway_exec, start_and_wait, wait_for_state
from tests.stack import Stack, running_agent, running_stack, wait_for_run

SECRET = "Sup3rS3cretValue42"


def _setup(stack: Stack) -> dict[str, str]:
    """alice owns ashop (env prod, env vault protected); mia is a member, max a maintainer."""
    tokens = {"admin": stack.admin_token}
    for name, role in [("alice", "developer"), ("mia", "developer"), ("max", "developer"), ("bob", "developer")]:
        tokens[name] = stack.user(name, role)
    tokens["vic"] = stack.user("vic", "viewer")
    with stack.client(tokens["alice"]) as alice:
        alice.create_project("ashop")
        alice.create_environment("ashop", "prod", secrets={"DB_PASSWORD": SECRET})
        alice.create_environment("ashop", "vault", secrets={"DB_PASSWORD": SECRET}, protected=True)
        alice.set_member("ashop", "mia", "developer")
        alice.set_member("ashop", "max", "maintainer")
    return tokens


def _attempt(stack: Stack, token: str, action: str, env: str, n: int) -> httpx.Response:
    with httpx.Client(base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as http:
        if action == "devserver":
            response = http.post("/devservers", json={"project": "ashop", "environment": env})
            if response.status_code == 201:  # leave nothing pending for the next attempt
                assert http.post(f"/devservers/{response.json()['id']}/stop").status_code == 200
            return response
        if action == "schedule":
            body = {"name": f"s{n}", "project": "ashop", "environment": env, "cron": "0 3 * * *", "command": ["true"]}
            return http.post("/schedules", json=body)
        trigger = {"run": "api", "watch": "watch"}[action]
        run_body: dict[str, object] = {
            "project": "ashop",
            "environment": env,
            "command": ["true"],
            "trigger": trigger,
            "in_devserver": False,
        }
        return http.post("/runs", json=run_body)


# who → (actions allowed on prod, actions allowed on the protected vault)
EVERYTHING = {"devserver", "run", "schedule", "watch"}
MATRIX: dict[str, tuple[set[str], set[str]]] = {
    "admin": (EVERYTHING, EVERYTHING),
    "alice": (EVERYTHING, EVERYTHING),  # the owner
    # A schedule is a job's cron trigger: maintainers define jobs (docs/jobs.md), developers do not.
    "max": (EVERYTHING, EVERYTHING),
    "mia": (EVERYTHING - {"schedule"}, set()),
    "bob": (set(), set()),
    "vic": (set(), set()),
}


def test_the_whole_matrix_through_the_api(stack: Stack) -> None:
    tokens = _setup(stack)
    n = 0
    for who, (on_prod, on_vault) in MATRIX.items():
        for env, allowed in (("prod", on_prod), ("vault", on_vault)):
            for action in sorted(EVERYTHING):
                n += 1
                response = _attempt(stack, tokens[who], action, env, n)
                if action in allowed:
                    assert response.status_code == 201, (who, action, env, response.text)
                else:
                    assert response.status_code == 403, (who, action, env, response.text)
                    error = response.json()["error"]
                    assert error["code"] == "forbidden" and SECRET not in error["message"]
    with stack.client() as admin:
        runs = admin.list_runs().items
        users_with_runs = {r.user for r in runs}
    assert users_with_runs == {"admin", "alice", "max", "mia"}


def test_a_schedule_cannot_move_to_an_environment_its_author_may_not_use(stack: Stack) -> None:
    tokens = _setup(stack)
    with stack.client(tokens["alice"]) as alice:
        alice.create_schedule(name="nightly", project="ashop", cron="0 3 * * *", command=["true"])
    with stack.client() as admin:
        admin.create_user("carol", role="admin")
        admin.update_user("carol", role="developer")  # an admin's schedule outlives the role
    with httpx.Client(base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {tokens['bob']}"}) as bob:
        assert bob.patch("/schedules/nightly", json={"environment": "prod"}).status_code == 403


def _grant_and_run(client: ControlClient, env: str, command: list[str], **fields: Any) -> RunOut:
    run = client.create_run("ashop", command, environment=env, **fields)
    return wait_for_run(client, run.id)


def test_the_audit_reproduction_is_refused_and_members_get_the_secret(run_stack: Stack) -> None:
    """Bob (no member) tried a develop server with prod, then a run with prod in his own server."""
    tokens = _setup(run_stack)
    with run_stack.client(tokens["bob"]) as bob:
        with pytest.raises(Exception) as refused:
            bob.start_devserver("ashop", environment="prod")
        assert getattr(refused.value, "status", None) == 403
        assert "yard projects members add" in str(refused.value)
        server = start_and_wait(bob, "ashop")  # no environment: still his to have
        code, out, _ = gateway_exec(bob, server.id, ["sh", "-c", "echo x${DB_PASSWORD}x"])
        assert (code, out) == (0, b"xx\n")
        with pytest.raises(Exception) as refused:
            bob.create_run("ashop", ["sh", "-c", "echo $DB_PASSWORD | rev"], environment="prod", in_devserver=True)
        assert getattr(refused.value, "status", None) == 403
        bob.stop_devserver(server.id)
    with run_stack.client(tokens["mia"]) as mia:
        done = _grant_and_run(mia, "prod", ["sh", "-c", f'test "$DB_PASSWORD" = {SECRET}'], in_devserver=False)
        assert done.state == "succeeded", done


def test_access_is_checked_again_when_the_work_is_claimed(tmp_path: Path, database_url: str) -> None:
    """A run queued by a member who is removed before an agent claims it fails without its
    secrets; a develop server of a removed member is stopped; an ex-admin's schedule fires a
    run that fails."""
    with running_stack(tmp_path / "data", database_url, cancel_grace_s=1) as stack:
        tokens = _setup(stack)
        with stack.client() as admin:
            carol = admin.create_user("carol", role="admin").token
        with stack.client(carol) as client:
            client.create_schedule(
                name="vaulted",
                project="ashop",
                environment="vault",
                cron="0 3 * * *",
                command=["sh", "-c", "echo $DB_PASSWORD"],
            )
        with stack.client() as admin:
            admin.update_user("carol", role="developer")
        with stack.client(tokens["mia"]) as mia:
            queued = mia.create_run("ashop", ["sh", "-c", "echo $DB_PASSWORD"], environment="prod", in_devserver=False)
        with stack.client(tokens["alice"]) as alice:
            alice.remove_member("ashop", "mia")
            fired = alice.trigger_schedule("vaulted")
        with running_agent(stack, tmp_path / "agent"), stack.client() as admin:
            for run_id in (queued.id, fired.run_id):
                assert run_id is not None
                run = wait_for_run(admin, run_id)
                assert run.state == "failed" and "can only be used by" in str(run.error), run
                assert run.log_bytes == 0
            with stack.client(tokens["max"]) as max_client:
                server = start_and_wait(max_client, "ashop", environment="vault")
                code, out, _ = gateway_exec(max_client, server.id, ["sh", "-c", "echo $DB_PASSWORD"])
                assert (code, out.strip()) == (0, SECRET.encode())
                with stack.client(tokens["alice"]) as alice:
                    alice.set_member("ashop", "max", "developer")  # no longer allowed on vault
                assert wait_for_state(max_client, server.id, "stopped").state == "stopped"
                with pytest.raises(Exception) as refused:
                    max_client.start_devserver("ashop")  # a restart would keep the vault environment
                assert getattr(refused.value, "status", None) == 403
            assert [(m.user, m.role) for m in admin.list_members("ashop")] == [("max", "developer")]


def test_membership_is_managed_by_the_owner_or_an_admin(stack: Stack) -> None:
    tokens = _setup(stack)
    with httpx.Client(base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {tokens['mia']}"}) as mia:
        assert mia.put("/projects/ashop/members/bob", json={"role": "maintainer"}).status_code == 403
        assert mia.delete("/projects/ashop/members/max").status_code == 403
        assert mia.patch("/projects/ashop/environments/vault", json={"protected": False}).status_code == 403
        listed = mia.get("/projects/ashop/members").json()
        assert [(m["user"], m["role"]) for m in listed] == [("max", "maintainer"), ("mia", "developer")]
    with httpx.Client(base_url=stack.url + "/api/v1", headers={"Authorization": f"Bearer {tokens['alice']}"}) as alice:
        for user, expected in (("vic", 422), ("alice", 422), ("admin", 422), ("nobody", 404)):
            response = alice.put(f"/projects/ashop/members/{user}", json={})
            assert response.status_code == expected, (user, response.text)
            assert response.json()["error"]["message"].endswith(".")
        assert alice.put("/projects/ashop/members/bob", json={"role": "owner"}).status_code == 422
        assert alice.delete("/projects/ashop/members/bob").status_code == 404
    with stack.client() as admin:
        assert admin.set_member("ashop", "bob").role == "developer"
        actions = {e.action for e in admin.list_audit().items}
        assert {"project.member.set"} <= actions
        admin.delete_project("ashop")  # its members go with it
        admin.create_project("ashop")
        assert admin.list_members("ashop") == []
