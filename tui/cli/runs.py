"""`yard run` and `yard runs ...`: launch commands as runs, follow and inspect them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from control.client import ConnectionFailed, ControlClient, DevyardError, NotFound
from control.wire.errors import PROJECT_NOT_FOUND
from control.wire.runs import RunOut
from tui.cli.closed_pipe import watch_stdout
from tui.cli.context import default_project, state
from tui.cli.logs import LogPrinter, renders, tty_fields
from tui.cli.output import console, details, errors, fail, humanize, print_json, table
from tui.cli.paging import collect
from tui.cli.run_outcome import DETACHED_EXIT_CODE, exit_code_of, sentence, state_words

app = typer.Typer(help="Inspect runs: list, show, logs, cancel, artifacts.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
COLUMNS = ["id", "state", "project", "job", "trigger", "exit_code", "duration_s", "queued_at", "user", "command"]
SHOW = [
    "id",
    "state",
    "project",
    "job",
    "environment",
    "user",
    "command",
    "cwd",
    "trigger",
    "trigger_info",
    "attempt",
    "max_retries",
    "retry_of_id",
    "timeout_s",
    "exit_code",
    "error",
    "cancel_requested",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_s",
    "log_chunks",
    "log_lines",
    "log_bytes",
    "artifact_globs",
    "tty",
    "stop_signals",
    "stop_grace_s",
    "code_source",
    "code_repo_url",
    "code_ref",
    "code_commit",
]
STEP_COLUMNS = ["step", "name", "state", "exit_code", "duration_s", "log_line", "command"]
FOLLOW_RETRY_S = 30.0


def follow(client: ControlClient, run_id: int, printer: LogPrinter) -> RunOut:
    """Print the run's log until it ends, resuming after connection drops; returns the run."""
    deadline = None
    while True:
        try:
            for event, seq, payload in client.follow_log_frames(run_id, from_seq=printer.next_seq):
                deadline = None
                if event == "chunk":
                    printer.write_chunk(seq, payload)
                elif event == "error":
                    fail(str(json.loads(payload).get("message", "The log stream failed.")))
                elif event == "end":
                    return client.get_run(run_id)
        except ConnectionFailed:
            deadline = deadline or time.monotonic() + FOLLOW_RETRY_S
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _interrupted(client: ControlClient, run_id: int) -> None:
    """Ctrl-C while following: cancel the run or detach from it. Detaching exits with
    DETACHED_EXIT_CODE, not 0: the run's outcome is unknown, and a script must not read that as
    success (`yard run --detach` is the way to leave a run on purpose)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cancel = typer.confirm(f"\nCancel run {run_id}? (no detaches and leaves it running)", default=False, err=True)
    except (KeyboardInterrupt, typer.Abort):
        cancel = False
    if cancel:
        client.cancel_run(run_id)
        errors.print(f"Run {run_id} cancel requested.")
    else:
        errors.print(f"Detached; the run goes on. Follow it again with `yard runs logs {run_id} -f`.")
        raise typer.Exit(DETACHED_EXIT_CODE)


def run(
    command: Annotated[
        list[str] | None, typer.Argument(help="The command and its arguments (after --); none with --step.")
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", "-p", help="Project \\[default: DEVYARD_PROJECT, else the current git repository's name]."
        ),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment of the project.")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Print the run id and return at once.")] = False,
    timeout: Annotated[
        int | None, typer.Option("--timeout", min=1, help="Stop the command after this many seconds.")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=10, help="Retry a failed run this many times.")] = 0,
    cwd: Annotated[
        str | None,
        typer.Option(
            "--cwd", help="Working directory inside the run's code folder (its own folder or your workspace)."
        ),
    ] = None,
    artifact: Annotated[
        list[str] | None, typer.Option("--artifact", "-a", help="Glob of files to keep after the run, repeatable.")
    ] = None,
    step: Annotated[
        list[str] | None,
        typer.Option(
            "--step",
            help="A step NAME=COMMAND (split like a shell would, not run by one), repeatable: run in order,"
            " stopping at the first that fails.",
        ),
    ] = None,
    stop_signal: Annotated[
        str | None,
        typer.Option(
            "--stop-signal",
            help="Signals for cancel and timeout, in order, e.g. INT,TERM (KILL follows) \\[default: TERM].",
        ),
    ] = None,
    stop_grace: Annotated[
        str | None,
        typer.Option("--stop-grace", help="Wait this long after each stop signal, e.g. 30s or 2m \\[default: 10s]."),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Retrying with the same key returns the same run.")
    ] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix lines with the time they were printed.")
    ] = False,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Run a fresh checkout of this branch, tag or commit of the project's repository."),
    ] = None,
    workspace: Annotated[
        bool,
        typer.Option("--workspace", help="Run in your develop server's workspace (fails if it is not running)."),
    ] = False,
    no_checkout: Annotated[
        bool, typer.Option("--no-checkout", help="Run in an empty folder: for commands that need no code.")
    ] = False,
    in_devserver: Annotated[
        bool | None,
        typer.Option("--in-devserver/--no-devserver", hidden=True, help="Older spelling of --workspace."),
    ] = None,
    tty: Annotated[
        bool,
        typer.Option("--tty", help="Give the command a pseudo-terminal: colours, progress bars, a terminal's order."),
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the stored bytes untouched (the default when not on a terminal).")
    ] = False,
    job: Annotated[
        str | None,
        typer.Option("--job", "-j", help="Run this saved job of the project (`yard jobs ls`) instead of a command."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start COMMAND (the --step commands, or a saved job with --job) as a run, follow its log, and exit with its exit code."""
    if job is not None:
        given = [
            flag
            for flag, value in (
                ("a command", command),
                ("--env", env),
                ("--timeout", timeout),
                ("--retries", retries),
                ("--cwd", cwd),
                ("--artifact", artifact),
                ("--tty", tty),
                ("--in-devserver", in_devserver),
                ("--step", step),
                ("--stop-signal", stop_signal),
                ("--stop-grace", stop_grace),
                ("--workspace", workspace),
                ("--no-checkout", no_checkout),
            )
            if value
        ]
        if given:
            fail(f"--job runs the job as saved, so it takes no {given[0]}; change the job with `yard jobs edit {job}`.")
        with state.client() as client:
            created = client.run_job(
                project or default_project(), job, ref=ref, trigger="manual", idempotency_key=idempotency_key
            )
            follow_to_exit(client, created, detach=detach, as_json=as_json, timestamps=timestamps, raw=raw)
        return
    steps = [parse_step(text) for text in step or []]
    if steps and command:
        fail("Give either a command after -- or --step options, not both.")
    if not steps and (not command or not command[0].strip()):
        fail(
            "Give the command to run after --, e.g. `yard run -- make test`, --step NAME=COMMAND, or a saved job with --job NAME."
        )
    if sum((ref is not None, workspace, no_checkout)) > 1:
        fail("Give at most one of --ref, --workspace and --no-checkout.")
    code = "workspace" if workspace else "none" if no_checkout else None
    name = project or default_project()
    with state.client() as client:
        try:
            created = client.create_run(
                name,
                command or [],
                steps=steps or None,
                stop_signals=stop_signal.split(",") if stop_signal else None,
                stop_grace_s=parse_duration(stop_grace, "--stop-grace") if stop_grace else None,
                environment=env,
                timeout_s=timeout,
                max_retries=retries,
                cwd=cwd,
                artifacts=artifact or [],
                idempotency_key=idempotency_key,
                trigger="manual",
                in_devserver=in_devserver,
                code=code,
                ref=ref,
                **tty_fields(tty),
            )
        except NotFound as exc:
            if exc.code == PROJECT_NOT_FOUND:
                fail(f"Project {name} does not exist; create it with `yard projects add {name}` or pass --project.")
            raise
        follow_to_exit(client, created, detach=detach, as_json=as_json, timestamps=timestamps, raw=raw)


