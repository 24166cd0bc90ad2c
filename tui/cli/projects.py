"""`yard projects ...` and `yard envs ...`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from tui.cli.context import state
from tui.cli.output import console, details, fail, print_json, table
from tui.cli.paging import collect

projects = typer.Typer(help="Manage projects.", no_args_is_help=True)
envs = typer.Typer(help="Manage a project's environments.", no_args_is_help=True)
members = typer.Typer(
    help="Manage who works in a project: members may use its environments (maintainers the protected ones too).",
    no_args_is_help=True,
)
projects.add_typer(members, name="members")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
PROJECT_COLUMNS = ["id", "name", "owner", "description", "repo_url", "created_at"]
ENV_COLUMNS = ["id", "project", "name", "protected", "agent_queue", "image", "variables", "secret_names"]
MEMBER_COLUMNS = ["user", "role", "created_at"]


@projects.command("ls")
def list_projects(
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None, as_json: JsonOption = False
) -> None:
    """List projects."""
    with state.client() as client:
        items = collect(client.list_projects, limit)
    print_json(items) if as_json else table(items, PROJECT_COLUMNS)


@projects.command("show")
def show_project(name: str, as_json: JsonOption = False) -> None:
    """Show a project and its environments."""
    with state.client() as client:
        project = client.get_project(name)
        environments = [e.name for e in client.list_environments(name)]
    shown = {**project.model_dump(mode="json"), "environments": environments}
    print_json(shown) if as_json else details(shown, [*PROJECT_COLUMNS, "environments"])


@projects.command("add")
def add_project(
    name: str,
    description: Annotated[str, typer.Option(help="What it is.")] = "",
    repo_url: Annotated[str | None, typer.Option(help="Git remote URL.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project (you become its owner)."""
    with state.client() as client:
        project = client.create_project(name, description=description, repo_url=repo_url)
    print_json(project) if as_json else console.print(f"Project [bold]{project.name}[/] created.")


@projects.command("rm")
def remove_project(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    with_runs: Annotated[
        bool,
        typer.Option(
            "--with-runs",
            help="Also delete its finished runs (logs, artifacts), schedules and stopped develop servers.",
        ),
    ] = False,
) -> None:
    """Delete a project and its environments (with --with-runs: and its history)."""
    what = "its environments, runs, logs, artifacts and schedules" if with_runs else "its environments"
    if not yes and not typer.confirm(f"Delete project {name} and {what}?", err=True):
        raise typer.Exit(1)
    with state.client() as client:
        client.delete_project(name, with_runs=with_runs)
    console.print(f"Project [bold]{name}[/] deleted" + (" with its runs and schedules." if with_runs else "."))


@members.command("ls")
def list_members(project: str, as_json: JsonOption = False) -> None:
    """List a project's members (the owner is shown by `yard projects show`)."""
    with state.client() as client:
        items = client.list_members(project)
    print_json(items) if as_json else table(items, MEMBER_COLUMNS)


@members.command("add")
def add_member(
    project: str,
    user: str,
    role: Annotated[
        str, typer.Option(help="developer: environments that are not protected; maintainer: every environment.")
    ] = "developer",
    as_json: JsonOption = False,
) -> None:
    """Add a developer to a project, or change their role (owner or admin)."""
    if role not in ("developer", "maintainer"):
        fail(f"Role '{role}' is not developer or maintainer.")
    with state.client() as client:
        member = client.set_member(project, user, role)
    print_json(member) if as_json else console.print(f"[bold]{user}[/] is a {role} of project [bold]{project}[/].")


@members.command("rm")
def remove_member(project: str, user: str) -> None:
    """Remove a member; their develop servers that use the project's environments are stopped."""
    with state.client() as client:
        client.remove_member(project, user)
    console.print(f"[bold]{user}[/] is no longer a member of project [bold]{project}[/].")


