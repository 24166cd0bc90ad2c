"""What the TUI does to runs, develop servers and schedules, shared by the dashboard and the
detail views: each checks read-only mode, asks first when it destroys something, calls the API
and says what happened in one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from control.client import DevyardError
from control.wire.devservers import DevServerOut
from control.wire.jobs import JobOut
from control.wire.runs import RunOut
from control.wire.schedules import ScheduleOut
from tui.actions import BY_ID
from tui.cells import FINISHED, command_line, run_command

if TYPE_CHECKING:
    from tui.app import DevyardApp
    from tui.screens.confirm import Act

YARD = str(Path(sys.executable).parent / "yard")


def allowed(app: DevyardApp, action_id: str) -> bool:
    """False (and say so) when read-only mode forbids the action."""
    spec = BY_ID[action_id]
    if app.read_only and spec.writes:
        app.notify(
            f"Read-only mode: {spec.title.lower()} is turned off (yard was started with --read-only).",
            severity="warning",
        )
        return False
    return True


def cancel_run(app: DevyardApp, run: RunOut, action_id: str) -> None:
    """Ask, then cancel ``run``."""
    if not allowed(app, action_id):
        return
    if run.state in FINISHED:
        app.notify(f"Run {run.id} already finished ({run.state}).", severity="warning")
        return

    async def act() -> str:
        await app.client.cancel_run(int(run.id))
        return f"Cancel requested for run {run.id}."

    _confirm(app, f"Cancel run {run.id}?", f"$ {run_command(run)}", act, "Cancel run")


async def rerun(app: DevyardApp, run: RunOut, action_id: str) -> RunOut | None:
    """Start ``run``'s command (or steps) again in the same project and environment; the new run.
    A job's run starts the job again at the same commit."""
    if not allowed(app, action_id):
        return None
    steps = [{"name": s.name, "command": s.command} for s in run.steps] if len(run.steps) > 1 else None
    try:
        if run.job:  # a job's run again: the job as it is now, at the commit this run had
            commit = run.code_commit if run.code_source == "repository" else None
            created = await app.client.run_job(str(run.project), run.job, ref=commit, trigger="manual")
            app.notify(f"Started run {created.id} of job {run.job}" + (f" at {commit[:12]}." if commit else "."))
            return created
        created = await app.client.create_run(
            str(run.project),
            [] if steps else list(run.command),
            steps=steps,
            environment=run.environment,
            trigger="manual",
            stop_signals=run.stop_signals or None,
            stop_grace_s=run.stop_grace_s,
        )
    except DevyardError as exc:
        app.notify(str(exc), severity="error")
        return None
    app.notify(f"Started run {created.id}: {run_command(created)}")
    return created


def copy_run_id(app: DevyardApp, run_id: int) -> None:
    app.copy_to_clipboard(str(run_id))
    app.notify(f"Copied run id {run_id}.")


def stop_devserver(app: DevyardApp, server: DevServerOut, action_id: str) -> None:
    """Ask, then stop ``server`` (its workspace stays)."""
    if not allowed(app, action_id):
        return
    if server.state in ("stopped", "stopping"):
        app.notify(f"Develop server {server.id} is already {server.state}.", severity="warning")
        return

    async def act() -> str:
        stopped = await app.client.stop_devserver(int(server.id))
        return f"Develop server {server.id} for {server.project} is {stopped.state}."

    _confirm(
        app,
        f"Stop the develop server for {server.project}?",
        "Its workspace stays on the volume; start it again to resume. Open shells end.",
        act,
        "Stop",
    )


