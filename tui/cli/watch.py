"""`yard watch [PATHS...] -- CMD...`: sync every change, then start a run of CMD."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer._click.core import Context as ClickContext
from typer.core import TyperCommand

from control.client import ConnectionFailed, ControlClient, DevyardError
from control.wire.runs import RunOut
from tui.cli.context import default_project, state
from tui.cli.dev import find_server
from tui.cli.output import console, errors, fail
from tui.cli.sync import BarProgress, LinePrinter, reconnector, stop_on_sigterm, tree_root

if TYPE_CHECKING:
    from sync.ignore import IgnoreRules
    from sync.triggers import TriggerFilter
    from sync.watcher import ChangeBatch

MAX_TRIGGER_PATHS = 50
LOG_TAIL = 200
FINISHED = frozenset({"succeeded", "failed", "cancelled", "timed_out", "lost"})


class CommandAfterDashes(TyperCommand):
    """Keeps everything after ``--`` as the command (click would add it to PATHS)."""

    def collect_usage_pieces(self, ctx: ClickContext) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "-- CMD..."]

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["command"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


class ApiRuns:
    """Runs through the control API, recorded as triggered by the watch."""

    def __init__(
        self,
        client: ControlClient,
        project: str,
        command: list[str],
        *,
        env: str | None,
        devserver: bool,
        cwd: str | None,
        local_tree: str | None = None,
    ) -> None:
        self.client = client
        self.project = project
        self.command = command
        self.env = env
        self.devserver = devserver
        self.cwd = cwd
        self.local_tree = local_tree

    def start(self, paths: list[str]) -> RunOut:
        info: dict[str, Any] = {"paths": paths[:MAX_TRIGGER_PATHS]}
        if len(paths) > MAX_TRIGGER_PATHS:
            info["more_paths"] = len(paths) - MAX_TRIGGER_PATHS
        return self.client.create_run(
            self.project,
            self.command,
            environment=self.env,
            cwd=self.cwd,
            local_tree=self.local_tree,
            trigger="watch",
            trigger_info=info,
            in_devserver=self.devserver,
        )

    def wait(self, run: RunOut) -> RunOut:
        try:
            for event in self.client.follow_logs(run.id, from_seq=10**9):
                if event.event == "end":
                    break
        except ConnectionFailed:
            pass  # the API restarted: fall back to asking
        while True:
            current = self.client.get_run(run.id)
            if current.state in FINISHED:
                return current
            time.sleep(0.2)

    def cancel(self, run: RunOut) -> None:
        self.client.cancel_run(run.id)


def _paths_text(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


class RunLines:
    """A compact line per run; the log of a run that did not succeed."""

    def __init__(self, client: ControlClient) -> None:
        self.client = client

    def started(self, run: RunOut, paths: list[str]) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        console.print(
            f"{stamp} [dim]run {run.id} started ({escape(_paths_text(paths))})[/]", highlight=False, soft_wrap=True
        )

    def finished(self, run: RunOut, paths: list[str]) -> None:
        from tui.cli.logs import LogPrinter

        stamp = datetime.now().strftime("%H:%M:%S")
        took = f" in {run.duration_s:.1f} s" if run.duration_s is not None else ""
        if run.state == "succeeded":
            console.print(f"{stamp} [green]✓[/] run {run.id} succeeded{took}", highlight=False, soft_wrap=True)
            return
        if run.cancel_requested:
            # Restarted by a newer change (whatever state the cancel left it in): no log to show.
            console.print(f"{stamp} [yellow]✗[/] run {run.id} cancelled{took}", highlight=False, soft_wrap=True)
            return
        detail = f" (exit code {run.exit_code})" if run.exit_code is not None else ""
        console.print(f"{stamp} [red]✗[/] run {run.id} {run.state}{detail}{took}", highlight=False, soft_wrap=True)
        try:
            blob, _ = self.client.read_logs(run.id, tail=LOG_TAIL)
        except DevyardError as exc:  # the line above already says what matters
            errors.print(f"(its log could not be read: {escape(str(exc))})", highlight=False, soft_wrap=True)
            return
        LogPrinter().write(blob)

    def skipped(self, paths: list[str]) -> None:
        console.print(
            f"[dim]a run is going; skipped {escape(_paths_text(paths))} (--on-busy skip)[/]",
            highlight=False,
            soft_wrap=True,
        )

    def failed(self, message: str) -> None:
        errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _relative(paths: list[Path], root: Path) -> list[str]:
    """The watched PATHS relative to the tree root; the root itself means everywhere."""
    relative: list[str] = []
    for path in paths:
        full = path.expanduser().resolve()
        if not full.exists():
            fail(f"{path} does not exist; give folders or files inside {root}.")
        if not full.is_relative_to(root):
            fail(f"{path} is outside {root}; give folders or files inside it.")
        if full == root:
            return []
        relative.append(full.relative_to(root).as_posix())
    return relative


def watch(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Only changes under these start a run \\[default: anywhere].")
    ] = None,
    glob: Annotated[
        list[str] | None, typer.Option("--glob", "-g", help="Only changes matching this glob start a run, repeatable.")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option("--ignore", "-i", help="Changes matching this glob never start one, repeatable.")
    ] = None,
    debounce: Annotated[
        int, typer.Option("--debounce", min=0, max=60_000, help="Wait this many ms after the last change.")
    ] = 50,
    on_busy: Annotated[
        str, typer.Option("--on-busy", help="While a run is going: queue one more, restart it, or skip.")
    ] = "queue",
    in_devserver: Annotated[
        bool | None,
        typer.Option(
            "--in-devserver/--no-devserver",
            help="Sync and run in your develop server's workspace \\[default: when one is running].",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Project \\[default: DEVYARD_PROJECT, else the repository's name]."),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment of the project.")] = None,
) -> None:
    """On every change: sync it, then start a run of CMD (given after --) and show how it went."""
    from sync.engine import SyncEngine
    from sync.ignore import IgnoreRules
    from sync.live import LiveSync
    from sync.state import state_home, state_key
    from sync.triggers import DEFAULT_IGNORES, POLICIES, RunDispatcher, TriggerFilter
    from sync.watcher import TreeWatcher

    command = ctx.meta.get("command") or []
    if not command or not command[0].strip():
        fail("Give the command to run after --, e.g. `yard watch -- pytest -q`.")
    if on_busy not in POLICIES:
        fail(f"--on-busy must be one of {', '.join(POLICIES)}, not {on_busy!r}.")
    root = tree_root(None)
    name = project or default_project(os.fspath(root))
    here = Path.cwd().resolve()
    triggers = TriggerFilter(_relative(paths or [], root), tuple(glob or ()), (*DEFAULT_IGNORES, *(ignore or ())))
    stop_on_sigterm()
    with state.client() as client:
        server = find_server(client, name)
        running = server is not None and server.state == "running"
        if in_devserver and not running:
            fail(f"Your develop server for project {name} is not running; start it with `yard dev start -p {name}`.")
        devserver = running if in_devserver is None else in_devserver
        # In a develop server the run works in the workspace's copy of this folder; without one,
        # in this folder itself (a local-tree run, which only the embedded stack's admin may ask for).
        cwd = (here.relative_to(root).as_posix() if here != root else None) if devserver else None
        local_tree = None if devserver else os.fspath(here)
        runs = ApiRuns(client, name, command, env=env, devserver=devserver, cwd=cwd, local_tree=local_tree)
        dispatcher = RunDispatcher(runs, RunLines(client), on_busy, debounce / 1000)
        where = f"develop server {server.id}" if devserver and server else "this machine"
        try:
            with TreeWatcher(root) as watcher:  # watching from here on: no change is missed
                errors.print(
                    f"Watching {escape(str(root))}; runs of `{escape(' '.join(command))}` go to {where}. Ctrl-C stops.",
                    highlight=False,
                    soft_wrap=True,
                )
                dispatcher.start()
                if devserver and server is not None:
                    engine = SyncEngine.open(client, server.id, str(server.workspace), root)
                    live = LiveSync(engine, watcher, reconnector(client, name), QuietLines(), BarProgress())
                    live.run(after=lambda batch, _: dispatcher.trigger(_relevant(batch, triggers, engine.rules)))
                else:
                    rules = IgnoreRules(root, state_home() / state_key("watch", "local", root))
                    for batch in watcher.batches():
                        dispatcher.trigger(_relevant(batch, triggers, rules))
        except KeyboardInterrupt:
            dispatcher.stop()
            errors.print("Stopped watching.", highlight=False, soft_wrap=True)


def _relevant(batch: ChangeBatch, triggers: TriggerFilter, rules: IgnoreRules) -> list[str]:
    """The changed paths that start a run: watched, matching, and not ignored."""
    return [path for path in triggers.pick(batch.paths) if not rules.skip(path)]


class QuietLines(LinePrinter):
    """Sync reports while watching for runs: only problems (the runs are the news)."""

    def __init__(self) -> None:
        super().__init__(as_json=False)

    def synced(self, report: Any) -> None:
        from tui.cli.sync import print_warnings

        print_warnings(report)