VenvOption = Annotated[
    str | None,
    typer.Option(
        "--venv",
        metavar="DIR",
        help="A virtual environment whose bin/ comes first on PATH for runs and develop servers"
        " (relative: inside the code's folder, e.g. .venv). Sets VIRTUAL_ENV; --venv '' removes it.",
    ),
]


def _with_venv(variables: dict[str, str], venv: str | None) -> dict[str, str]:
    """``variables`` with VIRTUAL_ENV set from ``--venv`` (see runner.toolpath)."""
    if venv is None:
        return variables
    if venv and (".." in venv.split("/") and not venv.startswith("/")):
        fail(f"--venv {venv} leaves the code's folder; give a folder inside it (.venv) or an absolute path.")
    return {**variables, "VIRTUAL_ENV": venv}


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            fail(f"{what} '{value}' is not KEY=VALUE.")
        pairs[key] = val
    return pairs


@envs.command("ls")
def list_envs(project: str, as_json: JsonOption = False) -> None:
    """List a project's environments."""
    with state.client() as client:
        items = client.list_environments(project)
    print_json(items) if as_json else table(items, ENV_COLUMNS)


@envs.command("add")
def add_env(
    project: str,
    name: str,
    var: Annotated[list[str] | None, typer.Option("--var", help="KEY=VALUE, repeatable.")] = None,
    venv: VenvOption = None,
    secret: Annotated[
        list[str] | None, typer.Option("--secret", help="KEY=VALUE, repeatable; never shown again.")
    ] = None,
    queue: Annotated[str, typer.Option(help="Agent queue that runs this environment's work.")] = "default",
    image: Annotated[str | None, typer.Option(help="Container image (docker/kubernetes substrates).")] = None,
    protected: Annotated[
        bool, typer.Option("--protected", help="Only the owner, maintainers and admins may use it.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an environment."""
    with state.client() as client:
        env = client.create_environment(
            project,
            name,
            variables=_with_venv(_pairs(var or [], "--var"), venv),
            secrets=_pairs(secret or [], "--secret"),
            agent_queue=queue,
            image=image,
            protected=protected,
        )
    print_json(env) if as_json else console.print(f"Environment [bold]{project}/{env.name}[/] created.")


@envs.command("set")
def set_env(
    project: str,
    name: str,
    protected: Annotated[
        bool | None,
        typer.Option("--protected/--unprotected", help="Only the owner, maintainers and admins may use it."),
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="KEY=VALUE, repeatable; KEY= removes the variable.")
    ] = None,
    venv: VenvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an environment."""
    if protected is None and not var and venv is None:
        fail("Nothing to change; pass --protected, --unprotected, --var KEY=VALUE or --venv DIR.")
    changes: dict[str, Any] = {} if protected is None else {"protected": protected}
    with state.client() as client:
        if var or venv is not None:
            current = dict(client.get_environment(project, name).variables)
            merged = _with_venv({**current, **_pairs(var or [], "--var")}, venv)
            changes["variables"] = {key: value for key, value in merged.items() if value != ""}
        env = client.update_environment(project, name, **changes)
    if as_json:
        print_json(env)
        return
    said = [("protected" if env.protected else "not protected")] if protected is not None else []
    if "variables" in changes:
        said.append(f"variables: {', '.join(sorted(env.variables)) or 'none'}")
    console.print(f"Environment [bold]{project}/{name}[/] changed: {escape('; '.join(said))}.", highlight=False)
    if "variables" in changes:
        console.print(
            "Develop servers started before this change keep the old values; `yard dev restart` updates yours.",
            soft_wrap=True,
        )


@envs.command("rm")
def remove_env(
    project: str, name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False
) -> None:
    """Delete an environment."""
    if not yes and not typer.confirm(f"Delete environment {project}/{name}?", err=True):
        raise typer.Exit(1)
    with state.client() as client:
        client.delete_environment(project, name)
    console.print(f"Environment [bold]{project}/{name}[/] deleted.")