def run_job(app: DevyardApp, job: JobOut, action_id: str) -> None:
    """Ask, then start a run of ``job`` now and open it."""
    if not allowed(app, action_id):
        return

    from tui.screens.confirm import ConfirmScreen

    started: list[int] = []

    async def act() -> str:
        run = await app.client.run_job(job.project, job.name, trigger="manual")
        started.append(run.id)
        return f"Job {job.name} started run {run.id}."

    def done(outcome: str | None) -> None:
        if outcome:
            app.notify(outcome)
        if started:  # after the dialog is gone, so the run view is not under it
            app.open_run(started[0])

    steps = "\n".join(f"{i}. $ {command_line(step.command)}" for i, step in enumerate(job.steps, start=1))
    where = f" in {job.environment}" if job.environment else ""
    app.push_screen(ConfirmScreen(f"Run job {job.name} of {job.project}{where} now?", steps, act, yes="Run"), done)


def trigger_schedule(app: DevyardApp, schedule: ScheduleOut, action_id: str) -> None:
    """Ask, then fire ``schedule`` now (its overlap policy applies)."""
    if not allowed(app, action_id):
        return

    async def act() -> str:
        tick = await app.client.trigger_schedule(str(schedule.name))
        if tick.state == "fired":
            return f"Schedule {schedule.name} fired run {tick.run_id}."
        return f"Schedule {schedule.name} did not fire: {tick.reason or tick.state}."

    _confirm(
        app,
        f"Fire schedule {schedule.name} now?",
        f"$ {command_line(schedule.command)}   (overlap policy: {schedule.overlap})",
        act,
        "Fire",
    )


def toggle_schedule(app: DevyardApp, schedule: ScheduleOut, action_id: str) -> None:
    """Pause ``schedule`` (after asking: ticks while paused are not caught up) or resume it."""
    if not allowed(app, action_id):
        return
    name = schedule.name
    if not schedule.enabled:
        app.run_worker(_resume(app, name), group="schedule-resume")
        return

    async def act() -> str:
        await app.client.update_schedule(name, enabled=False)
        return f"Schedule {name} paused."

    _confirm(
        app,
        f"Pause schedule {name}?",
        "It fires nothing until resumed (p again); ticks missed meanwhile are not caught up.",
        act,
        "Pause",
    )


async def _resume(app: DevyardApp, name: str) -> None:
    try:
        await app.client.update_schedule(name, enabled=True)
    except DevyardError as exc:
        app.notify(str(exc), severity="error")
        return
    app.notify(f"Schedule {name} resumed: it fires from its next tick on.")


def add_schedule(app: DevyardApp, project: str, action_id: str) -> None:
    """The form for a new schedule; say what was added."""
    if not allowed(app, action_id):
        return
    from tui.screens.new_schedule import NewScheduleScreen

    def added(schedule: ScheduleOut | None) -> None:
        if schedule is not None:
            app.notify(f"Schedule {schedule.name} added for {schedule.project}.")

    app.push_screen(NewScheduleScreen(project=project), added)


def open_shell(app: DevyardApp, server: DevServerOut, action_id: str) -> None:
    """Hand the terminal to ``yard dev shell`` for the server's project; come back when it exits."""
    if not allowed(app, action_id):
        return
    if server.state != "running":
        app.notify(
            f"The develop server for {server.project} is {server.state}; start it first (s).",
            severity="warning",
        )
        return
    from tui.child_env import yard_environment

    env = yard_environment(app.profile)
    with app.suspend():
        print(f"devyard: shell in the develop server for {server.project}; exit it to return to the TUI.")
        code = subprocess.call([YARD, "dev", "shell", "--project", str(server.project)], env=env)
    app.notify(f"The shell ended (exit code {code}).", severity="information" if code in (0, 130) else "warning")


def _confirm(app: DevyardApp, question: str, detail: str, act: Act, yes: str) -> None:
    """Ask in a dialog that runs ``act`` itself (so a refusal shows there); say the outcome."""
    from tui.screens.confirm import ConfirmScreen

    def done(outcome: str | None) -> None:
        if outcome:
            app.notify(outcome)

    app.push_screen(ConfirmScreen(question, detail, act, yes=yes), done)
