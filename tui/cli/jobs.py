"""`yard jobs ...`: saved run definitions of a project (steps, artifacts, stop signals, triggers)."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from control.wire.jobs import JobOut, TriggerOut
from tui.cli.context import default_project, state
from tui.cli.output import console, details, fail, humanize, print_json, table

app = typer.Typer(help="Saved jobs: add, ls, show, edit, run, rm.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Project \\[default: DEVYARD_PROJECT or the current folder's name]."),
]
StepOption = Annotated[
    list[str] | None,
    typer.Option(
        "--step",
        "-s",
        help="A step: 'NAME=COMMAND' or 'COMMAND', split like a shell would (no pipes or &&: use sh -c '...');"
        " repeatable, run in order, stopping at the first that fails.",
    ),
]
ArtifactOption = Annotated[
    list[str] | None, typer.Option("--artifact", "-a", help="Glob of files kept after every run, repeatable.")
]
AfterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--after",
        help="Run when job JOB of the project ends: JOB (succeeded) or JOB:failed,cancelled; repeatable.",
    ),
]
OnPushOption = Annotated[
    list[str] | None,
    typer.Option("--on-push", help="Run at the pushed commit when a branch matching this glob is pushed; repeatable."),
]
OnPrOption = Annotated[
    list[str] | None,
    typer.Option(
        "--on-pr",
        help="Run at a pull request's head when one into a branch matching this glob is opened, updated or"
        " reopened; repeatable.",
    ),
]
KeepRunningOption = Annotated[
    bool,
    typer.Option("--pr-keep-running", help="A newer pull request update does not cancel the older runs still going."),
]
COLUMNS = ["name", "project", "environment", "steps", "triggers", "next_fire_at", "last_run"]
SHOW = [
    "name",
    "project",
    "environment",
    "user",
    "description",
    "timeout_s",
    "max_retries",
    "stop",
    "tty",
    "artifacts",
    "next_fire_at",
    "last_run",
    "created_at",
    "updated_at",
]


def _steps(lines: list[str] | None, command: list[str] | None) -> list[dict[str, Any]] | None:
    """Steps from ``--step`` lines and/or a command after ``--`` (the last step).

    A line is ``NAME=COMMAND`` as `yard run --step` takes it, or just ``COMMAND`` (named after
    its first words): ``--step 'dbt build --vars a=1'`` has a space before its '=', so no name."""
    steps: list[dict[str, Any]] = []
    for line in lines or []:
        name, eq, rest = line.partition("=")
        named = bool(eq) and bool(name.strip()) and not any(c.isspace() for c in name.strip())
        try:
            words = shlex.split(rest if named else line)
        except ValueError as exc:
            fail(f"Cannot read step {line!r}: {exc}; quote it as a shell would.")
        if not words:
            fail(f"Step {line!r} has no command; give one, e.g. --step 'build=dbt build'.")
        steps.append({"command": words, **({"name": name.strip()} if named else {})})
    if command:
        steps.append({"command": command})
    return steps or None


def _after(values: list[str]) -> list[dict[str, Any]]:
    triggers: list[dict[str, Any]] = []
    for value in values:
        job, _, states = value.partition(":")
        trigger: dict[str, Any] = {"kind": "job", "job": job}
        if states:
            trigger["states"] = [s.strip() for s in states.split(",") if s.strip()]
        triggers.append(trigger)
    return triggers


def _git(on_push: list[str] | None, on_pr: list[str] | None, keep_running: bool) -> list[dict[str, Any]]:
    """Push and pull-request triggers (git webhooks, docs/webhooks.md)."""
    triggers: list[dict[str, Any]] = []
    if on_push:
        triggers.append({"kind": "push", "branches": on_push})
    if on_pr:
        triggers.append({"kind": "pull_request", "branches": on_pr, "cancel_in_progress": not keep_running})
    return triggers


def _signals(value: str | None) -> list[str] | None:
    return None if value is None else [s for s in value.split(",") if s.strip()]


def _grace(value: str | None) -> float | None:
    from tui.cli.runs import parse_duration

    return None if value is None else parse_duration(value, "--stop-grace")


def _last(job: JobOut) -> str:
    run = job.last_run
    return f"{run.id} {run.state}" if run else "-"


def _row(job: JobOut) -> dict[str, Any]:
    row = job.model_dump()
    row["steps"] = str(len(job.steps))
    row["triggers"] = "; ".join(t.summary + ("" if t.enabled else " (paused)") for t in job.triggers) or "-"
    row["last_run"] = _last(job)
    signals = " then ".join(job.stop_signals or ["TERM"]) + " then KILL"
    row["stop"] = signals + (f", {job.stop_grace_s:g} s apart" if job.stop_grace_s is not None else "")
    row["artifacts"] = ", ".join(job.artifacts) or "-"
    return row


def _trigger_body(trigger: TriggerOut) -> dict[str, Any]:
    """A trigger as shown, written back (``edit`` replaces the list, keeping the others)."""
    return {"kind": trigger.kind, **trigger.config, "enabled": trigger.enabled}


@app.command("add")
def add(
    name: str,
    command: Annotated[list[str] | None, typer.Argument(help="A one-step job's command (after --).")] = None,
    step: StepOption = None,
    project: ProjectOption = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment of the project.")] = None,
    artifact: ArtifactOption = None,
    timeout: Annotated[int | None, typer.Option("--timeout", min=1, help="Stop a run after this many seconds.")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=10, help="Retry a failed run this many times.")] = 0,
    stop_signals: Annotated[
        str | None,
        typer.Option(
            "--stop-signal", help="How a cancel or timeout stops it, e.g. INT,TERM (KILL follows) \\[default: TERM]."
        ),
    ] = None,
    stop_grace: Annotated[
        str | None,
        typer.Option("--stop-grace", help="Wait this long after each stop signal, e.g. 30s \\[default: 10s]."),
    ] = None,
    tty: Annotated[
        bool, typer.Option("--tty", help="Its runs get a pseudo-terminal (120x40) instead of one pipe.")
    ] = False,
    cron: Annotated[str | None, typer.Option("--cron", help="Run on this five-field cron expression.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA timezone the cron expression is read in.")] = "UTC",
    overlap: Annotated[
        str, typer.Option("--overlap", help="Cron run while the last one still goes: skip, queue or cancel_previous.")
    ] = "skip",
    after: AfterOption = None,
    on_push: OnPushOption = None,
    on_pr: OnPrOption = None,
    pr_keep_running: KeepRunningOption = False,
    description: Annotated[str, typer.Option("--description", help="What the job is for.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Save a job: steps (--step, or one command after --), artifacts, limits and triggers."""
    steps = _steps(step, command)
    if steps is None:
        fail("Give the job's steps with --step 'CMD ...' (repeatable) or one command after --.")
    triggers = _after(after or []) + _git(on_push, on_pr, pr_keep_running)
    if cron is not None:
        triggers.insert(0, {"kind": "cron", "cron": cron, "timezone": tz, "overlap": overlap})
    body = {
        "environment": env,
        "description": description,
        "steps": steps,
        "artifacts": artifact or [],
        "timeout_s": timeout,
        "max_retries": retries,
        "stop_signals": _signals(stop_signals),
        "stop_grace_s": _grace(stop_grace),
        "tty": tty,
        "triggers": triggers,
    }
    with state.client() as client:
        created = client.create_job(project or default_project(), name, **body)
    if as_json:
        print_json(created)
        return
    fires = f"; next run {humanize(created.next_fire_at)}" if created.next_fire_at else ""
    count = len(created.steps)
    console.print(f"Job [bold]{name}[/] added to {created.project} ({count} step{'s' * (count != 1)}){fires}.")


