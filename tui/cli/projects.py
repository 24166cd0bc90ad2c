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
PROJECT_SHOW = [*PROJECT_COLUMNS[:5], "default_branch", "repo_secret", "max_concurrent_runs", "created_at"]
ENV_COLUMNS = [
    "id",
    "project",
    "name",
    "kind",
    "branch",
    "protected",
    "agent_queue",
    "image",
    "variables",
    "secret_names",
]
ENV_SHOW = [*ENV_COLUMNS, "resources", "max_concurrent_runs", "updated_at"]
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
    print_json(shown) if as_json else details(shown, [*PROJECT_SHOW, "environments"])


@projects.command("add")
def add_project(
    name: str,
    description: Annotated[str, typer.Option(help="What it is.")] = "",
    repo_url: RepoUrlOption = None,
    default_branch: DefaultBranchOption = None,
    repo_secret: RepoSecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project (you become its owner)."""
    extra = {"default_branch": default_branch, "repo_secret": repo_secret}
    with state.client() as client:
        project = client.create_project(
            name, description=description, repo_url=repo_url, **{k: v for k, v in extra.items() if v}
        )
    print_json(project) if as_json else console.print(f"Project [bold]{project.name}[/] created.")


@projects.command("set")
def set_project(
    name: str,
    repo_url: RepoUrlOption = None,
    default_branch: DefaultBranchOption = None,
    repo_secret: RepoSecretOption = None,
    description: Annotated[str | None, typer.Option(help="What it is.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a project: its repository, default branch, credential secret, description."""
    changes: dict[str, Any] = {}
    if repo_url is not None:
        changes["repo_url"] = repo_url or None
    if default_branch is not None:
        if not default_branch:
            fail("--default-branch cannot be empty; give the branch deployment environments run.")
        changes["default_branch"] = default_branch
    if repo_secret is not None:
        changes["repo_secret"] = repo_secret or None
    if description is not None:
        changes["description"] = description
    if not changes:
        fail("Nothing to change; pass --repo-url, --default-branch, --repo-secret or --description.")
    with state.client() as client:
        project = client.update_project(name, **changes)
    if as_json:
        print_json(project)
        return
    said = [f"{key.replace('_', ' ')}: {getattr(project, key) or 'none'}" for key in changes]
    console.print(f"Project [bold]{name}[/] changed: {escape('; '.join(said))}.", highlight=False, soft_wrap=True)


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


RepoUrlOption = Annotated[
    str | None,
    typer.Option(
        "--repo-url",
        metavar="URL",
        help="Git repository runs check out: https://, ssh://, user@host:path or file:// (admins); '' removes it."
        " Never put a token in it: see --repo-secret.",
    ),
]
DefaultBranchOption = Annotated[
    str | None,
    typer.Option("--default-branch", metavar="BRANCH", help="Branch deployment environments run by default (main)."),
]
RepoSecretOption = Annotated[
    str | None,
    typer.Option(
        "--repo-secret",
        metavar="NAME",
        help="Environment secret holding the repository's HTTPS token or SSH deploy key; '' removes it.",
    ),
]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        metavar="KIND",
        help="deployment: runs check out the environment's branch; development: runs use your workspace.",
    ),
]
BranchOption = Annotated[
    str | None,
    typer.Option(
        "--branch", metavar="BRANCH", help="Branch a deployment environment runs ('' : the project's default)."
    ),
]


def _kind(kind: str | None) -> str | None:
    if kind is not None and kind not in ("deployment", "development"):
        fail(f"--kind must be deployment or development, not {kind!r}.")
    return kind


def _resources(values: list[str]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for key, value in _pairs(values, "--resource").items():
        if key not in ("cpus", "memory_mb", "cpu_request"):
            fail(f"--resource {key} is not one of cpus, memory_mb, cpu_request.")
        if value == "":
            resources[key] = None
            continue
        try:
            resources[key] = int(value) if key == "memory_mb" else float(value)
        except ValueError:
            fail(f"--resource {key}={value} is not a number.")
    return resources


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


@envs.command("show")
def show_env(project: str, name: str, as_json: JsonOption = False) -> None:
    """Show an environment (secret names only, never their values)."""
    with state.client() as client:
        env = client.get_environment(project, name)
    print_json(env) if as_json else details(env, ENV_SHOW)


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
    kind: KindOption = None,
    branch: BranchOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an environment."""
    code = {"kind": _kind(kind), "branch": branch or None}
    with state.client() as client:
        env = client.create_environment(
            project,
            name,
            variables=_with_venv(_pairs(var or [], "--var"), venv),
            secrets=_pairs(secret or [], "--secret"),
            agent_queue=queue,
            image=image,
            protected=protected,
            **{k: v for k, v in code.items() if v is not None},
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
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="KEY=VALUE, repeatable; never shown again; KEY= removes the secret."),
    ] = None,
    kind: KindOption = None,
    branch: BranchOption = None,
    image: Annotated[
        str | None, typer.Option(help="Container image (docker/kubernetes substrates); '' removes it.")
    ] = None,
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", help="cpus=N, memory_mb=N or cpu_request=N, repeatable; KEY= removes it."),
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Agent queue that runs this environment's work.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change an environment: variables, secrets, kind and branch, image, resources, queue, protection."""
    changes: dict[str, Any] = {} if protected is None else {"protected": protected}
    if secret:
        changes["secrets"] = _pairs(secret, "--secret")  # merged by the API; KEY= removes
    if kind is not None:
        changes["kind"] = _kind(kind)
    if branch is not None:
        changes["branch"] = branch or None
    if image is not None:
        changes["image"] = image or None
    if queue is not None:
        changes["agent_queue"] = queue
    if not changes and not var and venv is None and not resource:
        fail(
            "Nothing to change; pass --var, --secret, --venv, --kind, --branch, --image, --resource, --queue"
            " or --protected/--unprotected."
        )
    with state.client() as client:
        if var or venv is not None or resource:
            current = client.get_environment(project, name)
            if var or venv is not None:
                merged = _with_venv({**current.variables, **_pairs(var or [], "--var")}, venv)
                changes["variables"] = {key: value for key, value in merged.items() if value != ""}
            if resource:
                wanted = {**current.resources, **_resources(resource)}
                changes["resources"] = {key: value for key, value in wanted.items() if value is not None}
        env = client.update_environment(project, name, **changes)
    if as_json:
        print_json(env)
        return
    said = [("protected" if env.protected else "not protected")] if protected is not None else []
    if "variables" in changes:
        said.append(f"variables: {', '.join(sorted(env.variables)) or 'none'}")
    if "secrets" in changes:
        said.append(f"secrets: {', '.join(env.secret_names) or 'none'}")
    if "kind" in changes or "branch" in changes:
        runs = f"runs branch {env.branch}" if env.branch else "runs the project's default branch"
        said.append(f"{env.kind} environment" + (f", {runs}" if env.kind == "deployment" else ""))
    if "image" in changes:
        said.append(f"image: {env.image or 'none'}")
    if "resources" in changes:
        said.append("resources: " + (", ".join(f"{k}={v}" for k, v in sorted(env.resources.items())) or "none"))
    if "agent_queue" in changes:
        said.append(f"queue: {env.agent_queue}")
    console.print(f"Environment [bold]{project}/{name}[/] changed: {escape('; '.join(said))}.", highlight=False)
    if {"variables", "secrets", "image", "resources"} & set(changes):
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
