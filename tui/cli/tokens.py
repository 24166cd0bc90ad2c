"""`yard tokens ...`: API tokens (yours; admins: anyone's)."""

from __future__ import annotations

from typing import Annotated

import typer

from tui.cli.context import state
from tui.cli.output import console, print_json, table
from tui.cli.paging import collect

app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
COLUMNS = ["id", "user", "kind", "prefix", "expires_at", "revoked_at", "last_used_at", "name"]


@app.command("ls")
def list_tokens(
    user: Annotated[str | None, typer.Option(help="Admins: this user's tokens.")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Admins: every user's tokens.")] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets)."""
    with state.client() as client:
        items = collect(client.list_tokens, limit, user=user, all=all_users)
    print_json(items) if as_json else table(items, COLUMNS)


@app.command("create")
def create_token(
    name: Annotated[str, typer.Option(help="A label to recognise it by.")] = "cli",
    user: Annotated[str | None, typer.Option(help="Admins: issue it for this user (e.g. an agent).")] = None,
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", min=1, max=3650, help="Lifetime in days.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it once."""
    with state.client() as client:
        issued = client.create_token(name=name, user=user, expires_in_days=expires_in_days)
    if as_json:
        print_json(issued)
        return
    console.print(f"Token {issued.id} '{issued.name}' for {issued.user} (shown once, store it now):")
    console.print(issued.token, highlight=False, soft_wrap=True)


@app.command("revoke")
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="Token id from `yard tokens ls`.")], as_json: JsonOption = False
) -> None:
    """Revoke a token; it stops working immediately."""
    with state.client() as client:
        token = client.revoke_token(token_id)
    print_json(token) if as_json else console.print(f"Token {token.id} '{token.name}' of {token.user} revoked.")
