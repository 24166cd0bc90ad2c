"""`yard hooks show|set|rm|deliveries`: a project's git webhooks and how to set them up."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from control.wire.hooks import HookOut
from tui.cli.context import state
from tui.cli.output import console, fail, print_json, table

app = typer.Typer(help="Git webhooks of a project: show, set, rm, deliveries.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
PROVIDERS = ("github", "gitlab", "standard")

SETUP = {
    "github": (
        "On GitHub: the repository's Settings > Webhooks > Add webhook.\n"
        "  Payload URL:   {url}\n"
        "  Content type:  application/json\n"
        "  Secret:        the secret `yard hooks set {project} github` printed (it is not shown again;\n"
        "                 `yard hooks set {project} github --secret -` sets a new one from stdin)\n"
        "  Events:        'Let me select individual events': Pushes, Pull requests\n"
        "Commit statuses: {statuses}"
    ),
    "gitlab": (
        "On GitLab: the project's Settings > Webhooks > Add new webhook.\n"
        "  URL:           {url}\n"
        "  Secret token:  the secret `yard hooks set {project} gitlab` printed (not shown again)\n"
        "  Trigger:       Push events, Merge request events\n"
        "Commit statuses: {statuses}"
    ),
    "standard": (
        "Any sender that signs per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)\n"
        "with the secret `yard hooks set {project} standard` printed, POSTing to\n"
        "  {url}\n"
        'a JSON body {{"type": "push", "data": {{"repository", "branch", "sha"}}}} or\n'
        '{{"type": "pull_request", "data": {{"action", "number", "base", "head", "sha", "repository"}}}}.'
    ),
}


def _statuses(hook: HookOut) -> str:
    if hook.statuses:
        return f"posted to {hook.api_url} with the token you set"
    return f"off (`yard hooks set {hook.project} {hook.provider} --status-token -` turns them on)"


def _read(value: str | None, what: str) -> str | None:
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        fail(f"No {what} on standard input.")
    return line


@app.command("show")
def show(project: str, as_json: JsonOption = False) -> None:
    """The project's webhook URLs and how to set each up on GitHub or GitLab."""
    with state.client() as client:
        hooks = client.list_hooks(project)
    if as_json:
        print_json(hooks)
        return
    if not hooks:
        console.print(
            f"Project {project} has no webhook yet. `yard hooks set {project} github` (or gitlab, standard)"
            " makes one and prints its secret once.",
            highlight=False,
        )
        return
    for hook in hooks:
        console.print(f"[bold]{hook.provider}[/]: {hook.url}", highlight=False)
        text = SETUP[hook.provider].format(url=hook.url, project=project, statuses=_statuses(hook))
        console.print(text, highlight=False, markup=False)
        console.print()


@app.command("set")
def set_hook(
    project: str,
    provider: Annotated[str, typer.Argument(help="github, gitlab or standard.")],
    secret: Annotated[
        str | None, typer.Option("--secret", help="The shared secret ('-': read from stdin); default: a new one.")
    ] = None,
    status_token: Annotated[
        str | None,
        typer.Option("--status-token", help="Token that may post commit statuses ('-': read from stdin)."),
    ] = None,
    no_status: Annotated[bool, typer.Option("--no-status", help="Stop posting commit statuses.")] = False,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="GitHub Enterprise / self-managed GitLab REST API address.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create or change a webhook; prints a new secret once."""
    if provider not in PROVIDERS:
        fail(f"Provider '{provider}' is not one of {', '.join(PROVIDERS)}.")
    if no_status and status_token:
        fail("Give --status-token or --no-status, not both.")
    fields: dict[str, object] = {}
    if secret is not None:
        fields["secret"] = _read(secret, "secret")
    if status_token is not None:
        fields["status_token"] = _read(status_token, "status token")
    if no_status:
        fields["status_token"] = None
    if api_url is not None:
        fields["api_url"] = api_url
    with state.client() as client:
        hook = client.set_hook(project, provider, **fields)
    if as_json:
        print_json(hook)
        return
    console.print(f"Webhook {provider} of {project}: {hook.url}", highlight=False)
    if hook.secret:
        console.print(f"Secret (shown once; give it to {provider}):\n{hook.secret}", highlight=False, soft_wrap=True)
    console.print(f"`yard hooks show {project}` says how to set it up.", highlight=False)


@app.command("rm")
def remove(project: str, provider: str) -> None:
    """Remove a webhook: the provider's next delivery gets 404."""
    with state.client() as client:
        client.remove_hook(project, provider)
    console.print(f"Webhook {provider} of {project} removed.", highlight=False)


@app.command("deliveries")
def deliveries(
    project: str,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """What each accepted delivery was and which runs it started."""
    with state.client() as client:
        items = client.list_hook_deliveries(project, limit=limit)
    if as_json:
        print_json(items)
        return
    rows = [{**d.model_dump(), "runs": ",".join(map(str, d.run_ids)) or "-"} for d in items]
    table(rows, ["received_at", "provider", "event", "outcome", "runs", "detail", "delivery_id"])
