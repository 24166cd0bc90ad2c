"""Runs: create (writers, in projects they own), list and show (readers), cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Response
from sqlmodel import Session, col, select

from control import access, audit
from control.api import paging
from control.api.deps import DB, Reader, Svc, Writer
from control.api.errors import conflict, forbidden, not_found
from control.api.routes.environments import find_environment
from control.api.routes.projects import find_project
from control.api.routing import SegmentRouter
from control.api.services import Services
from control.auth import Principal
from control.db.tables import Artifact, Job, Project, Run
from control.runs import states
from control.runs.code import CodeChoice, choose_code
from control.runs.create import RunRequest, create_run
from control.runs.lifecycle import TransitionRefused, request_cancel
from control.runs.query import RunQuery, job_names, narrow, runs_with_names
from control.runs.steps import StepDef, steps_of
from control.runs.summary import announce_run, artifact_out, describe_run, run_out
from control.wire.errors import JOB_NOT_FOUND, ApiError
from control.wire.resources import Page
from control.wire.runs import LatestArtifacts, RunCreate, RunOut

router = SegmentRouter(tags=["runs"])


def find_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise not_found("Run", run_id)
    return run


def publish_run(svc: Services, summary: RunOut, kind: str = "run.updated") -> None:
    announce_run(svc.events.publish, svc.hub.publish, summary, kind)


def can_control(run: Run, project: Project, who: Principal) -> bool:
    return who.is_admin or run.user_id == who.user_id or project.owner_id == who.user_id


def check_local_tree(body: RunCreate, who: Principal, svc: Services) -> None:
    """A run in a folder of this machine: only the embedded stack's one person may ask for it.

    The row's cwd is then that absolute folder; every other run's cwd is relative to its code
    folder (the validator refuses absolute ones), so only this path puts one there."""
    if not (svc.settings.agent and svc.settings.substrate == "local"):
        raise conflict(
            "A run in your local tree needs the embedded stack (yard up with the local substrate);"
            " this control API runs its work elsewhere: start a develop server and watch there."
        )
    if not who.is_admin:
        raise forbidden("Only the person who started this stack (an admin) can run in a folder of its machine.")
    if body.cwd is not None or body.in_devserver or body.code == "workspace":
        raise conflict("A run in your local tree takes no --cwd and no develop server.")


@router.post("/runs", response_model=RunOut, status_code=201)
def create(body: RunCreate, response: Response, session: DB, who: Writer, svc: Svc) -> RunOut:
    project = find_project(session, body.project)
    env = find_environment(session, project, body.environment) if body.environment else None
    if body.local_tree is not None:
        check_local_tree(body, who, svc)
        code = CodeChoice("workspace")  # the caller's own tree, on the stack's machine
    else:
        code = choose_code(
            session,
            project,
            env,
            who.user_id,
            code="workspace" if body.in_devserver else body.code,
            ref=body.ref,
            workspace_allowed=body.in_devserver is not False,
        )
    server = code.devserver
    if server is None and not access.works_in(session, project, who.user_id, who.role):
        raise forbidden(
            f"Only the owner of project {project.name}, its members or an admin can start runs in it"
            " (anyone can run in their own develop server: `yard dev start`)."
        )
    if env is not None:
        access.check_environment(session, project, env, who.user_id, who.role)
    if svc.settings.agent and svc.settings.substrate == "local":  # the embedded stack's own agent
        access.check_local_substrate(who.role, svc.settings.local_multi_user)
    request = RunRequest(
        project=project,
        environment=env,
        user_id=who.user_id,
        command=body.command,
        cwd=body.local_tree or body.cwd,
        timeout_s=body.timeout_s,
        max_retries=body.max_retries,
        artifact_globs=body.artifacts,
        trigger=body.trigger,
        trigger_info=body.trigger_info,
        idempotency_key=body.idempotency_key,
        devserver_id=server.id if server else None,
        tty=(body.tty_cols, body.tty_rows) if body.tty else None,
        steps=[StepDef(step.name, step.command) for step in body.steps],
        stop_signals=body.stop_signals,
        stop_grace_s=body.stop_grace_s,
        code=code,
    )
    run, created = create_run(session, request)
    if not created:
        response.status_code = 200
        return describe_run(session, run)
    audit.record(
        session,
        who,
        "run.create",
        "run",
        run.id,
        project=project.name,
        command=(body.command or body.steps[0].command)[:20],
    )
    session.commit()
    summary = describe_run(session, run)
    publish_run(svc, summary, "run.created")
    svc.hub.publish("work")
    return summary


StateFilter = Annotated[list[str] | None, Query(description="Only these states (repeatable).")]
ProjectFilter = Annotated[str | None, Query(max_length=64)]
EnvironmentFilter = Annotated[str | None, Query(max_length=64, description="Only runs in this environment.")]
TriggerFilter = Annotated[str | None, Query(max_length=16)]
JobFilter = Annotated[str | None, Query(max_length=64, description="Only runs of jobs of this name.")]


def run_query(
    session: DB,
    state: StateFilter = None,
    project: ProjectFilter = None,
    environment: EnvironmentFilter = None,
    trigger: TriggerFilter = None,
    job: JobFilter = None,
) -> RunQuery:
    """The filters of ``GET /runs`` and ``GET /runs/latest`` (one dependency: a new filter is a
    parameter here, a field of RunQuery and a line in ``narrow``), checked: an unknown state,
    trigger or project is a 4xx."""
    if state and not set(state) <= states.ALL:
        bad = sorted(set(state) - states.ALL)[0]
        raise ApiError(
            422, "invalid_request", f"Unknown run state '{bad}'; use one of {', '.join(sorted(states.ALL))}."
        )
    if trigger and trigger not in states.TRIGGERS:
        known = ", ".join(sorted(states.TRIGGERS))
        raise ApiError(422, "invalid_request", f"Unknown trigger '{trigger}'; use one of {known}.")
    if project and session.exec(select(Project.id).where(Project.name == project)).first() is None:
        raise not_found("Project", project)
    if job and session.exec(select(Job.id).where(Job.name == job)).first() is None:
        raise ApiError(
            404, JOB_NOT_FOUND, f"Job {job} does not exist" + (f" in project {project}." if project else ".")
        )
    return RunQuery(tuple(state or ()), project, environment, trigger, job)


Filters = Annotated[RunQuery, Depends(run_query)]


@router.get("/runs", response_model=Page[RunOut])
def list_runs(
    session: DB,
    _: Reader,
    params: Annotated[paging.PageParams, Depends(paging.page_params)],
    query: Filters,
) -> dict[str, Any]:
    rows = list(session.exec(paging.apply(narrow(runs_with_names(), query), Run.id, params)))
    page = paging.build([r[0] for r in rows], params, lambda r: r)
    names = {r[0].id: (r[1], r[2], r[3]) for r in rows}
    steps = steps_of(session, [r.id for r in page["items"]])
    jobs = job_names(session, page["items"])
    page["items"] = [run_out(r, *names[r.id], steps[r.id], jobs.get(r.job_id or 0)) for r in page["items"]]
    return page


def latest_run(session: Session, query: RunQuery) -> RunOut:
    """The newest run ``query`` means; without a state filter, the newest finished one."""
    if not query.states:
        query = RunQuery(tuple(sorted(states.FINISHED)), query.project, query.environment, query.trigger, query.job)
    row = session.exec(narrow(runs_with_names(), query).order_by(col(Run.id).desc()).limit(1)).first()
    if row is None:
        wanted = ", ".join(
            f"{key} {value}"
            for key, value in (
                ("project", query.project),
                ("environment", query.environment),
                ("trigger", query.trigger),
                ("job", query.job),
                ("state", " or ".join(query.states)),
            )
            if value
        )
        raise ApiError(404, "not_found", f"No run matches ({wanted}).")
    run, project, environment, user = row
    assert run.id is not None
    job = job_names(session, [run]).get(run.job_id or 0)
    return run_out(run, project, environment, user, steps_of(session, [run.id])[run.id], job)


@router.get("/runs/latest", response_model=RunOut)
def latest(session: DB, _: Reader, query: Filters) -> RunOut:
    """The newest run that matches the filters (without ``state``: the newest finished one)."""
    return latest_run(session, query)


@router.get("/runs/latest/artifacts", response_model=LatestArtifacts)
def latest_artifacts(session: DB, _: Reader, query: Filters) -> LatestArtifacts:
    """The newest matching run and its artifacts (download each from ``/runs/{id}/artifacts/{aid}/content``):
    what dbt's deferral (``--state``) needs from the last good production run."""
    run = latest_run(session, query)
    rows = session.exec(select(Artifact).where(Artifact.run_id == run.id).order_by(col(Artifact.path)))
    return LatestArtifacts(run=run, artifacts=[artifact_out(a) for a in rows])


@router.get("/runs/{run_id}", response_model=RunOut)
def show(run_id: int, session: DB, _: Reader) -> RunOut:
    return describe_run(session, find_run(session, run_id))


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel(run_id: int, session: DB, who: Writer, svc: Svc) -> RunOut:
    """Cancel a run: at once if queued, otherwise its worker is told to stop (the run's stop
    signals to the command's process group, then SIGKILL)."""
    run = find_run(session, run_id)
    project = session.get(Project, run.project_id)
    assert project is not None
    if not can_control(run, project, who):
        raise forbidden(f"Only the user who started run {run_id}, the project owner or an admin can cancel it.")
    try:
        request_cancel(session, run)
    except TransitionRefused as exc:
        raise conflict(str(exc)) from None
    audit.record(session, who, "run.cancel", "run", run.id)
    session.commit()
    summary = describe_run(session, run)
    publish_run(svc, summary)
    svc.hub.publish("work")
    return summary
