"""TLS end to end on loopback: `yard up` (the supervisor) serving a certificate made here, its
agent, run workers and develop servers talking to it over TLS, `yard login` verifying it (CA
file, fingerprint, trust on first use at a real terminal), pins refused when the certificate
changes, and a renewed certificate picked up without a restart."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from control import profiles
from control.client import AsyncControlClient, ConnectionFailed, ControlClient
from control.tlspin import peer_certificate
from control.transport import Connection, Unreachable
from control.trust import Trust, fingerprint_of
from tests.e2e.processes import free_port
from tests.tlscerts import Authority, authority, server_pair

YARD = str(Path(sys.executable).parent / "yard")
# `yard run`'s fast path alone (tui/cli/entry.py calls it first): its exit code, None if it
# handed the command to the full CLI.
FAST_RUN = (
    "import sys; from tui.cli import quick_run; code = quick_run.main(sys.argv[1:]); "
    "print(f'handled: {code}, httpx imported: {\"httpx\" in sys.modules}')"
)


@dataclass
class TlsServer:
    url: str
    port: int
    ca: Path
    cert: Path
    key: Path
    fingerprint: str
    token: str
    process: subprocess.Popen[bytes]
    authority: Authority

    def client(self, trust: Trust | None = None) -> ControlClient:
        return ControlClient(self.url, self.token, trust=trust or Trust(fingerprint=self.fingerprint))


def start_server(
    folder: Path, cert: Path, key: Path, signer: Authority, fingerprint: str, env: dict[str, str] | None = None
) -> TlsServer:
    port = free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "server-config"), "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(folder / "data"), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    log = open(folder / "server.log", "ab")  # noqa: SIM115 - the server writes it while it runs
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"https://127.0.0.1:{port}"
    ca = signer.write(folder / "ca.pem")
    verify = ssl.create_default_context(cafile=str(ca))
    # Healthy on several fresh connections in a row: the kernel spreads them over both API
    # processes, and one still starting would hold a connection in its queue.
    deadline, answered = time.monotonic() + 60, 0
    while answered < 8:
        assert process.poll() is None, (folder / "server.log").read_text()
        try:
            ok = httpx.get(url + "/api/v1/health", verify=verify, timeout=1).status_code == 200
        except httpx.TransportError:
            ok = False
        answered = answered + 1 if ok else 0
        assert time.monotonic() < deadline, "the TLS server did not become healthy"
        if not ok:
            time.sleep(0.05)
    token = profiles.load_profiles(folder / "server-config" / "devyard" / "config.toml")[1][profiles.LOCAL].token
    return TlsServer(url, port, ca, cert, key, fingerprint, token, process, signer)


def stop_server(server: TlsServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    folder = tmp_path_factory.mktemp("tls")
    signer = authority()
    cert, key, fingerprint = server_pair(folder, signer)
    server = start_server(folder, cert, key, signer, fingerprint)
    with server.client() as client:
        client.create_project("tlsproj")
    try:
        yield server
    finally:
        stop_server(server)


def yard(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [YARD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def saved(profile: str) -> profiles.Profile:
    return profiles.load_profiles()[1][profile]


def test_login_with_the_fingerprint_pins_it_and_runs_and_develop_servers_work_over_tls(tls_server: TlsServer) -> None:
    done = yard("login", tls_server.url, "--token", tls_server.token, "--fingerprint", tls_server.fingerprint.lower())
    assert done.returncode == 0, done.stderr
    assert saved("default").trust == Trust(fingerprint=tls_server.fingerprint)
    # The CLI's fast path (control.transport) creates the run; the agent's worker ships the log
    # over TLS and the CLI follows it over TLS.
    run = yard("run", "--project", "tlsproj", "--", "sh", "-c", "echo first line; echo second line")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-2:] == ["first line", "second line"]
    # That was the standard-library fast path itself, over TLS: it took the command, no handover.
    fast = subprocess.run(
        [sys.executable, "-c", FAST_RUN, "--project", "tlsproj", "--", "echo", "fast over tls"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout.splitlines()[-2:] == ["fast over tls", "handled: 0, httpx imported: False"]
    listing = yard("runs", "ls", "--json")  # the httpx client
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)[0]["state"] == "succeeded"
    status = yard("status", "--json")
    assert json.loads(status.stdout)["tls"] == f"pinned certificate {tls_server.fingerprint}"
    # A develop server, reached through the gateway over TLS.
    assert yard("dev", "start", "--project", "tlsproj").returncode == 0
    try:
        shown = yard("dev", "exec", "--project", "tlsproj", "--", "sh", "-c", "echo from the develop server")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == "from the develop server"
    finally:
        yard("dev", "stop", "--project", "tlsproj")


def test_a_wrong_fingerprint_is_refused_and_nothing_is_saved(tls_server: TlsServer) -> None:
    other = "SHA256:" + ":".join(["AB"] * 32)
    done = yard("login", tls_server.url, "--token", tls_server.token, "--fingerprint", other)
    assert done.returncode == 1
    assert (
        done.stderr.count("\n") == 1 and f"has the fingerprint {tls_server.fingerprint}, not the {other}" in done.stderr
    )
    assert not profiles.config_path().exists()


def test_a_ca_file_is_verified(tls_server: TlsServer, tmp_path: Path) -> None:
    done = yard("login", tls_server.url, "--token", tls_server.token, "--ca-file", str(tls_server.ca))
    assert done.returncode == 0, done.stderr
    assert saved("default").trust == Trust(ca_file=str(tls_server.ca))
    assert yard("runs", "ls").returncode == 0
    again = yard("login", tls_server.url, "--token", tls_server.token)  # keeps the profile's CA file
    assert again.returncode == 0, again.stderr
    assert saved("default").trust == Trust(ca_file=str(tls_server.ca))
    stranger = authority("another CA").write(tmp_path / "other-ca.pem")
    refused = yard("login", tls_server.url, "--token", tls_server.token, "--ca-file", str(stranger), "--profile", "x")
    assert refused.returncode == 1 and "is not trusted by" in refused.stderr and "x" not in profiles.load_profiles()[1]


def test_a_certificate_the_system_store_trusts_needs_no_flag(tls_server: TlsServer) -> None:
    # SSL_CERT_FILE replaces OpenSSL's default store, which truststore reads on Linux: the test's
    # CA stands in for the system's authorities.
    done = yard("login", tls_server.url, "--token", tls_server.token, env={"SSL_CERT_FILE": str(tls_server.ca)})
    assert done.returncode == 0, done.stderr
    assert "trusting the system trust store" in done.stdout
    assert saved("default").trust == Trust()
    assert yard("runs", "ls", env={"SSL_CERT_FILE": str(tls_server.ca)}).returncode == 0
    refused = yard("runs", "ls")  # the real system store does not know the test's CA
    assert refused.returncode == 1 and "its certificate is not trusted" in refused.stderr


def test_without_a_terminal_an_unknown_certificate_is_one_sentence(tls_server: TlsServer) -> None:
    done = yard("login", tls_server.url, "--token", tls_server.token)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "not signed by an authority this system trusts" in done.stderr
    assert f"--fingerprint {tls_server.fingerprint}" in done.stderr


def _login_at_a_terminal(url: str, token: str, answer: bytes) -> tuple[int, str]:
    """`yard login URL` with a pseudo-terminal for stdin and stderr; ``answer`` the question."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [YARD, "login", url, "--token", token],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 30
    while b"Trust and pin it?" not in screen:
        assert time.monotonic() < deadline and process.poll() is None, screen
        if select.select([leader], [], [], 0.5)[0]:
            screen += os.read(leader, 4096)
    os.write(leader, answer)
    out, _ = process.communicate(timeout=30)
    while select.select([leader], [], [], 0.1)[0]:
        try:
            screen += os.read(leader, 4096)
        except OSError:
            break
    os.close(leader)
    return process.returncode, (screen + out).decode(errors="replace")


