"""`yard up`, `yard down`, `yard status`, `yard login`, `yard doctor`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tui.cli.context import state
from tui.cli.output import console, details, errors, fail, print_json, table

if TYPE_CHECKING:
    from control.profiles import Profile
    from control.trust import Trust

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data dir of the embedded stack \\[default: ~/.local/share/devyard].")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def up(
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind \\[default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind \\[default: 8421; 0 picks a free one].")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=64, help="API processes sharing the port \\[default: one per CPU, at most 2]."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="PEM certificate (chain) to serve TLS with; renewed by replacing the file."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http", help="Serve plain HTTP on a non-loopback --host instead of a self-signed certificate."
        ),
    ] = False,
    oidc_issuer: Annotated[
        str | None, typer.Option("--oidc-issuer", help="Single sign-on: the OpenID Connect provider's issuer URL.")
    ] = None,
    oidc_client_id: Annotated[
        str | None, typer.Option("--oidc-client-id", help="Single sign-on: devyard's client id at the provider.")
    ] = None,
    oidc_client_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--oidc-client-secret-file",
            help="Single sign-on: a file holding the client secret (or set DEVYARD_OIDC_CLIENT_SECRET).",
        ),
    ] = None,
) -> None:
    """Start the embedded stack: control API (+ scheduler and agent) on this machine."""
    from compose.stack import detached
    from compose.stack.server import multi_user_warning, prepare, serve
    from compose.stack.sockets import bind_socket
    from compose.stack.tls import binds_loopback, certificate_fingerprint, plan, with_plan
    from control.datadir import DataDir
    from control.settings import load_settings

    secret = None
    if oidc_client_secret_file is not None:
        try:
            secret = oidc_client_secret_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"Cannot read the client secret from {oidc_client_secret_file} ({type(exc).__name__}).")
    settings = load_settings(
        data_dir,
        host=host,
        port=port,
        api_workers=workers,
        tls_cert=tls_cert.expanduser().resolve() if tls_cert else None,
        tls_key=tls_key.expanduser().resolve() if tls_key else None,
        insecure_http=insecure_http or None,
        oidc_issuer=oidc_issuer,
        oidc_client_id=oidc_client_id,
        oidc_client_secret=secret,
    )
    existing = detached.running_server(DataDir(settings.data_dir))
    if existing is not None:
        fail(f"devyard is already running at {existing.url} (pid {existing.pid}); `yard down` stops it.")
    prepare(settings)
    tls = plan(settings)
    settings = with_plan(settings, tls)
    warning = multi_user_warning(settings)
    if warning:
        errors.print(f"[bold red]warning:[/] {warning}")
    if tls.cert is not None:
        kind = "a self-signed certificate" if tls.self_signed else "the certificate"
        console.print(
            f"TLS with {kind} in {tls.cert}, fingerprint [bold]{certificate_fingerprint(tls.cert)}[/]"
            " (clients: `yard login URL --fingerprint` it, or --ca-file)."
        )
    elif not binds_loopback(settings.host):
        errors.print(f"[bold red]warning:[/] plain HTTP on {settings.host}: tokens cross the network unencrypted.")
    if detach:
        server = detached.start_detached(settings)
        console.print(f"devyard is up at [bold]{server.url}[/] (pid {server.pid}, data in {settings.data_dir}).")
        console.print("Run [bold]yard[/] for the TUI, [bold]yard status[/] to check it, [bold]yard down[/] to stop it.")
        return
    sock = bind_socket(settings.host, settings.port, reuse_port=settings.effective_api_workers > 1)

    def ready(url: str) -> None:
        console.print(f"devyard is up at [bold]{url}[/] (data in {settings.data_dir}); Ctrl-C stops it.")

    serve(settings, sock, ready=ready)
    console.print("devyard stopped.")


def down(data_dir: DataDirOption = None) -> None:
    """Stop the embedded stack started with `yard up --detach`."""
    import os

    from compose.stack.detached import stop
    from control.datadir import DataDir
    from control.settings import default_data_dir

    # Only the data dir matters here: a broken settings file must not keep you from stopping.
    root = Path(data_dir or os.environ.get("DEVYARD_DATA_DIR") or default_data_dir()).expanduser().resolve()
    stopped = stop(DataDir(root))
    if stopped is None:
        console.print(f"devyard is not running (data dir {root}).")
    else:
        console.print(f"devyard at {stopped.url} (pid {stopped.pid}) stopped.")


def status(as_json: JsonOption = False) -> None:
    """Show the control API's health: database, object store, substrate, counts."""
    with state.client() as client:
        info = client.status()
        me = client.me()
        agents = client.list_agents()
    # What this client trusts of the API's certificate (None: plain HTTP).
    tls = client.trust.describe() if client.url.startswith("https://") else None
    if as_json:
        user = {"name": me.name, "role": me.role}
        print_json({**info.model_dump(mode="json"), "agents": agents, "url": client.url, "user": user, "tls": tls})
        raise typer.Exit(0 if info.status == "ok" else 1)
    colour = "green" if info.status == "ok" else "yellow"
    console.print(f"[bold {colour}]{info.status}[/] devyard {info.version} at {client.url} as {me.name} ({me.role})")
    store = info.object_store
    details(
        {
            "database": f"{info.database['status']} ({info.database['backend']})",
            "object store": f"{store['status']} ({store['url']})"
            + (f": {store['error']}" if store.get("error") else ""),
            "substrate": info.substrate,
            "uptime": f"{info.uptime_s:.0f} s",
            **({"tls": f"trusting {tls}"} if tls else {}),
            **info.counts,
        }
    )
    if agents:
        console.print()
        table(agents, ["id", "name", "queue", "substrate", "hostname", "last_heartbeat_at"], title="Agents")
    if info.status != "ok":
        raise typer.Exit(1)


