"""`yard sync`: send the local tree and its git state to your develop server, once or live."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from control.client import ControlClient, DevyardError
from control.wire.devservers import DevServerOut
from tui.cli.context import default_project, state
from tui.cli.dev import find_server, running_server
from tui.cli.output import console, errors, fail, print_json
from tui.cli.sync_common import describe, document, find_tree, git_root, synced_line

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from sync.engine import SyncEngine, SyncReport
    from sync.remote import RemoteWorkspace

# A bar is worth drawing only for a sync that takes a while.
PROGRESS_FILES = 500
PROGRESS_BYTES = 20 * 1024 * 1024
DRY_RUN_LIST = 50
LEFT_LIST = 10


def tree_root(path: Path | None) -> Path:
    """The local tree to mirror: PATH, else the git repository around the current directory, else it."""
    found = find_tree(path)
    if isinstance(found, str):
        fail(found)
    return found


class BarProgress:
    """A Rich progress bar on stderr, drawn only in a terminal and only for a big sync."""

    def __init__(self) -> None:
        self._bar: RichProgress | None = None
        self._task: Any = None
        self._files = self._total_files = 0

    def begin(self, files: int, nbytes: int) -> None:
        if not errors.is_terminal or (files < PROGRESS_FILES and nbytes < PROGRESS_BYTES):
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]} files"),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
        )
        self._task = self._bar.add_task("syncing", total=nbytes or 1, files=f"0/{files}")
        self._files, self._total_files = 0, files
        self._bar.start()

    def advance(self, files: int, nbytes: int) -> None:
        if self._bar is None:
            return
        self._files += files
        self._bar.update(self._task, advance=nbytes, files=f"{self._files}/{self._total_files}")

    def git(self) -> None:
        # A big repository's first push takes seconds after the last file: say what is going on.
        if self._bar is not None:
            self._bar.update(self._task, description="pushing git objects")

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def print_warnings(report: SyncReport) -> None:
    """Conflicts, refusals and unreadable files, one line each on stderr."""
    kept = "would be kept" if report.dry_run else "is kept"
    for conflict in report.conflicts:
        errors.print(
            f"[yellow]conflict:[/] {escape(conflict['path'])} changed on the develop server since the last sync;"
            f" its version {kept} as {escape(conflict['kept_as'])}.",
            highlight=False,
            soft_wrap=True,
        )
    for refused in report.refused:
        errors.print(
            f"[bold red]refused:[/] {escape(refused['path'])}: {escape(refused['message'])}",
            highlight=False,
            soft_wrap=True,
        )
    if report.left:
        shown = ", ".join(report.left[:LEFT_LIST]) + (
            f" and {len(report.left) - LEFT_LIST:,} more" if len(report.left) > LEFT_LIST else ""
        )
        errors.print(
            f"[yellow]only in the workspace:[/] {escape(shown)} (made there, never synced) "
            f"{'would stay' if report.dry_run else 'stayed'} there; `yard sync --fetch {escape(report.left[0])}` copies it here.",
            highlight=False,
            soft_wrap=True,
        )
    for path in report.unreadable:
        errors.print(f"[yellow]skipped:[/] {escape(path)} could not be read.", highlight=False, soft_wrap=True)
    if report.git is not None and report.git.kept_ref:
        errors.print(
            f"[yellow]conflict:[/] the develop server's branch had commits your repository lacks;"
            f" they are kept as {report.git.kept_ref}.",
            highlight=False,
            soft_wrap=True,
        )


def run_once(engine: SyncEngine, *, dry_run: bool = False) -> SyncReport:
    """One full sync with a progress bar; a lost develop server becomes one clear sentence."""
    from sync.remote import DevserverUnavailable

    bar = BarProgress()
    try:
        return engine.sync(dry_run=dry_run, progress=bar)
    except DevserverUnavailable as exc:
        fail(
            f"The develop server could not be reached during the sync ({str(exc).rstrip('.')});"
            " nothing half-written was left, and `yard sync` again finishes it."
        )
    finally:
        bar.end()


def sync(
    path: Annotated[
        Path | None, typer.Argument(help="The folder to mirror \\[default: the git repository you are in].")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep syncing every change until Ctrl-C.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only say what would be sent.")] = False,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Project \\[default: DEVYARD_PROJECT, else the repository's name]."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (with --watch: one per line).")
    ] = False,
    fetch: Annotated[
        list[str] | None,
        typer.Option(
            "--fetch",
            metavar="PATH",
            help="Copy PATH (made in the workspace, never synced) into the local tree instead of syncing.",
        ),
    ] = None,
) -> None:
    """Make your develop server's workspace equal to the local tree, at the same git commit."""
    from sync.engine import SyncEngine

    if watch and dry_run:
        fail("--dry-run shows one sync; it cannot be combined with --watch.")
    if fetch and (watch or dry_run):
        fail("--fetch copies files from the workspace; it cannot be combined with --watch or --dry-run.")
    root = tree_root(path)
    name = project or default_project(os.fspath(root))
    with state.client() as client:
        server = running_server(client, name)
        if fetch:
            fetch_paths(client, server.id, root, fetch, as_json)
            return
        engine = SyncEngine.open(client, server.id, str(server.workspace), root)
        if watch:
            keep_live(client, engine, name, as_json)
            return
        report = run_once(engine, dry_run=dry_run)
    if as_json:
        print_json(document(report, root, name, server.id))
    else:
        print_summary(report, root, server)
    if report.refused:
        raise typer.Exit(1)