def test_trust_on_first_use_shows_the_fingerprint_and_pins_it_when_accepted(tls_server: TlsServer) -> None:
    code, screen = _login_at_a_terminal(tls_server.url, tls_server.token, b"y\n")
    assert code == 0, screen
    assert f"fingerprint is {tls_server.fingerprint}" in screen
    assert saved("default").trust == Trust(fingerprint=tls_server.fingerprint)


def test_trust_on_first_use_refused_logs_nobody_in(tls_server: TlsServer) -> None:
    code, screen = _login_at_a_terminal(tls_server.url, tls_server.token, b"n\n")
    assert code == 1 and "Not logged in: the certificate" in screen
    assert not profiles.config_path().exists()


def test_a_changed_certificate_is_refused_by_every_client(tls_server: TlsServer) -> None:
    pinned = "SHA256:" + ":".join(["0F"] * 32)  # as if pinned before the server's certificate changed
    profiles.save_profile(profiles.Profile("default", tls_server.url, tls_server.token, Trust(fingerprint=pinned)))
    listing = yard("runs", "ls")
    assert listing.returncode == 1 and listing.stderr.count("\n") == 1
    assert f"it is {tls_server.fingerprint}, not the pinned {pinned}" in listing.stderr
    # The fast path hands such a failure to the full CLI, which says the same; nothing ran.
    run = yard("run", "--project", "tlsproj", "--", "echo", "must not run")
    assert run.returncode == 1 and "not the pinned" in run.stderr and "must not run" not in run.stdout
    again = yard("login", tls_server.url, "--token", tls_server.token)
    assert again.returncode == 1 and "changed since it was pinned" in again.stderr
    assert saved("default").trust.fingerprint == pinned


