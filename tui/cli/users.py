"""`yard users ...`: manage who can use devyard (admins)."""

from __future__ import annotations

from typing import Annotated

import typer

from tui.cli.context import state
from tui.cli.output import console, details, print_json, table
from tui.cli.paging import collect

app = typer.Typer(help="Manage users (admins).", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ROLES = "admin, developer, viewer or agent"
COLUMNS = ["id", "name", "role", "email", "disabled", "created_at", "sso_subject"]


@app.command("ls")
def list_users(
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None, as_json: JsonOption = False
) -> None:
    """List users."""
    with state.client() as client:
        items = collect(client.list_users, limit)
    print_json(items) if as_json else table(items, COLUMNS)


@app.command("show")
def show_user(name: str, as_json: JsonOption = False) -> None:
    """Show one user."""
    with state.client() as client:
        user = client.get_user(name)
    print_json(user) if as_json else details(user, COLUMNS)


@app.command("add")
def add_user(
    name: str,
    role: Annotated[str, typer.Option(help=f"One of {ROLES}.")] = "developer",
    email: Annotated[str | None, typer.Option(help="Contact address.")] = None,
    token: Annotated[bool, typer.Option("--token/--no-token", help="Also issue a first API token.")] = True,
    sso_subject: Annotated[
        str | None, typer.Option("--sso-subject", help="Single sign-on: the identity provider's subject (sub).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user; prints their first API token once."""
    with state.client() as client:
        user = client.create_user(name, role=role, email=email, issue_token=token, sso_subject=sso_subject)
    if as_json:
        print_json(user)
        return
    console.print(f"User [bold]{user.name}[/] ({user.role}) created.")
    if user.token:
        console.print("API token (shown once, store it now):")
        console.print(user.token, highlight=False, soft_wrap=True)


def _update(name: str, as_json: bool, **changes: object) -> None:
    with state.client() as client:
        user = client.update_user(name, **changes)
    if as_json:
        print_json(user)
        return
    standing = "disabled: their tokens no longer work" if user.disabled else "enabled"
    console.print(f"User [bold]{user.name}[/] is now a {user.role} and {standing}.")


@app.command("set-role")
def set_role(name: str, role: Annotated[str, typer.Argument(help=ROLES)], as_json: JsonOption = False) -> None:
    """Change a user's role."""
    _update(name, as_json, role=role)


@app.command("disable")
def disable(name: str, as_json: JsonOption = False) -> None:
    """Disable a user: every token of theirs stops working at once."""
    _update(name, as_json, disabled=True)


@app.command("link")
def link(
    name: str,
    subject: Annotated[str, typer.Argument(help="The identity provider's subject (sub) of this person.")],
    as_json: JsonOption = False,
) -> None:
    """Single sign-on: sign this user in as that identity (ends their current sign-ins)."""
    _update(name, as_json, sso_subject=subject)


@app.command("unlink")
def unlink(name: str, as_json: JsonOption = False) -> None:
    """Single sign-on: forget the user's identity (ends their sign-ins; by email they link again)."""
    _update(name, as_json, sso_subject=None)


@app.command("enable")
def enable(name: str, as_json: JsonOption = False) -> None:
    """Enable a disabled user again."""
    _update(name, as_json, disabled=False)
