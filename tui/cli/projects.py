"""`yard projects ...` and `yard envs ...`."""

from __future__ import annotations

from typing import Annotated

import typer

from tui.cli.context import state
from tui.cli.output import console, details, fail, print_json, table
from tui.cli.paging import collect

projects = typer.Typer(help="Manage projects.", no_args_is_help=True)
envs = typer.Typer(help="Manage a project's environments.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
PROJECT_COLUMNS = ["id", "name", "owner", "description", "repo_url", "created_at"]
ENV_COLUMNS = ["id", "project", "name", "agent_queue", "image", "variables", "secret_names"]


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
        project["environments"] = [e["name"] for e in client.list_environments(name)]
    print_json(project) if as_json else details(project, [*PROJECT_COLUMNS, "environments"])


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
    print_json(project) if as_json else console.print(f"Project [bold]{project['name']}[/] created.")


@projects.command("rm")
def remove_project(name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete a project and its environments."""
    if not yes and not typer.confirm(f"Delete project {name} and its environments?", err=True):
        raise typer.Exit(1)
    with state.client() as client:
        client.delete_project(name)
    console.print(f"Project [bold]{name}[/] deleted.")


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
    secret: Annotated[
        list[str] | None, typer.Option("--secret", help="KEY=VALUE, repeatable; never shown again.")
    ] = None,
    queue: Annotated[str, typer.Option(help="Agent queue that runs this environment's work.")] = "default",
    image: Annotated[str | None, typer.Option(help="Container image (docker/kubernetes substrates).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an environment."""
    with state.client() as client:
        env = client.create_environment(
            project,
            name,
            variables=_pairs(var or [], "--var"),
            secrets=_pairs(secret or [], "--secret"),
            agent_queue=queue,
            image=image,
        )
    print_json(env) if as_json else console.print(f"Environment [bold]{project}/{env['name']}[/] created.")


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
