"""`yard schedule ...`: cron schedules of runs, and `yard scheduler` (the daemon)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from control.wire.schedules import ScheduleOut
from tui.cli.context import default_project, state
from tui.cli.output import console, details, fail, humanize, print_json, table

app = typer.Typer(help="Cron schedules: add, ls, show, next, pause, resume, trigger, rm.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
COLUMNS = ["name", "project", "cron", "timezone", "enabled", "next_fire_at", "last", "command"]


def _row(schedule: ScheduleOut) -> dict[str, Any]:
    last = schedule.last_tick
    row = schedule.model_dump()
    row["command"] = " ".join(schedule.command)
    row["last"] = (
        f"{last['state']}" + (f" → run {last['run_id']} {last['run_state']}" if last and last.get("run_id") else "")
        if last
        else "-"
    )
    return row


@app.command("add")
def add(
    name: str,
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    cron: Annotated[str, typer.Option("--cron", help="Five-field cron expression, e.g. '0 6 * * 1-5'.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA timezone the cron expression is read in.")] = "UTC",
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Project \\[default: DEVYARD_PROJECT or the current folder's name]."),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment of the project.")] = None,
    catchup: Annotated[
        str, typer.Option("--catchup", help="Missed ticks: latest (fire the newest), all (up to --catchup-cap), none.")
    ] = "latest",
    catchup_cap: Annotated[
        int, typer.Option("--catchup-cap", min=1, max=1000, help="At most this many missed ticks with --catchup all.")
    ] = 10,
    overlap: Annotated[
        str, typer.Option("--overlap", help="Previous run still going: skip, queue or cancel_previous.")
    ] = "skip",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    tty: Annotated[
        bool, typer.Option("--tty", help="Its runs get a pseudo-terminal (120x40) instead of one pipe.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Add a schedule that runs COMMAND on a cron expression."""
    body = {
        "name": name,
        "project": project or default_project(),
        "environment": env,
        "command": command,
        "cron": cron,
        "timezone": tz,
        "catchup": catchup,
        "catchup_cap": catchup_cap,
        "overlap": overlap,
        "enabled": not paused,
        "tty": tty,
    }
    with state.client() as client:
        created = client.create_schedule(**body)
    if as_json:
        print_json(created)
    else:
        console.print(f"Schedule [bold]{name}[/] added; next run {humanize(created.next_fire_at)}.")


@app.command("ls")
def list_schedules(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List schedules with their next fire time and last result."""
    with state.client() as client:
        items = client.list_schedules(project=project)
    print_json(items) if as_json else table([_row(s) for s in items], COLUMNS)


@app.command("show")
def show(
    name: str,
    limit: Annotated[int, typer.Option("--ticks", help="How many recent ticks to show.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Show a schedule and its tick history."""
    with state.client() as client:
        schedule = client.get_schedule(name)
        ticks = client.schedule_ticks(name, limit=limit)
    if as_json:
        print_json({**schedule.model_dump(mode="json"), "ticks": ticks})
        return
    details(
        _row(schedule),
        [
            "name",
            "project",
            "environment",
            "user",
            "command",
            "cron",
            "timezone",
            "enabled",
            "catchup",
            "catchup_cap",
            "overlap",
            "next_fire_at",
        ],
    )
    console.print()
    table(ticks, ["scheduled_for", "state", "run_id", "run_state", "reason"], title="Recent ticks")


@app.command("next")
def next_fires(
    name: str,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=100, help="How many.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """The next fire times of a schedule (in its timezone and in yours)."""
    with state.client() as client:
        schedule = client.get_schedule(name)
        times = client.schedule_next(name, count=count)
    if as_json:
        print_json(times)
        return
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(schedule.timezone)
    for moment in times:
        console.print(f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}   ({moment.astimezone():%Y-%m-%d %H:%M %Z} local)")


def _set(name: str, as_json: bool, **changes: Any) -> None:
    with state.client() as client:
        updated = client.update_schedule(name, **changes)
    if as_json:
        print_json(updated)
    else:
        status = "enabled" if updated.enabled else "paused"
        console.print(f"Schedule [bold]{name}[/] {status}; next run {humanize(updated.next_fire_at)}.")


@app.command("pause")
def pause(name: str, as_json: JsonOption = False) -> None:
    """Stop firing a schedule (ticks while paused are not caught up later)."""
    _set(name, as_json, enabled=False)


@app.command("resume")
def resume(name: str, as_json: JsonOption = False) -> None:
    """Fire a paused schedule again, from the next tick on."""
    _set(name, as_json, enabled=True)


@app.command("trigger")
def trigger(name: str, as_json: JsonOption = False) -> None:
    """Fire a schedule now (its overlap policy applies)."""
    with state.client() as client:
        result = client.trigger_schedule(name)
    if as_json:
        print_json(result)
    elif result.run_id is not None:
        console.print(f"Schedule [bold]{name}[/] fired: run {result.run_id} queued.")
    else:
        fail(f"Schedule {name} did not fire: {result.reason}.")


@app.command("rm")
def remove(name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Remove a schedule (its runs stay)."""
    if not yes and not typer.confirm(f"Remove schedule {name}?", err=True):
        raise typer.Exit(1)
    with state.client() as client:
        client.delete_schedule(name)
    console.print(f"Schedule [bold]{name}[/] removed.")


def scheduler(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data dir whose settings to use.")] = None,
) -> None:
    """Run the scheduler daemon against the configured database (`yard up` runs one in-process)."""
    import logging
    import signal
    import threading

    from control.datadir import private_umask
    from control.settings import load_settings
    from runner.scheduler import serve_standalone

    private_umask()
    settings = load_settings(data_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def started(dialect: str) -> None:
        console.print(f"Scheduler running on {dialect}; Ctrl-C stops it.")

    try:
        serve_standalone(settings, stop, started)
    except KeyboardInterrupt:
        stop.set()
