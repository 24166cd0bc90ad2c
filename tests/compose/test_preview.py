"""Previews on the local substrate: a browser's way to an app in a develop server, by link.

A real web app (tests/services/web_target.py) runs inside the develop server; httpx plays the
browser (a cookie jar, redirects looked at one by one) and websockets the page's WebSocket.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from control.auth import hash_token
from control.clock import utcnow
from control.db.tables import PreviewLink
from control.previews import COOKIE
from tests.compose.forward_helpers import WEB_TARGET, Env, forward_env, started_in_devserver
from tests.tui.test_cli import YARD, assert_one_sentence_error


@dataclass
class App:
    http: int
    ws: int


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with forward_env(tmp_path_factory.mktemp("preview")) as running:
        yield running


@pytest.fixture(scope="module")
def app(env: Env) -> Iterator[App]:
    state = env.base / "web"
    with (
        env.stack.client(env.token) as client,
        started_in_devserver(client, env.server_id, f"{sys.executable} {WEB_TARGET} {state}", state) as ready,
    ):
        yield App(ready["http"], ready["ws"])


def preview_link(env: Env, port: int, token: str | None = None) -> str:
    made = subprocess.run(
        [YARD, "dev", "preview", str(port)], capture_output=True, text=True, env=env.cli_env(token), timeout=60
    )
    assert made.returncode == 0, made.stderr
    assert "revoke it with `yard dev preview --revoke" in made.stderr
    return made.stdout.strip()


@contextmanager
def opened(url: str) -> Iterator[tuple[httpx.Client, str]]:
    """A browser that opened ``url``: its cookie jar now holds the link; it and where it went."""
    with httpx.Client(timeout=20) as browser:
        yield browser, _follow_link(browser, url)


def _follow_link(browser: httpx.Client, url: str) -> str:
    first = browser.get(url)
    assert first.status_code == 303, first.text
    landing = first.headers["location"]
    assert "preview=" not in landing and "dyp_" not in landing
    assert first.headers["referrer-policy"] == "no-referrer"
    return str(landing)


def test_a_preview_link_opens_the_app_and_the_app_never_sees_devyard_credentials(env: Env, app: App) -> None:
    url = preview_link(env, app.http)
    prefix = f"/api/v1/devservers/{env.server_id}/ports/{app.http}"
    assert url.startswith(f"{env.stack.url}{prefix}/?preview=dyp_")
    assert env.token not in url
    with opened(url) as (browser, landing):
        assert landing == f"{prefix}/"
        cookie = next(c for c in browser.cookies.jar if c.name == COOKIE)
        assert cookie.path == f"{prefix}/" and cookie.has_nonstandard_attr("HttpOnly")
        page = browser.get(env.stack.url + landing)
        assert page.status_code == 200 and b'<a href="headers">' in page.content
        # The relative link resolves under the prefix; the app sees its own root and Host.
        seen = browser.post(
            env.stack.url + f"{prefix}/headers?x=1",
            content=b"posted",
            headers={"Authorization": "Basic YXBwOnNlY3JldA==", "Origin": env.stack.url},
        ).json()
        assert seen["method"] == "POST" and seen["path"] == "/headers?x=1" and seen["body"] == "posted"
        headers = seen["headers"]
        assert headers["host"] == f"localhost:{app.http}"
        assert headers["x-forwarded-prefix"] == prefix
        assert headers["x-forwarded-host"] == env.stack.url.removeprefix("http://")
        assert headers["x-forwarded-proto"] == "http"
        assert headers["origin"] == f"http://localhost:{app.http}"
        assert headers["authorization"] == "Basic YXBwOnNlY3JldA=="  # the app's own
        assert "dyp_" not in json.dumps(seen) and COOKIE not in json.dumps(seen)
        # Redirects and cookies of the app stay under the prefix.
        redirect = browser.get(env.stack.url + f"{prefix}/redirect")
        assert (redirect.status_code, redirect.headers["location"]) == (302, f"{prefix}/landing")
        absolute = browser.get(env.stack.url + f"{prefix}/absolute")
        assert absolute.headers["location"] == f"{prefix}/landing"
        assert browser.get(env.stack.url + f"{prefix}/cookie").headers["set-cookie"] == f"flavour=oat; Path={prefix}/"
        # Without the slash, the root redirects to it (relative links need it).
        bare = browser.get(env.stack.url + prefix)
        assert (bare.status_code, bare.headers["location"]) == (308, f"{prefix}/")
    # With an API token instead of a link: the token never reaches the app.
    seen = httpx.get(
        env.stack.url + f"{prefix}/headers", headers={"Authorization": f"Bearer {env.token}"}, timeout=20
    ).json()
    assert "authorization" not in seen["headers"] and env.token not in json.dumps(seen)


def test_the_apps_websocket_works_through_the_preview(env: Env, app: App) -> None:
    from websockets.sync.client import connect

    url = preview_link(env, app.ws)
    with opened(url) as (browser, landing):
        cookie = next(c for c in browser.cookies.jar if c.name == COOKIE)
        ws_url = env.stack.url.replace("http://", "ws://") + landing + "socket"
        with connect(ws_url, additional_headers={"Cookie": f"{COOKIE}={cookie.value}"}, open_timeout=10) as ws:
            ws.send("hello")
            assert ws.recv(10) == "hello"
            ws.send(b"\x00bytes")
            assert ws.recv(10) == b"\x00bytes"


def test_links_that_no_longer_work_and_callers_who_may_not(env: Env, app: App) -> None:
    prefix = f"/api/v1/devservers/{env.server_id}/ports/{app.http}"
    # Revoked: the cookie a browser already holds stops working at its next request.
    url = preview_link(env, app.http)
    with opened(url) as (browser, landing):
        assert browser.get(env.stack.url + landing).status_code == 200
        listed = subprocess.run(
            [YARD, "dev", "preview", "--list", "--json"], capture_output=True, text=True, env=env.cli_env()
        )
        newest = max(json.loads(listed.stdout), key=lambda p: p["id"])
        revoked = subprocess.run(
            [YARD, "dev", "preview", "--revoke", str(newest["id"])], capture_output=True, text=True, env=env.cli_env()
        )
        assert revoked.returncode == 0 and "is revoked" in revoked.stdout, revoked.stderr
        refused = browser.get(env.stack.url + landing)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "preview_expired"
        with env.stack.client(env.token) as client:
            assert newest["id"] not in [p.id for p in client.list_previews(env.server_id)]
    # Expired: the link's time has passed.
    url = preview_link(env, app.http)
    secret = url.split("preview=")[1]
    with Session(env.stack.services.engine) as session:
        row = session.exec(select(PreviewLink).where(PreviewLink.token_hash == hash_token(secret))).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()
    expired = httpx.get(url, timeout=20)
    assert expired.status_code == 403
    assert expired.json()["error"]["message"].startswith("This preview link is expired, revoked or not for this port")
    # A link for one port does not open another.
    url = preview_link(env, app.http)
    other = url.replace(f"/ports/{app.http}/", f"/ports/{app.ws}/")
    assert httpx.get(other, timeout=20).status_code == 403
    # Nobody, another user, a viewer, a bad port, and a port where nothing listens.
    assert httpx.get(env.stack.url + f"{prefix}/", timeout=20).status_code == 401
    bob = env.stack.user("bob", "developer")
    vera = env.stack.user("vera", "viewer")
    as_bob = httpx.get(env.stack.url + f"{prefix}/", headers={"Authorization": f"Bearer {bob}"}, timeout=20)
    assert as_bob.status_code == 404
    as_vera = httpx.get(env.stack.url + f"{prefix}/", headers={"Authorization": f"Bearer {vera}"}, timeout=20)
    assert as_vera.status_code == 403
    assert_one_sentence_error(
        subprocess.run([YARD, "dev", "preview", "8000"], capture_output=True, text=True, env=env.cli_env(bob)),
        "Your develop server for project demo does not exist",
    )
    with env.stack.client(bob) as client, pytest.raises(Exception) as not_yours:
        client.create_preview(env.server_id, app.http)
    assert getattr(not_yours.value, "status", None) == 404
    for bad in ("0", "70000", "http"):
        answer = httpx.get(
            env.stack.url + f"/api/v1/devservers/{env.server_id}/ports/{bad}/",
            headers={"Authorization": f"Bearer {env.token}"},
            timeout=20,
        )
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_port"
    assert_one_sentence_error(
        subprocess.run([YARD, "dev", "preview", "70000"], capture_output=True, text=True, env=env.cli_env()),
        "Port 70000 is not a TCP port",
    )
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    nothing = httpx.get(
        env.stack.url + f"/api/v1/devservers/{env.server_id}/ports/{free}/",
        headers={"Authorization": f"Bearer {env.token}"},
        timeout=20,
    )
    assert nothing.status_code == 502 and nothing.json()["error"]["code"] == "port_not_listening"


def test_python_http_server_in_the_develop_server_is_one_link_away(env: Env, tmp_path: Path) -> None:
    """The issue's "done when": a stock HTTP app (here `python -m http.server`), one link."""
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "docs" / "index.html").write_text('<a href="page.html">page</a>')
    (site / "docs" / "page.html").write_text("the page")
    state = tmp_path / "state"
    script = (
        "import http.server, functools, json, os, pathlib, sys;"
        f"handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory={str(site)!r});"
        "server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler);"
        f"pathlib.Path({str(state / 'ready.json')!r}).write_text("
        "json.dumps({'port': server.server_address[1], 'pid': os.getpid()}));"
        "server.serve_forever()"
    )
    with (
        env.stack.client(env.token) as client,
        started_in_devserver(client, env.server_id, f"{sys.executable} -c {json.dumps(script)}", state) as ready,
    ):
        url = preview_link(env, ready["port"])
        with httpx.Client(timeout=20, follow_redirects=True) as browser:
            index = browser.get(url.replace("/?preview=", "/docs?preview="))
            # http.server redirected /docs to /docs/ (an absolute path), kept under the prefix.
            assert index.status_code == 200 and index.url.path.endswith(f"/ports/{ready['port']}/docs/")
            page = browser.get(str(index.url.join("page.html")))
            assert page.text == "the page"