def login(
    url: Annotated[str, typer.Argument(help="Base URL of the control API, e.g. https://devyard.example.com.")],
    token: Annotated[
        str | None,
        typer.Option("--token", help="An API token (`yard tokens create` prints one); asked for when left out."),
    ] = None,
    sso: Annotated[
        bool,
        typer.Option(
            "--sso", help="Sign in through your organisation's identity provider (a code and a link to open)."
        ),
    ] = False,
    profile: Annotated[str, typer.Option("--profile", help="Profile name to save it under.")] = "default",
    ca_file: Annotated[
        str | None, typer.Option("--ca-file", help="Trust certificates signed by this PEM CA file (and only those).")
    ] = None,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint", help="Pin the server's certificate by its SHA256:... fingerprint (`yard up` prints it)."
        ),
    ] = None,
    insecure_http: Annotated[
        bool, typer.Option("--insecure-http", help="Allow the token over plain http:// to another machine.")
    ] = False,
) -> None:
    """Attach the CLI and TUI to a (remote) control API and save it as a profile.

    An https:// API's certificate is verified by the system trust store, --ca-file or a pinned
    --fingerprint; a certificate nothing vouches for is shown and pinned if you accept it."""
    from control import profiles
    from control.client import ControlClient
    from control.login_trust import choose_trust

    if not url.startswith(("http://", "https://")):
        fail(f"'{url}' is not an http:// or https:// URL.")
    if sso and token is not None:
        fail("Pass --token or --sso, not both.")
    url = url.rstrip("/")
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    earlier = profiles.find(profile)
    trust = choose_trust(
        url,
        ca_file=ca_file,
        fingerprint=fingerprint,
        insecure_http=insecure_http,
        pinned=earlier.trust if earlier is not None and earlier.url == url else None,
        ask=(lambda question: typer.confirm(question, default=False, err=True)) if interactive else None,
    )
    if sso:
        saved = _sign_in(url, profile, trust)
    else:
        if token is None:
            if not interactive:
                fail("No token given and no terminal to ask for one; pass --token (`yard tokens create` prints one).")
            token = typer.prompt("Token", hide_input=True, err=True)
        saved = profiles.Profile(profile, url, token, trust)
    with ControlClient(url, saved.token, trust=trust, profile=saved) as client:
        client.health()
        me = client.me()
    try:
        previous = profiles.load_profiles()[0]
    except profiles.ProfileProblem:
        previous = None
    path = profiles.save_profile(saved, make_default=True)
    console.print(
        f"Logged in to {url} as {me.name} ({me.role}), trusting {trust.describe()}; profile '{profile}' saved in {path}."
    )
    if previous and previous != profile:
        console.print(
            f"'{profile}' is now the default profile (it was '{previous}'; "
            f"`yard --profile {previous} ...` still uses that one)."
        )
    else:
        console.print(f"'{profile}' is the default profile.")


def _sign_in(url: str, profile: str, trust: Trust) -> Profile:
    """`yard login --sso`: show the code and link, wait for the approval in a browser."""
    import socket
    import time

    from control.client import ControlClient
    from control.client.device_login import sign_in
    from control.profiles import Profile
    from control.trust import TrustProblem, check_plain_http
    from control.wire.sso import DeviceAuthorization

    try:  # the tokens come back over this connection: the same rule as sending one
        check_plain_http(url, "the session's tokens", trust)
    except TrustProblem as exc:
        fail(str(exc))

    def show(started: DeviceAuthorization) -> None:
        console.print("To sign in, open this link in a browser (on this or any other device):", highlight=False)
        console.print(f"  {started.verification_uri_complete}", highlight=False, soft_wrap=True)
        console.print(
            f"and check that the page shows the code [bold]{started.user_code}[/] "
            f"(or open {started.verification_uri} and type it in).",
            highlight=False,
            soft_wrap=True,
        )
        minutes = max(1, round(started.expires_in / 60))
        console.print(f"Waiting for the sign-in (the code works for {minutes} min; Ctrl-C stops)...", highlight=False)

    with ControlClient(url, trust=trust) as client:
        client.health()
        grant = sign_in(client, socket.gethostname(), show)
    return Profile(
        profile,
        url,
        grant.access_token,
        trust,
        refresh_token=grant.refresh_token,
        expires_at=time.time() + grant.expires_in,
    )


def doctor(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Check the database, object store, docker engine, kubeconfig and the API, and explain problems."""
    from compose.doctor import run_checks
    from control.checks import Check
    from control.client import DevyardError
    from control.profiles import ProfileProblem
    from control.settings import load_settings

    settings = load_settings(data_dir)
    checks = run_checks(settings)
    try:
        with state.client() as client:
            client.health()
            me = client.me()
            checks.append(
                Check(
                    "control api",
                    True,
                    f"{client.url} answers; the token belongs to {me.name} ({me.role}).",
                    False,
                )
            )
    except (DevyardError, ProfileProblem) as exc:
        checks.append(Check("control api", False, str(exc), False))
    if as_json:
        print_json({"ok": all(c.ok or not c.required for c in checks), "checks": [c.as_json() for c in checks]})
    else:
        rows = [
            {"check": c.name, "result": ("ok" if c.ok else ("FAIL" if c.required else "warn")), "detail": c.detail}
            for c in checks
        ]
        table(rows, ["check", "result", "detail"])
    if not all(c.ok or not c.required for c in checks):
        raise typer.Exit(1)
