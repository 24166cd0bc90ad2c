"""`yard`: the entry point. With no command it opens the full-screen TUI."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from tui.cli import (
    deploy,
    dev,
    hooks,
    jobs,
    notify,
    ports,
    projects,
    runs,
    schedules,
    stack,
    sync,
    tokens,
    users,
    watch,
)
from tui.cli.context import state
from tui.cli.output import errors

app = typer.Typer(
    name="yard",
    help="devyard: develop servers, runs, schedules and live logs from your terminal.",
    invoke_without_command=True,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    add_completion=True,
)


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Client profile to use \\[env: DEVYARD_PROFILE].")
    ] = None,
) -> None:
    state.profile = profile
    if ctx.invoked_subcommand is None:
        tui()


@app.command("tui")
def tui(
    read_only: Annotated[bool, typer.Option("--read-only", help="Never launch or change anything.")] = False,
) -> None:
    """Open the full-screen terminal UI."""
    from tui.app import run_app
    from tui.cli.output import fail
    from tui.launch import terminal_problem

    problem = terminal_problem()
    if problem is not None:
        fail(problem, code=2)

    run_app(state.profile, read_only=read_only)


app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)
app.command()(stack.login)
app.command()(stack.doctor)
app.command(context_settings={"allow_interspersed_args": False})(runs.run)
app.add_typer(runs.app, name="runs")
app.command()(runs.agent)
app.add_typer(jobs.app, name="jobs")
app.add_typer(schedules.app, name="schedule")
app.command()(schedules.scheduler)
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(projects.projects, name="projects")
app.add_typer(projects.envs, name="envs")
dev.app.command()(ports.forward)
dev.app.command()(ports.ports)
dev.app.command()(ports.preview)
app.add_typer(dev.app, name="dev")
app.command()(sync.sync)
app.command(cls=watch.CommandAfterDashes)(watch.watch)
app.add_typer(deploy.app, name="deploy")
app.add_typer(hooks.app, name="hooks")
app.add_typer(notify.app, name="notify")
app.add_typer(notify.deliveries_app, name="notifications")


# Expected problems, by the module that defines them. A module that was never imported cannot
# have raised one, so they are looked up after the fact instead of imported up front: importing
# control.db.engine alone pulls in SQLAlchemy (~0.15 s of every `yard` start).
EXPECTED = (
    ("compose.stack.problem", "UpProblem"),
    ("compose.deploy", "RenderProblem"),
    ("compose.image", "ImageProblem"),
    ("compose.launcher", "LaunchError"),
    ("control.client", "DevyardError"),
    ("control.datadir", "DataDirProblem"),
    ("control.db.engine", "DatabaseProblem"),
    ("control.objectstore", "ObjectStoreProblem"),
    ("control.profiles", "ProfileProblem"),
    ("control.secretbox", "SecretKeyProblem"),
    ("control.settings", "SettingsProblem"),
    ("control.trust", "TrustProblem"),
)


def _expected() -> tuple[type[BaseException], ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in EXPECTED if m in sys.modules)


def main() -> None:
    """Run the CLI, turning every expected problem into one sentence and exit code 1."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if not isinstance(exc, _expected()):
            raise
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