def follow_to_exit(
    client: ControlClient, created: RunOut, *, detach: bool, as_json: bool, timestamps: bool, raw: bool
) -> None:
    """Print a run's log (unless ``detach``) through its retries, then exit with its exit code."""
    run_id = created.id
    if detach:
        print_json(created) if as_json else console.print(f"Run {run_id} {state_words(created.state)}.")
        return
    printer = LogPrinter(timestamps=timestamps, render=renders(raw))
    watch_stdout()  # `yard run ... | head`: leave when the reader does; the run goes on
    while True:
        try:
            final = _wait(client, run_id) if as_json else follow(client, run_id, printer)
            break
        except KeyboardInterrupt:
            _interrupted(client, run_id)
    final = _through_retries(client, final, printer, as_json)
    if as_json:
        print_json(final)
    elif final.state != "succeeded":
        errors.print(sentence(final.model_dump()), highlight=False)
    raise typer.Exit(exit_code_of(final.model_dump()))


def parse_step(text: str) -> dict[str, object]:
    """``build=dbt build --select x`` → ``{"name": "build", "command": ["dbt", "build", ...]}``."""
    import shlex

    name, eq, line = text.partition("=")
    if not eq or not name.strip():
        fail(f"--step {text!r} needs a name and a command: --step 'NAME=COMMAND', e.g. --step 'build=dbt build'.")
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        fail(f"The command of step {name.strip()} cannot be read: {exc}.")
    if not argv:
        fail(f"Step {name.strip()} has no command; give one after '=', e.g. --step '{name.strip()}=make test'.")
    return {"name": name.strip(), "command": argv}