def fetch_paths(client: ControlClient, server_id: int, root: Path, paths: list[str], as_json: bool) -> None:
    """``--fetch``: copy workspace-only entries into the local tree, one sentence each."""
    from sync.fetch import FetchRefused, fetch
    from sync.remote import RemoteWorkspace

    remote = RemoteWorkspace(client, server_id)
    manifest = remote.manifest()
    done = []
    for path in paths:
        try:
            fetched = fetch(root, remote, path, manifest)
        except FetchRefused as exc:
            fail(str(exc))
        done.append(fetched)
        if not as_json:
            console.print(
                f"Fetched {escape(fetched.path)} into {escape(str(root))}: {fetched.files} file(s),"
                f" {fetched.bytes:,} bytes; the next `yard sync` finds it on both sides.",
                highlight=False,
                soft_wrap=True,
            )
    if as_json:
        print_json({"fetched": [vars(item) for item in done], "root": os.fspath(root)})


def print_summary(report: SyncReport, root: Path, server: DevServerOut) -> None:
    print_warnings(report)
    if report.dry_run:
        console.print(
            f"Dry run for {escape(str(root))} → develop server {server.id}: {escape(describe(report))}.",
            highlight=False,
            soft_wrap=True,
        )
        for change in report.changes[:DRY_RUN_LIST]:
            console.print(f"  {change['op']:<6} {escape(change['path'])}", highlight=False, soft_wrap=True)
        if len(report.changes) > DRY_RUN_LIST:
            console.print(f"  … and {len(report.changes) - DRY_RUN_LIST:,} more", highlight=False, soft_wrap=True)
        return
    console.print(escape(synced_line(report, root, server.id)), highlight=False, soft_wrap=True)


class LinePrinter:
    """Reports of a live sync, as a line each (or a JSON object each)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def synced(self, report: SyncReport) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(report.to_json(), default=str) + "\n")
            sys.stdout.flush()
            return
        print_warnings(report)
        if report.kind == "push" and not report.changed:
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        what = describe(report)
        if report.kind == "push" and report.paths:
            shown = ", ".join(report.paths[:3]) + (
                f" and {len(report.paths) - 3} more" if len(report.paths) > 3 else ""
            )
            what += f"  ({shown})"
        console.print(f"{stamp} {escape(what)}", highlight=False, soft_wrap=True)

    def waiting(self, message: str) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps({"kind": "waiting", "message": message}) + "\n")
            sys.stdout.flush()
            return
        errors.print(
            f"[yellow]waiting:[/] {escape(message)} (retrying; your changes are kept and sent when it is back)",
            highlight=False,
            soft_wrap=True,
        )

    def reconnected(self) -> None:
        if not self.as_json:
            errors.print("The develop server is back; checking everything.", highlight=False, soft_wrap=True)


def reconnector(client: ControlClient, project: str) -> Callable[[], RemoteWorkspace]:
    """A function that finds the project's develop server again once it is running."""
    from sync.remote import DevserverUnavailable, RemoteWorkspace

    def reconnect() -> RemoteWorkspace:
        try:
            server = find_server(client, project)
        except DevyardError as exc:
            raise DevserverUnavailable(str(exc)) from exc
        if server is None or server.state != "running":
            state_text = f"is {server.state}" if server else "does not exist"
            raise DevserverUnavailable(
                f"Your develop server for project {project} {state_text}; `yard dev start -p {project}` brings it back"
            )
        return RemoteWorkspace(client, server.id)

    return reconnect


def stop_on_sigterm() -> None:
    """SIGTERM stops a watch the way Ctrl-C does (state saved, exit 0)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def keep_live(client: ControlClient, engine: SyncEngine, project: str, as_json: bool) -> None:
    """`yard sync --watch`."""
    from sync.live import LiveSync
    from sync.watcher import TreeWatcher

    stop_on_sigterm()
    printer = LinePrinter(as_json)
    started = time.monotonic()
    try:
        with TreeWatcher(engine.root) as watcher:  # watching before the first sync: nothing is missed
            if not as_json:
                errors.print(f"Watching {escape(str(engine.root))}; Ctrl-C stops.", highlight=False, soft_wrap=True)
            LiveSync(engine, watcher, reconnector(client, project), printer, BarProgress()).run()
    except KeyboardInterrupt:
        if not as_json:
            errors.print(f"Stopped after {time.monotonic() - started:.0f} s.", highlight=False, soft_wrap=True)


def offer(project: str) -> None:
    """After `yard dev start` in a terminal: offer to sync the repository you are in."""
    from sync.engine import SyncEngine

    root = git_root(Path.cwd().resolve())
    if root is None or default_project(os.fspath(root)) != project:
        return
    if not typer.confirm(f"Sync {root} into the workspace now?", default=True):
        return
    with state.client() as client:
        server = running_server(client, project)
        engine = SyncEngine.open(client, server.id, str(server.workspace), root)
        report = run_once(engine)
    print_summary(report, root, server)
    console.print("Keep it in sync as you edit with `yard sync --watch`.", highlight=False, soft_wrap=True)
