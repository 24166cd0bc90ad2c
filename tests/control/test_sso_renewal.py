"""Clients renew a single sign-on profile's access token by themselves: the async client (the
TUI's) before a request when it is about to expire, the sync client after a 401 token_expired,
and two clients sharing one profile file spend the single-use refresh token only once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from control import profiles
from control.client import AsyncControlClient, AuthFailed, ControlClient
from control.clock import utcnow
from control.db.tables import ApiToken
from tests.control.test_sso import add_alice, sign_in, sso_settings
from tests.services.oidc import Browser, OidcProvider
from tests.stack import Stack, running_stack


@pytest.fixture
def stack(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[Stack]:
    with running_stack(tmp_path / "r", "", None, **sso_settings(oidc_provider)) as stack:
        yield stack


def signed_in_profile(stack: Stack, provider: OidcProvider, *, expires_at: float) -> profiles.Profile:
    add_alice(stack, provider)
    browser = Browser()
    try:
        grant = sign_in(stack, browser)
    finally:
        browser.close()
    profile = profiles.Profile(
        "work", stack.url, grant.access_token, refresh_token=grant.refresh_token, expires_at=expires_at
    )
    profiles.save_profile(profile, make_default=True)
    return profile


def expire_at_api(stack: Stack) -> None:
    table = ApiToken.__table__  # type: ignore[attr-defined]
    with stack.services.engine.begin() as conn:
        conn.execute(table.update().where(table.c.kind == "sso").values(expires_at=utcnow() - timedelta(seconds=1)))
    stack.services.principals.clear()


def test_async_client_renews_before_an_expiring_token(stack: Stack, oidc_provider: OidcProvider) -> None:
    old = signed_in_profile(stack, oidc_provider, expires_at=time.time() + 5)  # inside the renewal margin
    expire_at_api(stack)

    async def whoami() -> str:
        async with AsyncControlClient.from_profile() as client:
            return (await client.me()).name

    assert asyncio.run(whoami()) == "alice"
    saved = profiles.resolve()
    assert saved.token != old.token and saved.refresh_token != old.refresh_token
    assert saved.expires_at is not None and saved.expires_at > time.time() + 3000


def test_sync_client_renews_after_token_expired_and_two_clients_share_one_renewal(
    stack: Stack, oidc_provider: OidcProvider
) -> None:
    signed_in_profile(stack, oidc_provider, expires_at=time.time() + 3600)
    expire_at_api(stack)
    first, second = ControlClient.from_profile(), ControlClient.from_profile()
    names: list[str] = []
    errors: list[BaseException] = []

    def call(client: ControlClient) -> None:
        try:
            names.append(client.me().name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    first.close()
    second.close()
    assert errors == [] and names == ["alice", "alice"]
    with stack.client() as admin:
        (session,) = admin.list_tokens(user="alice").items
    assert session.revoked_at is None  # one refresh, not a second one with a spent token


def test_an_ended_session_is_one_sentence(stack: Stack, oidc_provider: OidcProvider) -> None:
    profile = signed_in_profile(stack, oidc_provider, expires_at=0.0)
    with stack.client() as admin:
        (session,) = admin.list_tokens(user="alice").items
        admin.revoke_token(session.id)
    with ControlClient.from_profile() as client, pytest.raises(AuthFailed) as caught:
        client.me()
    assert caught.value.code == "session_ended"
    assert str(caught.value) == (
        f"Your sign-in to {profile.url} has ended (This sign-in has been revoked); "
        f"run `yard login {profile.url} --sso` again."
    )