def test_the_clients_check_the_pin_before_sending_a_token(tls_server: TlsServer) -> None:
    wrong = Trust(fingerprint="SHA256:" + ":".join(["11"] * 32))
    with tls_server.client(wrong) as client, pytest.raises(ConnectionFailed, match="not the pinned"):
        client.me()
    with tls_server.client() as client:
        assert client.me().role == "admin"
    connection = Connection(tls_server.url, tls_server.token, trust=wrong)
    with pytest.raises(Unreachable, match="not the pinned"):
        connection.call("GET", "/api/v1/me")
    connection = Connection(tls_server.url, tls_server.token, trust=Trust(ca_file=str(tls_server.ca)))
    assert connection.call("GET", "/api/v1/me")[0] == 200
    connection.close()

    async def asynchronous() -> None:
        async with AsyncControlClient(tls_server.url, tls_server.token, trust=wrong) as client:
            with pytest.raises(ConnectionFailed, match="not the pinned"):
                await client.me()
        async with AsyncControlClient(tls_server.url, tls_server.token, trust=Trust(ca_file=str(tls_server.ca))) as ok:
            assert (await ok.me()).role == "admin"

    import asyncio

    asyncio.run(asynchronous())


def test_plain_http_to_the_tls_port_gets_nothing(tls_server: TlsServer) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/api/v1/health", timeout=5)


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    signer = authority()
    cert, key, first = server_pair(tmp_path, signer)
    server = start_server(tmp_path, cert, key, signer, first)
    try:
        with server.client() as client:
            client.create_project("renew")
        assert fingerprint_of(peer_certificate("127.0.0.1", server.port)) == first
        _, _, second = server_pair(tmp_path, signer)  # the same paths, replaced as certbot does
        # Every API process (two share the port) serves the new one to new connections.
        seen = {fingerprint_of(peer_certificate("127.0.0.1", server.port)) for _ in range(12)}
        assert seen == {second}
        # The server's own agent and workers follow it: a run still starts and ships its log.
        with ControlClient(server.url, server.token, trust=Trust(ca_file=str(server.ca))) as client:
            run = client.create_run("renew", ["sh", "-c", "echo after renewal"])
            deadline = time.monotonic() + 30
            while client.get_run(run.id).state not in ("succeeded", "failed", "lost"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert client.get_run(run.id).state == "succeeded"
            assert b"after renewal" in client.read_logs(run.id)[0]
    finally:
        stop_server(server)


def test_the_tui_follows_a_pinned_api_and_refuses_a_changed_certificate(tls_server: TlsServer) -> None:
    import asyncio

    from tests.tui.test_app import SIZE, rows, wait_for
    from tui.app import DevyardApp
    from tui.widgets.runs_table import RunsTable
    from tui.widgets.status_bar import StatusBar

    with tls_server.client() as admin:
        run = admin.create_run("tlsproj", ["true"])
    pinned = profiles.Profile("t", tls_server.url, tls_server.token, Trust(fingerprint=tls_server.fingerprint))
    changed = Trust(fingerprint="SHA256:" + ":".join(["22"] * 32))

    async def scenario() -> None:
        app = DevyardApp(pinned)
        async with app.run_test(size=SIZE):
            bar, runs = app.screen.query_one(StatusBar), app.screen.query_one(RunsTable)
            await wait_for(lambda: bar.connection == "live" and str(run.id) in rows(runs), timeout=30)
        refused = DevyardApp(profiles.Profile("t", tls_server.url, tls_server.token, changed))
        async with refused.run_test(size=SIZE):
            bar = refused.screen.query_one(StatusBar)
            await wait_for(lambda: "not the pinned" in bar.connection, timeout=30)

    asyncio.run(scenario())


def test_a_run_in_a_container_ships_its_log_over_tls(tmp_path: Path, docker_image: str) -> None:
    """The Docker substrate: the worker runs in a container, where the path of the server's
    certificate file does not exist, and trusts the fingerprint the agent passed instead."""
    signer = authority()
    cert, key, fingerprint = server_pair(tmp_path, signer)
    docker = {"DEVYARD_SUBSTRATE": "docker", "DEVYARD_DOCKER_IMAGE": docker_image, "DEVYARD_DOCKER_PYTHON": "python3"}
    server = start_server(tmp_path, cert, key, signer, fingerprint, env=docker)
    try:
        with server.client() as client:
            client.create_project("boxed")
            run = client.create_run("boxed", ["sh", "-c", "test ! -e " + str(cert) + " && echo shipped from a container"])
            deadline = time.monotonic() + 90
            while client.get_run(run.id).state not in ("succeeded", "failed", "lost"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert client.get_run(run.id).state == "succeeded", client.get_run(run.id)
            assert b"shipped from a container" in client.read_logs(run.id)[0]
    finally:
        stop_server(server)
