"""The TUI on a single sign-on profile whose access token has expired: it renews the session by
itself (no login screen needed) and shows the live dashboard as the signed-in user."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from control import profiles
from tests.control.test_sso import sso_settings
from tests.control.test_sso_renewal import expire_at_api, signed_in_profile
from tests.services.oidc import OidcProvider
from tests.stack import Stack, running_stack
from tests.tui.test_app import SIZE, wait_for
from tui.app import DevyardApp
from tui.widgets.status_bar import StatusBar


@pytest.fixture
def stack(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[Stack]:
    with running_stack(tmp_path / "t", "", None, **sso_settings(oidc_provider)) as stack:
        yield stack


def test_tui_renews_an_expired_sign_in_and_goes_live(stack: Stack, oidc_provider: OidcProvider) -> None:
    old = signed_in_profile(stack, oidc_provider, expires_at=0.0)
    expire_at_api(stack)

    async def scenario() -> None:
        app = DevyardApp(profiles.resolve())
        async with app.run_test(size=SIZE):
            bar = app.screen.query_one(StatusBar)
            await wait_for(lambda: bar.connection == "live" and "alice (developer)" in str(bar.render()))

    asyncio.run(scenario())
    assert profiles.resolve().token != old.token
