"""Every endpoint of the control API, written once for both clients (see :mod:`control.client.calls`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from control.client.calls import Call, call, endpoint, no_content, untyped
from control.wire.devservers import AdoptedDevServer, DevServerOut
from control.wire.hooks import HookCreated, HookDeliveryOut, HookOut
from control.wire.jobs import JobOut
from control.wire.notifications import DeliveryOut, NotificationCreated, NotificationOut
from control.wire.ports import ListeningPort, PreviewIssued, PreviewOut
from control.wire.resources import (
    AuditOut,
    EnvironmentOut,
    Health,
    Me,
    MemberOut,
    Page,
    ProjectOut,
    Status,
    TokenIssued,
    TokenOut,
    UserCreated,
    UserOut,
)
from control.wire.runs import ArtifactOut, LatestArtifacts, RunOut
from control.wire.schedules import ScheduleOut, TickFired, TickOut
from control.wire.sso import DeviceAuthorization, TokenGrant
from control.wire.work import AgentOut, LaunchReported, WorkBatch


def _page(limit: int | None, cursor: str | None, **extra: Any) -> dict[str, Any]:
    params = {"limit": limit, "cursor": cursor, **extra}
    return {k: v for k, v in params.items() if v is not None and v is not False}


class Endpoints:
    """The calls both clients offer; each answers with its wire model."""

    # health and identity
    @endpoint
    def health(self) -> Call[Health]:
        return call("GET", "/health", Health)

    @endpoint
    def status(self) -> Call[Status]:
        return call("GET", "/status", Status)

    @endpoint
    def me(self) -> Call[Me]:
        return call("GET", "/me", Me)

    # single sign-on (the device authorization grant; public endpoints)
    @endpoint
    def start_device_login(self, client_name: str = "yard") -> Call[DeviceAuthorization]:
        return call("POST", "/auth/device", DeviceAuthorization, json={"client_name": client_name})

    @endpoint
    def grant_token(
        self, grant_type: str, device_code: str | None = None, refresh_token: str | None = None
    ) -> Call[TokenGrant]:
        body = {"grant_type": grant_type, "device_code": device_code, "refresh_token": refresh_token}
        return call("POST", "/auth/token", TokenGrant, json={k: v for k, v in body.items() if v is not None})

    # users
    @endpoint
    def list_users(self, limit: int | None = None, cursor: str | None = None) -> Call[Page[UserOut]]:
        return call("GET", "/users", Page[UserOut], params=_page(limit, cursor))

    @endpoint
    def get_user(self, name: str) -> Call[UserOut]:
        return call("GET", f"/users/{name}", UserOut)

    @endpoint
    def create_user(
        self,
        name: str,
        role: str = "developer",
        email: str | None = None,
        issue_token: bool = True,
        sso_subject: str | None = None,
    ) -> Call[UserCreated]:
        body = {"name": name, "role": role, "email": email, "issue_token": issue_token, "sso_subject": sso_subject}
        return call("POST", "/users", UserCreated, json={k: v for k, v in body.items() if v is not None})

    @endpoint
    def update_user(self, /, name: str, **changes: Any) -> Call[UserOut]:
        return call("PATCH", f"/users/{name}", UserOut, json=changes)

    # tokens
    @endpoint
    def list_tokens(
        self, user: str | None = None, all: bool = False, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[TokenOut]]:
        return call("GET", "/tokens", Page[TokenOut], params=_page(limit, cursor, user=user, all=all))

    @endpoint
    def create_token(
        self, name: str = "cli", user: str | None = None, expires_in_days: int | None = None
    ) -> Call[TokenIssued]:
        body = {"name": name, "user": user, "expires_in_days": expires_in_days}
        return call("POST", "/tokens", TokenIssued, json={k: v for k, v in body.items() if v is not None})

    @endpoint
    def revoke_token(self, token_id: int) -> Call[TokenOut]:
        return call("DELETE", f"/tokens/{token_id}", TokenOut)

    # projects and environments
    @endpoint
    def list_projects(self, limit: int | None = None, cursor: str | None = None) -> Call[Page[ProjectOut]]:
        return call("GET", "/projects", Page[ProjectOut], params=_page(limit, cursor))

    @endpoint
    def get_project(self, name: str) -> Call[ProjectOut]:
        return call("GET", f"/projects/{name}", ProjectOut)

    @endpoint
    def create_project(
        self, /, name: str, description: str = "", repo_url: str | None = None, **fields: Any
    ) -> Call[ProjectOut]:
        body = {"name": name, "description": description, "repo_url": repo_url, **fields}
        return call("POST", "/projects", ProjectOut, json={k: v for k, v in body.items() if v is not None})

    @endpoint
    def update_project(self, /, name: str, **changes: Any) -> Call[ProjectOut]:
        return call("PATCH", f"/projects/{name}", ProjectOut, json=changes)

    @endpoint
    def delete_project(self, name: str, with_runs: bool = False) -> Call[None]:
        return no_content("DELETE", f"/projects/{name}", params={"with_runs": "true"} if with_runs else None)

    @endpoint
    def list_members(self, project: str) -> Call[list[MemberOut]]:
        return call("GET", f"/projects/{project}/members", list[MemberOut])

    @endpoint
    def set_member(self, project: str, user: str, role: str = "developer") -> Call[MemberOut]:
        return call("PUT", f"/projects/{project}/members/{user}", MemberOut, json={"role": role})

    @endpoint
    def remove_member(self, project: str, user: str) -> Call[None]:
        return no_content("DELETE", f"/projects/{project}/members/{user}")

    @endpoint
    def list_environments(self, project: str) -> Call[list[EnvironmentOut]]:
        return call("GET", f"/projects/{project}/environments", list[EnvironmentOut])

    @endpoint
    def get_environment(self, project: str, name: str) -> Call[EnvironmentOut]:
        return call("GET", f"/projects/{project}/environments/{name}", EnvironmentOut)

    @endpoint
    def create_environment(self, /, project: str, name: str, **fields: Any) -> Call[EnvironmentOut]:
        return call("POST", f"/projects/{project}/environments", EnvironmentOut, json={"name": name, **fields})

    @endpoint
    def update_environment(self, /, project: str, name: str, **changes: Any) -> Call[EnvironmentOut]:
        return call("PATCH", f"/projects/{project}/environments/{name}", EnvironmentOut, json=changes)

    @endpoint
    def delete_environment(self, project: str, name: str) -> Call[None]:
        return no_content("DELETE", f"/projects/{project}/environments/{name}")

    # runs
    @endpoint
    def create_run(self, /, project: str, command: list[str], **fields: Any) -> Call[RunOut]:
        body = {"project": project, "command": command, **{k: v for k, v in fields.items() if v is not None}}
        return call("POST", "/runs", RunOut, json=body)

    @endpoint
    def list_runs(
        self,
        limit: int | None = None,
        cursor: str | None = None,
        state: list[str] | None = None,
        project: str | None = None,
        trigger: str | None = None,
        environment: str | None = None,
        job: str | None = None,
    ) -> Call[Page[RunOut]]:
        params = _page(limit, cursor, state=state, project=project, trigger=trigger, environment=environment, job=job)
        return call("GET", "/runs", Page[RunOut], params=params)

    @endpoint
    def get_run(self, run_id: int) -> Call[RunOut]:
        return call("GET", f"/runs/{run_id}", RunOut)

    @endpoint
    def cancel_run(self, run_id: int) -> Call[RunOut]:
        return call("POST", f"/runs/{run_id}/cancel", RunOut)

    @endpoint
    def list_artifacts(self, run_id: int) -> Call[list[ArtifactOut]]:
        return call("GET", f"/runs/{run_id}/artifacts", list[ArtifactOut])

    @endpoint
    def latest_run(
        self,
        project: str | None = None,
        environment: str | None = None,
        state: list[str] | None = None,
        trigger: str | None = None,
        job: str | None = None,
    ) -> Call[RunOut]:
        """The newest run that matches (without ``state``: the newest finished one)."""
        params = {"project": project, "environment": environment, "state": state, "trigger": trigger, "job": job}
        return call("GET", "/runs/latest", RunOut, params={k: v for k, v in params.items() if v})

    @endpoint
    def latest_artifacts(
        self,
        project: str | None = None,
        environment: str | None = None,
        state: list[str] | None = None,
        trigger: str | None = None,
        job: str | None = None,
    ) -> Call[LatestArtifacts]:
        """The newest matching run and its artifacts."""
        params = {"project": project, "environment": environment, "state": state, "trigger": trigger, "job": job}
        return call("GET", "/runs/latest/artifacts", LatestArtifacts, params={k: v for k, v in params.items() if v})

    @endpoint
    def list_agents(self) -> Call[list[AgentOut]]:
        return call("GET", "/agents", list[AgentOut])

    # schedules
    @endpoint
    def create_schedule(self, /, **body: Any) -> Call[ScheduleOut]:
        return call("POST", "/schedules", ScheduleOut, json={k: v for k, v in body.items() if v is not None})

    @endpoint
    def list_schedules(self, project: str | None = None) -> Call[list[ScheduleOut]]:
        return call("GET", "/schedules", list[ScheduleOut], params={"project": project} if project else None)

    @endpoint
    def get_schedule(self, name: str) -> Call[ScheduleOut]:
        return call("GET", f"/schedules/{name}", ScheduleOut)

    @endpoint
    def update_schedule(self, /, name: str, **changes: Any) -> Call[ScheduleOut]:
        return call("PATCH", f"/schedules/{name}", ScheduleOut, json=changes)

    @endpoint
    def delete_schedule(self, name: str) -> Call[None]:
        return no_content("DELETE", f"/schedules/{name}")

    @endpoint
    def trigger_schedule(self, name: str) -> Call[TickFired]:
        return call("POST", f"/schedules/{name}/trigger", TickFired)

    @endpoint
    def schedule_next(self, name: str, count: int = 5) -> Call[list[datetime]]:
        return call("GET", f"/schedules/{name}/next", list[datetime], params={"count": count})

    @endpoint
    def schedule_ticks(self, name: str, limit: int = 50) -> Call[list[TickOut]]:
        return call("GET", f"/schedules/{name}/ticks", list[TickOut], params={"limit": limit})

    # jobs
    @endpoint
    def create_job(self, /, project: str, name: str, **body: Any) -> Call[JobOut]:
        fields = {k: v for k, v in body.items() if v is not None}
        return call("POST", f"/projects/{project}/jobs", JobOut, json={"name": name, **fields})

    @endpoint
    def list_jobs(self, project: str | None = None) -> Call[list[JobOut]]:
        return call("GET", "/jobs", list[JobOut], params={"project": project} if project else None)

    @endpoint
    def get_job(self, project: str, name: str) -> Call[JobOut]:
        return call("GET", f"/projects/{project}/jobs/{name}", JobOut)

    @endpoint
    def update_job(self, /, project: str, name: str, **changes: Any) -> Call[JobOut]:
        return call("PATCH", f"/projects/{project}/jobs/{name}", JobOut, json=changes)

    @endpoint
    def delete_job(self, project: str, name: str) -> Call[None]:
        return no_content("DELETE", f"/projects/{project}/jobs/{name}")

    @endpoint
    def run_job(self, /, project: str, name: str, **body: Any) -> Call[RunOut]:
        fields = {k: v for k, v in body.items() if v is not None}
        return call("POST", f"/projects/{project}/jobs/{name}/runs", RunOut, json=fields)

    # agents
    @endpoint
    def register_agent(
        self, name: str, queue: str = "default", substrate: str = "local", hostname: str | None = None
    ) -> Call[AgentOut]:
        body = {"name": name, "queue": queue, "substrate": substrate, "hostname": hostname}
        return call("POST", "/agent/register", AgentOut, json={k: v for k, v in body.items() if v is not None})

    @endpoint
    def claim_work(self, agent_id: int, wait_s: float = 25.0, max_items: int = 10) -> Call[WorkBatch]:
        return call(
            "POST", "/agent/work", WorkBatch, json={"agent_id": agent_id, "wait_s": wait_s, "max_items": max_items}
        )

    @endpoint
    def report_launch(
        self, item_id: int, handle: str | None = None, error: str | None = None, code_commit: str | None = None
    ) -> Call[LaunchReported]:
        body = {"handle": handle, "error": error, "code_commit": code_commit}
        return call(
            "POST",
            f"/agent/work/{item_id}/launched",
            LaunchReported,
            json={k: v for k, v in body.items() if v is not None},
        )

    @endpoint
    def agent_heartbeat(self, agent_id: int, runs: list[int]) -> Call[None]:
        return no_content("POST", "/agent/heartbeat", json={"agent_id": agent_id, "runs": runs})

    @endpoint
    def report_worker_killed(self, run_id: int, exit_code: int, error: str) -> Call[RunOut]:
        body = {"outcome": "killed", "exit_code": exit_code, "error": error, "log_seq": 0}
        return call("POST", f"/runs/{run_id}/worker/finish", RunOut, json=body)

    @endpoint
    def report_devserver(self, /, server_id: int, state: str, **details: Any) -> Call[DevServerOut]:
        body = {"state": state, **{k: v for k, v in details.items() if v is not None}}
        return call("POST", f"/agent/devservers/{server_id}/state", DevServerOut, json=body)

    @endpoint
    def agent_devservers(self, agent_id: int) -> Call[list[AdoptedDevServer]]:
        return call("GET", f"/agent/{agent_id}/devservers", list[AdoptedDevServer])

    # develop servers
    @endpoint
    def start_devserver(
        self, project: str, environment: str | None = None, idle_timeout_s: int | None = None
    ) -> Call[DevServerOut]:
        body = {"project": project, "environment": environment, "idle_timeout_s": idle_timeout_s}
        return call("POST", "/devservers", DevServerOut, json={k: v for k, v in body.items() if v is not None})

    @endpoint
    def list_devservers(self, project: str | None = None, all_users: bool = False) -> Call[list[DevServerOut]]:
        return call("GET", "/devservers", list[DevServerOut], params=_page(None, None, project=project, all=all_users))

    @endpoint
    def get_devserver(self, server_id: int) -> Call[DevServerOut]:
        return call("GET", f"/devservers/{server_id}", DevServerOut)

    @endpoint
    def stop_devserver(self, server_id: int) -> Call[DevServerOut]:
        return call("POST", f"/devservers/{server_id}/stop", DevServerOut)

    @endpoint
    def list_ports(self, server_id: int) -> Call[list[ListeningPort]]:
        """What listens inside the develop server (through the gateway)."""
        return call("GET", f"/devservers/{server_id}/ports", list[ListeningPort])

    @endpoint
    def create_preview(self, server_id: int, port: int, ttl_s: int | None = None) -> Call[PreviewIssued]:
        body = {"port": port, "ttl_s": ttl_s}
        return call(
            "POST",
            f"/devservers/{server_id}/previews",
            PreviewIssued,
            json={k: v for k, v in body.items() if v is not None},
        )

    @endpoint
    def list_previews(self, server_id: int) -> Call[list[PreviewOut]]:
        return call("GET", f"/devservers/{server_id}/previews", list[PreviewOut])

    @endpoint
    def revoke_preview(self, server_id: int, preview_id: int) -> Call[PreviewOut]:
        return call("DELETE", f"/devservers/{server_id}/previews/{preview_id}", PreviewOut)

    @endpoint
    def devserver_call(self, /, server_id: int, method: str, path: str, **kwargs: Any) -> Call[Any]:
        """A JSON call to the develop server through the gateway (``path`` as on the server)."""
        return untyped(method, f"/devservers/{server_id}/{path.lstrip('/')}", **kwargs)

    # notifications
    @endpoint
    def add_notification(self, /, project: str, name: str, channel: str, **fields: Any) -> Call[NotificationCreated]:
        body = {"name": name, "channel": channel, **{k: v for k, v in fields.items() if v is not None}}
        return call("POST", f"/projects/{project}/notifications", NotificationCreated, json=body)

    @endpoint
    def list_notifications(self, project: str) -> Call[list[NotificationOut]]:
        return call("GET", f"/projects/{project}/notifications", list[NotificationOut])

    @endpoint
    def remove_notification(self, project: str, name: str) -> Call[None]:
        return no_content("DELETE", f"/projects/{project}/notifications/{name}")

    @endpoint
    def test_notification(self, project: str, name: str) -> Call[DeliveryOut]:
        return call("POST", f"/projects/{project}/notifications/{name}/test", DeliveryOut)

    @endpoint
    def list_deliveries(
        self, project: str | None = None, run: int | None = None, failed: bool = False, limit: int | None = None
    ) -> Call[list[DeliveryOut]]:
        params = _page(limit, None, project=project, run=run, failed=failed)
        return call("GET", "/notifications/deliveries", list[DeliveryOut], params=params)

    # git webhooks
    @endpoint
    def set_hook(self, /, project: str, provider: str, **fields: Any) -> Call[HookCreated]:
        """Create or change the project's webhook; a field given as None is cleared."""
        return call("PUT", f"/projects/{project}/hooks/{provider}", HookCreated, json=fields)

    @endpoint
    def list_hooks(self, project: str) -> Call[list[HookOut]]:
        return call("GET", f"/projects/{project}/hooks", list[HookOut])

    @endpoint
    def remove_hook(self, project: str, provider: str) -> Call[None]:
        return no_content("DELETE", f"/projects/{project}/hooks/{provider}")

    @endpoint
    def list_hook_deliveries(self, project: str, limit: int | None = None) -> Call[list[HookDeliveryOut]]:
        return call("GET", f"/projects/{project}/hooks/deliveries", list[HookDeliveryOut], params=_page(limit, None))

    # audit
    @endpoint
    def list_audit(
        self, limit: int | None = None, cursor: str | None = None, action: str | None = None
    ) -> Call[Page[AuditOut]]:
        return call("GET", "/audit", Page[AuditOut], params=_page(limit, cursor, action=action))