def parse_duration(text: str, option: str) -> float:
    """``10``, ``10s``, ``500ms``, ``2m``, ``1h`` → seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    unit = next((u for u in ("ms", "s", "m", "h") if value.endswith(u)), "")
    try:
        seconds = float(value[: len(value) - len(unit)]) * units.get(unit, 1.0)
    except ValueError:
        fail(f"{option} {text!r} is not a duration; give seconds or a number with ms, s, m or h, e.g. 30s.")
    if seconds <= 0:
        fail(f"{option} must be longer than 0 s.")
    return seconds


def resume_after_interrupt(run_id: int, printer: LogPrinter) -> int:
    """Ctrl-C during the fast path of `yard run`: ask, then cancel or detach like `run` does."""
    with state.client() as client:
        try:
            while True:
                try:
                    _interrupted(client, run_id)
                    final = follow(client, run_id, printer)
                    break
                except KeyboardInterrupt:
                    continue
        except typer.Exit as leave:
            return int(leave.exit_code)
    if final.state != "succeeded":
        errors.print(sentence(final.model_dump()), highlight=False)
    return exit_code_of(final.model_dump())


def finish_following(run_id: int, printer: LogPrinter, final: RunOut | None = None) -> int:
    """The fast path of `yard run` hands over here: follow run ``run_id`` on from ``printer``
    (unless ``final``, the run already ended), then its retries; the exit code."""
    try:
        try:
            with state.client() as client:
                while final is None:
                    try:
                        final = follow(client, run_id, printer)
                    except KeyboardInterrupt:
                        _interrupted(client, run_id)
                final = _through_retries(client, final, printer, as_json=False)
        except DevyardError as exc:  # as tui.cli.main says it
            fail(str(exc))
    except typer.Exit as leave:
        return int(leave.exit_code)
    if final.state != "succeeded":
        errors.print(sentence(final.model_dump()), highlight=False)
    return exit_code_of(final.model_dump())


def _wait(client: ControlClient, run_id: int) -> RunOut:
    for event in client.follow_logs(run_id, from_seq=10**9):
        if event.event == "end":
            break
    return client.get_run(run_id)


def _through_retries(client: ControlClient, run: RunOut, printer: LogPrinter, as_json: bool) -> RunOut:
    """Follow retries of a failed run until one succeeds or none is left."""
    while run.state != "succeeded" and run.attempt <= run.max_retries:
        retry = next(
            (r for r in client.list_runs(limit=50, project=run.project).items if r.retry_of_id == run.id),
            None,
        )
        if retry is None:
            break
        if not as_json:
            errors.print(
                f"{sentence(run.model_dump()).rstrip('.')}; retrying as run {retry.id} (attempt {retry.attempt}).",
                highlight=False,
            )
        printer.next_seq = 1  # a new run: its log starts at chunk 1
        run = _wait(client, retry.id) if as_json else follow(client, retry.id, printer)
    return run


@app.command("ls")
def list_runs(
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Only runs in this state, repeatable.")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    trigger: Annotated[
        str | None, typer.Option("--trigger", help="manual, api, schedule, watch, retry or job.")
    ] = None,
    job: Annotated[str | None, typer.Option("--job", "-j", help="Only runs of jobs of this name.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    with state.client() as client:
        items = collect(client.list_runs, limit, state=status, project=project, trigger=trigger, job=job)
    if as_json:
        print_json(items)
        return
    table([{**item.model_dump(), "command": command_text(item)[:60]} for item in items], COLUMNS)


def command_text(run: RunOut) -> str:
    """The command of a run of one step; the step names of a run of several."""
    if len(run.steps) > 1:
        return f"{len(run.steps)} steps: " + ", ".join(step.name for step in run.steps)
    return " ".join(run.command)


@app.command("show")
def show(run_id: int, as_json: JsonOption = False) -> None:
    """Show one run."""
    with state.client() as client:
        found = client.get_run(run_id)
    if as_json:
        print_json(found)
        return
    details(found, SHOW)
    if found.steps:
        console.print()
        rows = [
            {**step.model_dump(), "step": step.index + 1, "command": " ".join(step.command)} for step in found.steps
        ]
        table(rows, STEP_COLUMNS)


@app.command("logs")
def logs(
    run_id: int,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", min=0, help="Only the last N lines.")] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix lines with the time they were printed.")
    ] = False,
    stream: Annotated[str, typer.Option("--stream", help="stdout, stderr or both.")] = "both",
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the stored bytes untouched (the default when not on a terminal).")
    ] = False,
) -> None:
    """Print a run's log, in the order it was written (on a terminal, `\\r` rewrites show their final state)."""
    streams = {"stdout": "o", "stderr": "e", "both": "oe"}.get(stream)
    if streams is None:
        fail(f"--stream must be stdout, stderr or both, not '{stream}'.")
    printer = LogPrinter(timestamps=timestamps, streams=streams, render=renders(raw))
    if follow_:
        watch_stdout()  # `yard runs logs -f | head`: leave when the reader does; the run goes on
    with state.client() as client:
        blob, last_seq = client.read_logs(run_id, tail=tail)
        printer.write(blob)
        if follow_:
            printer.next_seq = last_seq + 1
            try:
                for event, seq, payload in client.follow_log_frames(run_id, from_seq=printer.next_seq):
                    if event == "chunk":
                        printer.write_chunk(seq, payload)
                    elif event == "error":
                        fail(str(json.loads(payload).get("message", "The log stream failed.")))
                    elif event == "end":
                        break
            except KeyboardInterrupt:
                raise typer.Exit(130) from None


