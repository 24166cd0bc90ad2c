"""A real OpenID Connect provider for tests: ``oidc-provider-mock`` (PyPI) in its own process on
a free loopback port, and a "browser" (httpx following the real redirects) that signs in there.

The provider signs ID tokens with its own RSA key, publishes discovery and JWKS, checks the
client and redirect URI of each code, and shows a login form where a test submits the subject
to sign in as; ``set_user`` gives a subject its claims (email, groups, ...) first.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx

READY = re.compile(rb"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@dataclass
class OidcProvider:
    url: str
    process: subprocess.Popen[bytes]
    log: list[str] = field(default_factory=list)

    def set_user(self, sub: str, **claims: object) -> None:
        """The claims the provider puts in ``sub``'s ID token and userinfo."""
        response = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_provider(*extra: str) -> OidcProvider:
    """Start the provider (``extra``: its command-line options); raises RuntimeError if it cannot."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", "0", *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:  # ends when the process does
        seen.append(line.decode(errors="replace"))
        match = READY.search(line)
        if match:
            provider = OidcProvider(match.group(1).decode(), process, seen)
            threading.Thread(target=_drain, args=(process, seen), daemon=True).start()
            return provider
    process.wait(5)
    raise RuntimeError("oidc-provider-mock did not start: " + "".join(seen[-5:]))


def _drain(process: subprocess.Popen[bytes], into: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        into.append(line.decode(errors="replace"))


class Browser:
    """What a person's browser does in the flow: follows redirects, keeps cookies, submits forms."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self.http = httpx.Client(timeout=10, follow_redirects=True, verify=verify)

    def close(self) -> None:
        self.http.close()

    def open_link(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def confirm(self, page: httpx.Response) -> httpx.Response:
        """Press the confirmation page's button: ends at the provider's login form."""
        form = hidden_fields(page.text)
        return self.http.post(str(page.url), data=form)

    def log_in_at_provider(self, login_form: httpx.Response, sub: str, *, follow: bool = True) -> httpx.Response:
        """Submit the provider's form for ``sub``: ends at devyard's callback page (or, with
        ``follow=False``, the provider's redirect to it)."""
        assert "oauth2/authorize" in str(login_form.url), login_form.url
        return self.http.post(str(login_form.url), data={"sub": sub}, follow_redirects=follow)

    def sign_in(self, link: str, sub: str) -> httpx.Response:
        """The whole approval, from the link the terminal printed to devyard's last page."""
        return self.log_in_at_provider(self.confirm(self.open_link(link)), sub)


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def callback_of(redirect: httpx.Response) -> tuple[str, dict[str, str]]:
    """The provider's redirect back to devyard: the callback URL and its query."""
    assert redirect.status_code in (302, 303), (redirect.status_code, redirect.text[:200])
    location = redirect.headers["location"]
    return location, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def claims_json(sub: str, **claims: object) -> str:
    return json.dumps({"sub": sub, **claims})
