"""`yard notify add|ls|rm|test` and `yard notifications deliveries`: who is told when a run ends."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from control.wire.notifications import DeliveryOut
from tui.cli.context import default_project, state
from tui.cli.output import console, fail, humanize, print_json, table

app = typer.Typer(help="Notifications of runs' ends: add, ls, rm, test.", no_args_is_help=True)
deliveries_app = typer.Typer(help="What was sent, every attempt and the answer.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Project \\[default: DEVYARD_PROJECT or the current folder's name]."),
]
COLUMNS = ["name", "channel", "target", "events", "job", "enabled"]
DELIVERY_COLUMNS = [
    "id",
    "run_id",
    "notification",
    "channel",
    "target",
    "event",
    "state",
    "tries",
    "answer",
    "created_at",
]
EVENTS = ("succeeded", "failed", "timed_out", "cancelled", "lost")


def _read_secret_value(value: str, what: str) -> str:
    """``-`` reads the value from stdin, so a URL that is a credential stays out of shell history."""
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        fail(f"No {what} on standard input.")
    return line


def _events(text: str | None) -> list[str] | None:
    if text is None:
        return None
    events = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        fail(f"--on takes run states separated by commas ({', '.join(EVENTS)}), not '{text}'.")
    return events


@app.command("add")
def add(
    name: str,
    slack: Annotated[
        str | None, typer.Option("--slack", help="Slack incoming-webhook URL ('-': read it from stdin).")
    ] = None,
    email: Annotated[list[str] | None, typer.Option("--email", help="Send e-mail to this address (repeat).")] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST a signed JSON message (Standard Webhooks) to this URL.")
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="The webhook's signing secret ('-': stdin); default: a new one.")
    ] = None,
    on: Annotated[
        str | None,
        typer.Option("--on", help="Run states that send it, comma-separated [default: failed,timed_out,lost]."),
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Only runs of this job (replaces the project's).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tell a Slack channel, e-mail addresses or a webhook when a run of the project ends."""
    chosen = [c for c, given in (("slack", slack), ("email", email), ("webhook", webhook)) if given]
    if len(chosen) != 1:
        fail("Give exactly one of --slack URL, --email ADDRESS or --webhook URL.")
    if secret is not None and webhook is None:
        fail("--secret is for --webhook notifications.")
    fields: dict[str, Any] = {"events": _events(on), "job": job}
    if slack:
        fields["url"] = _read_secret_value(slack, "Slack URL")
    elif webhook:
        fields["url"] = webhook
        fields["secret"] = _read_secret_value(secret, "signing secret") if secret else None
    else:
        fields["to"] = email
    with state.client() as client:
        created = client.add_notification(project or default_project(), name, chosen[0], **fields)
    if as_json:
        print_json(created)
        return
    console.print(
        f"Notification [bold]{name}[/] added: {created.channel} to {created.target} on {', '.join(created.events)}."
    )
    if created.signing_secret:
        console.print(
            f"Signing secret (shown once; receivers verify the webhook-signature header with it):\n"
            f"{created.signing_secret}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("ls")
def list_notifications(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the project's notifications (where they go, on what)."""
    with state.client() as client:
        items = client.list_notifications(project or default_project())
    if as_json:
        print_json(items)
        return
    table([{**n.model_dump(), "events": ",".join(n.events)} for n in items], COLUMNS)


@app.command("rm")
def remove(name: str, project: ProjectOption = None) -> None:
    """Remove a notification (what it sent stays in `yard notifications deliveries`)."""
    with state.client() as client:
        client.remove_notification(project or default_project(), name)
    console.print(f"Notification [bold]{name}[/] removed.")


@app.command("test")
def test(name: str, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Send a sample message now, once, and show the answer; exit 1 if it was not taken."""
    with state.client() as client:
        sent = client.test_notification(project or default_project(), name)
    if as_json:
        print_json(sent)
    else:
        attempt = sent.attempts[-1] if sent.attempts else None
        answer = f" ({attempt.status_code or '-'}: {attempt.answer})" if attempt else ""
        console.print(f"Test message to {sent.target}: {sent.state}{answer}", highlight=False)
    if sent.state != "delivered":
        raise typer.Exit(1)


def _delivery_row(delivery: DeliveryOut) -> dict[str, Any]:
    last = delivery.attempts[-1] if delivery.attempts else None
    answer = "-"
    if last is not None:
        answer = f"{last.status_code} {last.answer}" if last.status_code else last.answer
    if delivery.state == "pending" and delivery.next_attempt_at:
        answer += f" (next try {humanize(delivery.next_attempt_at)})"
    return {**delivery.model_dump(), "tries": len(delivery.attempts), "answer": answer[:80]}


@deliveries_app.command("deliveries")
def deliveries(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    run: Annotated[int | None, typer.Option("--run", help="Only deliveries about this run.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only those that failed for good.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Deliveries of notifications and commit statuses, with every attempt and its answer."""
    with state.client() as client:
        items = client.list_deliveries(project=project, run=run, failed=failed, limit=limit)
    if as_json:
        print_json(items)
        return
    table([_delivery_row(d) for d in items], DELIVERY_COLUMNS)