@app.command("cancel")
def cancel(run_id: int, as_json: JsonOption = False) -> None:
    """Cancel a run (queued: at once; running: its stop signals, TERM by default, then KILL)."""
    with state.client() as client:
        result = client.cancel_run(run_id)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"Run {run_id} {state_words(result.state)}"
            + (" (cancel requested)." if result.state not in ("cancelled",) else ".")
        )


@app.command("artifacts")
def artifacts(
    run_id: Annotated[int | None, typer.Argument(help="The run (or use --latest).")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="The newest finished run that matches -p, -e, --job and --state.")
    ] = False,
    project: Annotated[str | None, typer.Option("--project", "-p", help="With --latest: only this project.")] = None,
    job: Annotated[str | None, typer.Option("--job", "-j", help="With --latest: only runs of this job.")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="With --latest: only this environment.")] = None,
    run_state: Annotated[
        list[str] | None,
        typer.Option("--state", help="With --latest: only runs in this state (e.g. succeeded), repeatable."),
    ] = None,
    download: Annotated[Path | None, typer.Option("--download", help="Save every artifact under this folder.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List a run's artifacts, or download them (--latest: of the newest matching run)."""
    if (run_id is None) == (not latest):
        fail("Name a run, or ask for --latest (with -p, -e, --job, --state to choose), not both.")
    if not latest and (project or env or job or run_state):
        fail("-p, -e, --job and --state choose the run of --latest; a run named by its id needs none.")
    with state.client() as client:
        if latest:
            found = client.latest_artifacts(project=project, environment=env, state=run_state, job=job)
            run_id, listed = found.run.id, found.artifacts
            if not as_json:
                errors.print(f"Run {run_id} ({found.run.state}, finished {humanize(found.run.finished_at)}).")
        else:
            assert run_id is not None
            listed = client.list_artifacts(run_id)
        items = [item.model_dump(mode="json") for item in listed]
        if download is not None:
            for item in items:
                target = (download / item["path"]).resolve()
                if not target.is_relative_to(download.resolve()):
                    fail(f"Artifact path {item['path']} would leave {download}.")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "wb") as handle:
                        client.download_artifact(run_id, item["id"], handle)
                except OSError as exc:
                    fail(f"Cannot save {item['path']} under {download}: {exc.strerror or exc}.")
                item["saved_to"] = str(target)
    if as_json:
        print_json(items)
    else:
        table(items, ["id", "path", "size", "sha256", *(["saved_to"] if download else [])])


def agent(
    substrate: Annotated[
        str, typer.Option("--substrate", help="local, docker or kubernetes \\[default: DEVYARD_SUBSTRATE or local].")
    ] = "",
    name: Annotated[str | None, typer.Option("--name", help="Agent name \\[default: <hostname>-<substrate>].")] = None,
    queue: Annotated[
        str, typer.Option("--queue", help="Queue to serve (environments route work by queue).")
    ] = "default",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the volume and spools live.")] = None,
    devserver_host: Annotated[
        str | None,
        typer.Option(
            "--devserver-host",
            help="Local substrate: an address of this machine the API reaches develop servers at"
            " \\[default: DEVYARD_DEVSERVER_HOST or 127.0.0.1, for an API on this machine].",
        ),
    ] = None,
) -> None:
    """Run an agent: claim work from the control API and launch it on this machine."""
    import logging
    import threading

    from compose.agent import agent_for
    from compose.launcher import LaunchError
    from control.datadir import DataDir, private_umask
    from control.settings import load_settings

    private_umask()  # spools, develop server secrets and logs are this user's alone
    settings = load_settings(data_dir, devserver_host=devserver_host)
    try:
        agent = agent_for(settings, state.client(), substrate=substrate or None, name=name, queue=queue)
    except LaunchError as exc:
        fail(str(exc))
    DataDir(settings.data_dir).prepare()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        agent.register()
    except DevyardError as exc:
        fail(str(exc))
    console.print(
        f"Agent {agent.config.name} (id {agent.agent_id}) serving queue '{queue}' at {agent.client.url}; Ctrl-C stops it (runs keep going)."
    )
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        agent.stop()
