"""The agent side of the queue: register, long-poll for work, report launches, heartbeat.

Agents make only outbound calls. ``POST /agent/work`` holds the request open until work is
queued for one of the agent's queues (its environment queue and its private ``agent:<id>``
queue, where cancel requests for its runs go) or the wait runs out.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from control import __version__, access
from control.api.deps import DB, AgentCaller, Reader, Svc
from control.api.errors import SecretsLocked, conflict, not_found
from control.api.routes.runs import publish_run
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import Principal
from control.clock import utcnow
from control.db.tables import Agent, DevServer, Environment, Project, Run, WorkItem
from control.devservers import lifecycle as devserver_lifecycle
from control.hooks.origin import git_variables
from control.runs import claims, states
from control.runs.lifecycle import launch_failed, launched
from control.runs.steps import default_name, steps_of
from control.runs.summary import describe_run
from control.secretbox import SecretsUnreadable
from control.wire.code import CodeSpec
from control.wire.errors import ApiError
from control.wire.work import (
    AgentHeartbeat,
    AgentOut,
    AgentRegister,
    CancelSpec,
    CancelWork,
    ClaimedWork,
    DevServerSpec,
    DevServerStartWork,
    DevServerStopWork,
    LaunchReport,
    LaunchReported,
    RunSpec,
    RunWork,
    StepSpec,
    UnknownWork,
    WorkBatch,
    WorkRequest,
)

router = SegmentRouter(tags=["agents"])


def agent_out(agent: Agent) -> AgentOut:
    assert agent.id is not None
    return AgentOut(
        id=agent.id,
        name=agent.name,
        queue=agent.queue,
        substrate=agent.substrate,
        hostname=agent.hostname,
        version=agent.version,
        last_heartbeat_at=agent.last_heartbeat_at,
    )


def own_agent(session: Session, agent_id: int, who: Principal) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or (agent.user_id != who.user_id and not who.is_admin):
        raise not_found("Agent", agent_id)
    return agent


@router.get("/agents", response_model=list[AgentOut])
def list_agents(session: DB, _: Reader) -> list[AgentOut]:
    return [agent_out(a) for a in session.exec(select(Agent).order_by(col(Agent.id)))]


@router.post("/agent/register", response_model=AgentOut)
def register(body: AgentRegister, session: DB, who: AgentCaller, svc: Svc) -> AgentOut:
    """Register (or re-register after a restart) an agent by name."""
    agent = session.exec(select(Agent).where(Agent.name == body.name)).first()
    if agent is not None and agent.user_id != who.user_id and not who.is_admin:
        raise conflict(f"Agent name {body.name} is taken by another principal.")
    agent = agent or Agent(name=body.name, user_id=who.user_id)
    agent.queue, agent.substrate, agent.hostname = body.queue, body.substrate, body.hostname
    agent.version, agent.last_heartbeat_at = body.version or __version__, utcnow()
    session.add(agent)
    session.commit()
    svc.events.publish("agent.registered", agent_out(agent))
    return agent_out(agent)


def _secrets(session: Session, env: Environment | None) -> dict[str, str]:
    if env is None:
        return {}
    try:
        return dict(env.secrets)
    except SecretsUnreadable:
        project = session.get(Project, env.project_id)
        raise SecretsLocked(f"{project.name if project else env.project_id}/{env.name}") from None


def run_spec(session: Session, run: Run, grace_s: float = 10.0) -> RunSpec:
    """What the agent needs to launch the run worker; secrets included (agents are trusted)."""
    project = session.get(Project, run.project_id)
    env = session.get(Environment, run.environment_id) if run.environment_id else None
    variables = dict(env.variables) if env else {}
    secrets = _secrets(session, env)
    server = session.get(DevServer, run.devserver_id) if run.devserver_id else None
    assert run.id is not None
    return RunSpec(
        id=run.id,
        project=project.name if project else None,
        environment=env.name if env else None,
        command=run.command,
        cwd=run.cwd,
        env={**variables, **git_variables(session, run), **secrets},
        secret_values=sorted({v for v in secrets.values() if v}),
        timeout_s=run.timeout_s,
        artifact_globs=run.artifact_globs,
        image=env.image if env else None,
        resources=env.resources if env else {},
        attempt=run.attempt,
        cancel_grace_s=run.stop_grace_s if run.stop_grace_s is not None else grace_s,
        workspace=server.workspace if server else None,
        devserver_id=run.devserver_id,
        tty={"cols": run.tty_cols, "rows": run.tty_rows or 40} if run.tty_cols else None,
        steps=[StepSpec(name=step.name, command=step.command) for step in steps_of(session, [run.id])[run.id]]
        or [StepSpec(name=default_name(run.command), command=run.command)],
        stop_signals=run.stop_signals or ["TERM"],
        code=code_spec(run, project),
    )


def code_spec(run: Run, project: Project | None) -> CodeSpec | None:
    """What the agent checks out for a repository run: the URL and ref recorded at creation (the
    project's URL may have changed since), the commit when an earlier attempt resolved it."""
    if run.code_source != "repository" or not run.code_repo_url:
        return None
    digest = hashlib.sha256(run.code_repo_url.encode()).hexdigest()[:16]
    return CodeSpec(
        source="repository",
        repo_url=run.code_repo_url,
        ref=run.code_ref,
        commit=run.code_commit,
        credential_secret=project.repo_secret if project else None,
        # One mirror per project and repository: a commit fetched with one project's credentials
        # is never checked out for another project that could not fetch it.
        mirror=f"{run.project_id}-{digest}",
    )


def devserver_spec(session: Session, server: DevServer, secrets: bool = True) -> DevServerSpec:
    """What the agent needs to start or stop a develop server; secrets included (agents are trusted)."""
    env = session.get(Environment, server.environment_id) if server.environment_id else None
    assert server.id is not None
    return DevServerSpec(
        id=server.id,
        state=server.state,
        workspace=server.workspace,
        secret=server.secret,
        handle=server.handle,
        restart_count=server.restart_count,
        env={**(env.variables if env else {}), **(_secrets(session, env) if secrets else {})},
        image=env.image if env else None,
        resources=env.resources if env else {},
    )


def _check_claim(session: Session, item: claims.Claimed, local_only_admins: bool) -> None:
    """Checked again at claim: membership may have changed since the work was queued, schedule
    ticks and retries create runs with nobody asking, and only the agent knows its substrate."""
    if item.item.kind == "run" and item.run is not None:
        env_id, user_id = item.run.environment_id, item.run.user_id
    elif item.item.kind == "devserver_start" and item.devserver is not None:
        env_id, user_id = item.devserver.environment_id, item.devserver.user_id
    else:
        return
    access.check_user_environment(session, env_id, user_id)
    if local_only_admins:
        access.check_local_claim(session, user_id, multi_user=False)


def _describe(session: Session, claimed: claims.Claimed, grace_s: float, local_only_admins: bool) -> ClaimedWork:
    """The claimed item as the agent receives it, with what it needs to act on it."""
    _check_claim(session, claimed, local_only_admins)
    item = claimed.item
    assert item.id is not None
    common: dict[str, Any] = {"id": item.id, "payload": item.payload, "worker_token": claimed.worker_token}
    if item.kind == "run" and claimed.run is not None:
        return RunWork(run=run_spec(session, claimed.run, grace_s), **common)
    if item.kind in ("devserver_start", "devserver_stop") and claimed.devserver is not None:
        if item.kind == "devserver_start":
            return DevServerStartWork(run=devserver_spec(session, claimed.devserver), **common)
        try:
            spec = devserver_spec(session, claimed.devserver)
        except SecretsLocked:
            spec = devserver_spec(session, claimed.devserver, secrets=False)  # a stop needs none
        return DevServerStopWork(run=spec, **common)
    if item.kind == "cancel":
        return CancelWork(run=CancelSpec(id=item.run_id, handle=claimed.run.handle if claimed.run else None), **common)
    return UnknownWork(id=item.id, kind=item.kind)


def _fail_locked(session: Session, item: claims.Claimed, message: str) -> bool:
    """A run or develop server whose secrets cannot be decrypted (or may not be used by its user)
    fails with ``message`` instead of starting; returns whether a retry of the run was queued."""
    retry = None
    if item.run is not None:
        retry = launch_failed(session, item.item, item.run, message)
    elif item.devserver is not None:
        item.item.state = "failed"
        session.add(item.item)
        devserver_lifecycle.report(item.devserver, devserver_lifecycle.FAILED, None, None, message, None)
        session.add(item.devserver)
    session.commit()
    return retry is not None


def _claim(svc: Services, agent_id: int, queues: list[str], max_items: int) -> list[ClaimedWork]:
    with Session(svc.engine, expire_on_commit=False) as session:
        agent = session.get(Agent, agent_id)
        local_only_admins = agent is not None and agent.substrate == "local" and not svc.settings.local_multi_user
        claimed = claims.claim(session, agent_id, queues, max_items, svc.settings.max_concurrent_runs)
        out: list[ClaimedWork] = []
        for item in claimed:
            try:
                out.append(_describe(session, item, svc.settings.cancel_grace_s, local_only_admins))
            except SecretsLocked as exc:
                if _fail_locked(session, item, exc.message):
                    svc.hub.publish("work")
            except access.AccessRefused as exc:
                if item.run is not None:
                    item.run.max_retries = 0  # a retry would be refused the same way
                _fail_locked(session, item, str(exc))
            if item.run is not None and item.item.kind == "run":
                publish_run(svc, describe_run(session, item.run))
            if item.devserver is not None and item.item.kind == "devserver_start":  # a stop claim changes nothing
                from control.api.routes import devservers  # it imports this module

                devservers.publish(svc, devservers.describe(session, item.devserver), item.devserver.user_id)
        return out


@router.post("/agent/work", response_model=WorkBatch)
async def work(body: WorkRequest, who: AgentCaller, session: DB, svc: Svc) -> WorkBatch:
    agent = own_agent(session, body.agent_id, who)
    queues = [agent.queue, f"agent:{agent.id}"]
    deadline = time.monotonic() + body.wait_s
    with svc.hub.waiter(["work"]) as wake:
        while True:
            items = await run_in_threadpool(_claim, svc, body.agent_id, queues, body.max_items)
            remaining = deadline - time.monotonic()
            if items or remaining <= 0 or svc.hub.stopping:
                return WorkBatch(items=items)
            # Wake on a notice, and poll now and then in case a notice from another replica was lost.
            await wake.wait(min(remaining, 2.0))
            await asyncio.sleep(0)


@router.post("/agent/work/{item_id}/launched", response_model=LaunchReported)
def report_launch(item_id: int, body: LaunchReport, who: AgentCaller, session: DB, svc: Svc) -> LaunchReported:
    item = session.get(WorkItem, item_id)
    if item is None or item.claimed_by is None:
        raise not_found("Work item", item_id)
    own_agent(session, item.claimed_by, who)
    if item.state != "claimed":
        raise conflict(f"Work item {item_id} was already reported ({item.state}).")
    run = session.get(Run, item.run_id) if item.run_id else None
    if item.kind != "run" or run is None:
        item.state = "done" if body.error is None else "failed"
        session.add(item)
        session.commit()
        return LaunchReported(id=item_id, state=item.state)
    before = describe_run(session, run)
    if body.code_commit is not None and run.code_source == "repository":
        run.code_commit = body.code_commit
        session.add(run)
    if body.error is not None:
        retry = launch_failed(session, item, run, body.error)
    elif body.handle:
        launched(session, item, run, body.handle)
        retry = None
    else:
        raise ApiError(422, "invalid_request", "Report either a handle or an error.")
    session.commit()
    after = describe_run(session, run)
    if after != before:
        publish_run(svc, after)
    else:
        # The handle is not part of the summary: the claim already announced this state, and
        # the same event twice is noise on every stream; followers are still woken.
        svc.hub.publish(f"run:{run.id}")
    if retry is not None:
        svc.hub.publish("work")
    return LaunchReported(id=item_id, state=item.state)


@router.post("/agent/heartbeat", status_code=204)
def agent_heartbeat(body: AgentHeartbeat, who: AgentCaller, session: DB) -> None:
    agent = own_agent(session, body.agent_id, who)
    now = utcnow()
    agent.last_heartbeat_at = now
    session.add(agent)
    if body.runs:
        for run in session.exec(
            select(Run).where(col(Run.id).in_(body.runs), Run.agent_id == agent.id, col(Run.state).in_(states.ACTIVE))
        ):
            run.heartbeat_at = now
            session.add(run)
    session.commit()