@app.command("ls")
def list_jobs(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs with their triggers, next fire time and last run."""
    with state.client() as client:
        items = client.list_jobs(project=project)
    print_json(items) if as_json else table([_row(job) for job in items], COLUMNS)


@app.command("show")
def show(name: str, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show a job: its steps, triggers, limits and last run."""
    with state.client() as client:
        job = client.get_job(project or default_project(), name)
    if as_json:
        print_json(job)
        return
    details(_row(job), SHOW)
    console.print()
    table(
        [{"step": i, "name": s.name, "command": shlex.join(s.command)} for i, s in enumerate(job.steps, start=1)],
        ["step", "name", "command"],
        title="Steps",
    )
    if job.triggers:
        console.print()
        table(
            [
                {"kind": t.kind, "trigger": t.summary, "enabled": t.enabled, "next_fire_at": t.next_fire_at}
                for t in job.triggers
            ],
            ["kind", "trigger", "enabled", "next_fire_at"],
            title="Triggers",
        )
    console.print()
    _notifications(job)


def _notifications(job: JobOut) -> None:
    """The notifications a run of the job sends: its own, else the project's defaults."""
    from control.client import Forbidden

    try:
        with state.client() as client:
            every = client.list_notifications(job.project)
    except Forbidden:
        return  # only the project's members see where its news goes
    own = [n for n in every if n.job == job.name]
    applying = own or [n for n in every if n.job is None]
    if not applying:
        console.print(f"No notifications: `yard notify add NAME -p {job.project} --job {job.name} ...` adds one.")
        return
    rows = [{**n.model_dump(), "events": ",".join(n.events), "from": "job" if own else "project"} for n in applying]
    table(rows, ["name", "channel", "target", "events", "from"], title="Notifications")


@app.command("edit")
def edit(
    name: str,
    command: Annotated[list[str] | None, typer.Argument(help="A one-step job's new command (after --).")] = None,
    step: StepOption = None,
    project: ProjectOption = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Another environment.")] = None,
    no_env: Annotated[bool, typer.Option("--no-env", help="Run without an environment.")] = False,
    artifact: ArtifactOption = None,
    no_artifacts: Annotated[bool, typer.Option("--no-artifacts", help="Keep no files.")] = False,
    timeout: Annotated[int | None, typer.Option("--timeout", min=1, help="Stop a run after this many seconds.")] = None,
    no_timeout: Annotated[bool, typer.Option("--no-timeout", help="No time limit.")] = False,
    retries: Annotated[int | None, typer.Option("--retries", min=0, max=10, help="Retries of a failed run.")] = None,
    stop_signals: Annotated[str | None, typer.Option("--stop-signal", help="e.g. INT,TERM (KILL follows).")] = None,
    stop_grace: Annotated[
        str | None, typer.Option("--stop-grace", help="Wait this long after each stop signal, e.g. 30s.")
    ] = None,
    tty: Annotated[bool | None, typer.Option("--tty/--no-tty", help="A pseudo-terminal or one pipe.")] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Run on this cron expression (replaces the one it has).")
    ] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="Timezone of --cron.")] = None,
    no_cron: Annotated[bool, typer.Option("--no-cron", help="Remove its cron trigger.")] = False,
    pause: Annotated[
        bool | None, typer.Option("--pause/--resume", help="Stop or start firing its cron trigger.")
    ] = None,
    after: AfterOption = None,
    no_after: Annotated[bool, typer.Option("--no-after", help="Remove its triggers on other jobs' ends.")] = False,
    on_push: OnPushOption = None,
    on_pr: OnPrOption = None,
    pr_keep_running: KeepRunningOption = False,
    no_git: Annotated[bool, typer.Option("--no-git", help="Remove its push and pull-request triggers.")] = False,
    description: Annotated[str | None, typer.Option("--description", help="What the job is for.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a job; options left out keep their value (--after and --cron replace those triggers)."""
    project_name = project or default_project()
    changes: dict[str, Any] = {}
    steps = _steps(step, command)
    if steps is not None:
        changes["steps"] = steps
    if env is not None or no_env:
        changes["environment"] = env
    if artifact is not None or no_artifacts:
        changes["artifacts"] = artifact or []
    if timeout is not None or no_timeout:
        changes["timeout_s"] = timeout
    for key, value in (
        ("max_retries", retries),
        ("stop_grace_s", _grace(stop_grace)),
        ("tty", tty),
        ("description", description),
    ):
        if value is not None:
            changes[key] = value
    if stop_signals is not None:
        changes["stop_signals"] = _signals(stop_signals)
    with state.client() as client:
        git_changed = on_push is not None or on_pr is not None or no_git
        if cron is not None or tz is not None or no_cron or pause is not None or after is not None or no_after:
            current = client.get_job(project_name, name)
            changes["triggers"] = _edited_triggers(current, cron, tz, no_cron, pause, after, no_after)
        if git_changed:
            kept = changes.get("triggers") or [_trigger_body(t) for t in client.get_job(project_name, name).triggers]
            changes["triggers"] = _edited_git(kept, on_push, on_pr, pr_keep_running, no_git)
        if not changes:
            fail(
                f"Nothing to change; give an option (see `yard jobs edit --help`) or look with `yard jobs show {name}`."
            )
        updated = client.update_job(project_name, name, **changes)
    if as_json:
        print_json(updated)
    else:
        fires = f"; next run {humanize(updated.next_fire_at)}" if updated.next_fire_at else ""
        console.print(f"Job [bold]{name}[/] changed{fires}.")


def _edited_triggers(
    job: JobOut,
    cron: str | None,
    tz: str | None,
    no_cron: bool,
    pause: bool | None,
    after: list[str] | None,
    no_after: bool,
) -> list[dict[str, Any]]:
    kept = [_trigger_body(t) for t in job.triggers]
    old_cron = next((t for t in kept if t["kind"] == "cron"), None)
    if no_cron:
        old_cron = None
    elif cron is not None or tz is not None:
        if old_cron is None and cron is None:
            fail(f"Job {job.name} has no cron trigger to move to --tz {tz}; give --cron too.")
        old_cron = {
            **(old_cron or {"kind": "cron"}),
            **({"cron": cron} if cron else {}),
            **({"timezone": tz} if tz else {}),
        }
    if pause is not None:
        if old_cron is None:
            fail(f"Job {job.name} has no cron trigger to {'pause' if pause else 'resume'}.")
        old_cron["enabled"] = not pause
    others = [t for t in kept if t["kind"] not in ("cron", "job")]
    chained = [] if no_after else [t for t in kept if t["kind"] == "job"]
    if after is not None:
        chained = _after(after)
    return [*([old_cron] if old_cron else []), *chained, *others]


def _edited_git(
    kept: list[dict[str, Any]], on_push: list[str] | None, on_pr: list[str] | None, keep_running: bool, no_git: bool
) -> list[dict[str, Any]]:
    """``kept`` with its push and pull-request triggers replaced by the ones given (or removed)."""
    given = _git(on_push, on_pr, keep_running)
    replaced = {"push", "pull_request"} if no_git else {t["kind"] for t in given}
    return [t for t in kept if t["kind"] not in replaced] + given


@app.command("run")
def run(
    name: str,
    project: ProjectOption = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Run this branch, tag or commit instead of the environment's branch.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Print the run id and return at once.")] = False,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix lines with the time they were printed.")
    ] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Print the stored bytes untouched.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a job now and follow its log (`yard run --job NAME` does the same); exits with its exit code."""
    from tui.cli.runs import follow_to_exit

    with state.client() as client:
        created = client.run_job(project or default_project(), name, ref=ref, trigger="manual")
        follow_to_exit(client, created, detach=detach, as_json=as_json, timestamps=timestamps, raw=raw)


@app.command("rm")
def remove(
    name: str,
    project: ProjectOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Remove a job and its triggers (its runs stay)."""
    project_name = project or default_project()
    if not yes and not typer.confirm(f"Remove job {name} of project {project_name}?", err=True):
        raise typer.Exit(1)
    with state.client() as client:
        client.delete_job(project_name, name)
    console.print(f"Job [bold]{name}[/] removed.")
