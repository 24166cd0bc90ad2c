"""`yard login https://... --sso --fingerprint ...` as a person runs it: a real `yard up` serving
TLS and configured with a real OpenID Connect provider, the CLI printing a code and a link, a
browser-less approval (httpx following the real redirects), transparent renewal of the access
token over the pinned TLS connection, and no secret in the server's log, the audit log or any
error body."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from control.profiles import Profile
from control.trust import Trust
from tests.services.oidc import Browser, OidcProvider, callback_of
from tests.stack import Stack
from tests.tlscerts import authority, server_pair
from tests.tui.test_cli import YARD, assert_one_sentence_error, yard
from tests.waiting import wait_until

CLIENT_SECRET = "cs-e2e-1234567890-must-never-be-logged"


@dataclass
class SsoServer:
    url: str
    data_dir: Path
    ca: Path
    fingerprint: str


@pytest.fixture
def sso_up(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[SsoServer]:
    """`yard up --detach` over TLS (a certificate of a CA made here) with single sign-on from its
    options (the rest from the environment)."""
    data_dir = tmp_path / "data"
    signer = authority()
    cert, key, fingerprint = server_pair(tmp_path, signer)
    env = {"DEVYARD_OIDC_AUTO_CREATE": "true", "DEVYARD_SSO_POLL_INTERVAL_S": "0.1"}
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    options = ["--tls-cert", str(cert), "--tls-key", str(key)]
    options += ["--oidc-issuer", oidc_provider.url, "--oidc-client-id", "devyard-e2e"]
    options += ["--oidc-client-secret-file", str(secret_file)]
    up = yard("up", "--detach", "--data-dir", str(data_dir), "--port", "0", *options, env=env)
    assert up.returncode == 0, up.stderr
    url = json.loads((data_dir / "state" / "server.json").read_text())["url"]
    assert url.startswith("https://"), url
    try:
        yield SsoServer(url, data_dir, signer.write(tmp_path / "ca.pem"), fingerprint)
    finally:
        assert yard("down", "--data-dir", str(data_dir)).returncode == 0


def config() -> dict[str, object]:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
    return tomllib.loads(path.read_text())


def profile_entry(name: str) -> dict[str, object]:
    profiles = config()["profiles"]
    assert isinstance(profiles, dict)
    return dict(profiles[name])


def test_login_with_sso_over_pinned_tls_renews_by_itself_and_leaks_nothing(
    sso_up: SsoServer, oidc_provider: OidcProvider
) -> None:
    url, data_dir = sso_up.url, sso_up.data_dir
    oidc_provider.set_user("erin-sub", email="erin@example.com")
    login = subprocess.Popen(
        [YARD, "login", url, "--sso", "--profile", "work", "--fingerprint", sso_up.fingerprint],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert login.stdout is not None
    printed = []
    for line in login.stdout:
        printed.append(line)
        if "/device?user_code=" in line:
            break
    link = printed[-1].strip()
    assert link.startswith(url + "/device?user_code=")
    user_code = link.rpartition("=")[2]

    browser = Browser(verify=ssl.create_default_context(cafile=str(sso_up.ca)))
    try:
        form = browser.confirm(browser.open_link(link))
        callback, query = callback_of(browser.log_in_at_provider(form, "erin-sub", follow=False))
        assert browser.http.get(callback).status_code == 200
        replayed = browser.http.get(callback)  # the same code and state once more
    finally:
        browser.close()
    out, err = login.communicate(timeout=30)
    assert login.returncode == 0, err
    assert user_code in "".join(printed) and f"Logged in to {url} as erin (developer)" in " ".join(out.split())

    entry = profile_entry("work")
    first_token, first_refresh = str(entry["token"]), str(entry["refresh_token"])
    assert entry["fingerprint"] == sso_up.fingerprint  # pinned with the session
    assert first_refresh.startswith("dys_") and isinstance(entry["expires_at"], float)
    assert config()["default"] == "work"

    # The access token expires at the API while the profile still believes it valid: the first
    # call meets 401 token_expired, renews the session and is sent again.
    expire_access_tokens(data_dir)
    refused_at_api(sso_up, first_token)
    listed = yard("tokens", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    (session,) = json.loads(listed.stdout)
    assert session["kind"] == "sso" and session["user"] == "erin"
    renewed = profile_entry("work")
    assert renewed["token"] != first_token and renewed["refresh_token"] != first_refresh

    # The fast paths renew a token about to expire before they connect.
    from control import profiles
    from tui.cli.quick import connect

    pinned = Trust(fingerprint=sso_up.fingerprint)
    stale = Profile("work", url, str(renewed["token"]), pinned, refresh_token=str(renewed["refresh_token"]), expires_at=0.0)
    profiles.save_profile(stale)
    expire_access_tokens(data_dir)
    refused_at_api(sso_up, str(renewed["token"]))
    connection = connect()
    status, body = connection.call("GET", "/api/v1/me")
    connection.close()
    assert status == 200 and json.loads(body)["name"] == "erin"
    assert profile_entry("work")["token"] not in (renewed["token"], first_token)

    # What a person or program sees when it goes wrong, and what the server keeps.
    bodies = [replayed.text]
    https = httpx.Client(verify=ssl.create_default_context(cafile=str(sso_up.ca)))
    spent = https.post(url + "/api/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": first_refresh})
    bodies.append(spent.text)
    assert spent.status_code == 400 and spent.json()["error"]["code"] == "invalid_grant"
    admin = profile_entry("local")["token"]
    audit = https.get(url + "/api/v1/audit", params={"limit": 500}, headers={"Authorization": f"Bearer {admin}"})
    https.close()
    assert audit.status_code == 200 and "sso.approve" in audit.text
    server_log = (data_dir / "state" / "server.log").read_text()
    secrets = {
        "client secret": CLIENT_SECRET,
        "authorization code": query["code"],
        "state": query["state"],
        "first access token": first_token,
        "first refresh token": first_refresh,
        "renewed access token": str(renewed["token"]),
        "renewed refresh token": str(renewed["refresh_token"]),
        "current refresh token": str(profile_entry("work")["refresh_token"]),
    }
    for where, text_ in {"server log": server_log, "audit log": audit.text, "error bodies": "\n".join(bodies)}.items():
        for what, secret in secrets.items():
            assert secret not in text_, f"the {what} is in the {where}"
    assert "sso sign-in approved for erin" in server_log  # the log was written: the search above means something


def refused_at_api(server: SsoServer, token: str) -> None:
    """Wait until every API process refuses ``token`` as expired: a process that verified it a
    moment ago keeps it in its cache for up to 2 s (docs/api.md)."""
    verify = ssl.create_default_context(cafile=str(server.ca))

    def refused() -> bool:
        with httpx.Client(verify=verify) as fresh:  # a new connection: maybe another API process
            answer = fresh.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        return answer.status_code == 401 and answer.json()["error"]["code"] == "token_expired"

    wait_until(lambda: all(refused() for _ in range(4)), message="the API to refuse the expired token")


def expire_access_tokens(data_dir: Path) -> None:
    engine = create_engine(f"sqlite:///{data_dir / 'devyard.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_tokens SET expires_at = '2020-01-01 00:00:00.000000' WHERE kind = 'sso'"))
    engine.dispose()


def test_login_sso_refusals_are_one_sentence(sqlite_stack: Stack) -> None:
    # The session's tokens would come back over plain HTTP from another machine: refused first.
    assert_one_sentence_error(yard("login", "http://192.0.2.1:8421", "--sso"), "Refusing to send a token over plain HTTP")
    assert_one_sentence_error(yard("login", sqlite_stack.url, "--sso", "--token", "dy_x"), "--token or --sso")
    assert_one_sentence_error(
        yard("login", sqlite_stack.url, "--sso"), "Single sign-on is not configured on this devyard"
    )
