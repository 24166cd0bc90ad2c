"""Single sign-on against a real OpenID Connect provider process (oidc-provider-mock): the device
authorization grant, the browser's code flow with PKCE, sessions with expiry and refresh, and the
security checks of issue 19 (expired, revoked, wrong-audience and foreign tokens, device codes
used twice or late, state and nonce mismatches, a user disabled before the token is issued)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from control.client import ApiError, ControlClient
from control.clock import utcnow
from control.db.tables import ApiToken, DeviceCode
from control.wire.sso import DEVICE_GRANT, REFRESH_GRANT, DeviceAuthorization, TokenGrant
from tests.services.oidc import Browser, OidcProvider, callback_of
from tests.stack import Stack, running_stack

CLIENT_SECRET = "cs-9f8e7d6c5b4a-never-in-a-log"


def sso_settings(provider: OidcProvider, **extra: object) -> dict[str, object]:
    return {
        "oidc_issuer": provider.url,
        "oidc_client_id": "devyard-test",
        "oidc_client_secret": CLIENT_SECRET,
        "sso_poll_interval_s": 0.05,
        **extra,
    }


@pytest.fixture
def sso_stack(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[Stack]:
    with running_stack(tmp_path / "a", "", None, **sso_settings(oidc_provider)) as stack:
        yield stack


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def add_alice(stack: Stack, provider: OidcProvider, sub: str = "alice-sub") -> None:
    with stack.client() as admin:
        admin.create_user("alice", role="developer", email="alice@example.com", issue_token=False)
    provider.set_user(sub, email="alice@example.com")


def poll(stack: Stack, started: DeviceAuthorization) -> TokenGrant:
    with stack.client("") as anonymous:
        return anonymous.grant_token(DEVICE_GRANT, device_code=started.device_code)


def start(stack: Stack, name: str = "laptop") -> DeviceAuthorization:
    with stack.client("") as anonymous:
        return anonymous.start_device_login(name)


def refused(call: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def bearer(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(stack.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def sign_in(stack: Stack, browser: Browser, sub: str = "alice-sub") -> TokenGrant:
    started = start(stack)
    page = browser.sign_in(started.verification_uri_complete, sub)
    assert page.status_code == 200, page.text
    return poll(stack, started)


@pytest.fixture
def pg_or_sqlite_stack(tmp_path: Path, database_url: str, oidc_provider: OidcProvider) -> Iterator[Stack]:
    with running_stack(tmp_path / "s", database_url, None, **sso_settings(oidc_provider)) as stack:
        yield stack


def test_device_login_end_to_end_then_refresh_rotates_both_tokens(
    pg_or_sqlite_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    stack = pg_or_sqlite_stack
    add_alice(stack, oidc_provider)
    started = start(stack)
    assert started.verification_uri == stack.url + "/device"
    assert len(started.user_code) == 9 and started.user_code[4] == "-"
    assert refused(lambda: poll(stack, started)).code == "authorization_pending"

    confirm = browser.open_link(started.verification_uri_complete)
    assert confirm.status_code == 200 and started.user_code in confirm.text and "laptop" in confirm.text
    assert confirm.headers["x-frame-options"] == "DENY" and confirm.headers["cache-control"] == "no-store"
    login_form = browser.confirm(confirm)
    assert login_form.url.host == "127.0.0.1" and "/oauth2/authorize" in login_form.url.path
    assert login_form.url.params["code_challenge_method"] == "S256" and login_form.url.params["nonce"]
    done = browser.log_in_at_provider(login_form, "alice-sub")
    assert done.status_code == 200 and "signed in to devyard as <strong>alice</strong>" in done.text

    grant = poll(stack, started)
    assert grant.expires_in == 3600 and grant.refresh_token.startswith("dys_")
    with stack.client(grant.access_token) as alice:
        assert alice.me().name == "alice"
        (session,) = alice.list_tokens().items
    assert session.kind == "sso" and session.name == "sso: laptop" and session.id == grant.token_id
    assert session.expires_at is not None and session.refresh_expires_at is not None
    # RFC 8628: a device code gives one token; the second poll is refused.
    assert refused(lambda: poll(stack, started)).code == "invalid_grant"

    with stack.client("") as anonymous:
        renewed = anonymous.grant_token(REFRESH_GRANT, refresh_token=grant.refresh_token)
        assert renewed.token_id == grant.token_id
        assert {renewed.access_token, renewed.refresh_token}.isdisjoint({grant.access_token, grant.refresh_token})
    # The access token it replaced stops working.
    assert bearer(stack, grant.access_token).status_code == 401
    assert bearer(stack, renewed.access_token).json()["name"] == "alice"
    with stack.client("") as anonymous:
        # A refresh token works once; presented again, someone holds a copy: the session ends.
        replay = refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=grant.refresh_token))
        assert replay.code == "invalid_grant" and "ended as a precaution" in replay.message
        assert refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=renewed.refresh_token)).code == (
            "invalid_grant"
        )
    assert bearer(stack, renewed.access_token).json()["error"]["message"] == "The token has been revoked."

    with stack.services.engine.connect() as conn:
        stored = {str(v) for row in conn.execute(ApiToken.__table__.select()) for v in row}  # type: ignore[attr-defined]
    assert not {renewed.access_token, renewed.refresh_token, grant.access_token} & stored, "tokens are stored hashed"


def test_expired_access_token_is_token_expired_and_refresh_still_works(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    add_alice(sso_stack, oidc_provider)
    grant = sign_in(sso_stack, browser)
    expire(sso_stack, grant.token_id, expires_at=utcnow() - timedelta(seconds=1))
    answer = bearer(sso_stack, grant.access_token)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "token_expired"
    with sso_stack.client("") as anonymous:
        renewed = anonymous.grant_token(REFRESH_GRANT, refresh_token=grant.refresh_token)
    assert bearer(sso_stack, renewed.access_token).status_code == 200

    expire(sso_stack, grant.token_id, refresh_expires_at=utcnow() - timedelta(seconds=1))
    with sso_stack.client("") as anonymous:
        ended = refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=renewed.refresh_token))
    assert ended.code == "invalid_grant" and "ended" in ended.message


def expire(stack: Stack, token_id: int, **values: object) -> None:
    table = ApiToken.__table__  # type: ignore[attr-defined]
    with stack.services.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == token_id).values(**values))
    stack.services.principals.clear()


def test_revoking_the_session_or_disabling_the_user_ends_access_and_refresh(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    add_alice(sso_stack, oidc_provider)
    first, second = sign_in(sso_stack, browser), sign_in(sso_stack, browser)
    with sso_stack.client(first.access_token) as alice:
        assert alice.revoke_token(first.token_id).revoked_at is not None
    assert bearer(sso_stack, first.access_token).json()["error"]["message"] == "The token has been revoked."
    with sso_stack.client("") as anonymous:
        assert refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=first.refresh_token)).code == (
            "invalid_grant"
        )

    with sso_stack.client() as admin:
        admin.update_user("alice", disabled=True)
        admin.update_user("alice", disabled=False)  # enabling again does not bring sessions back
        (session,) = [t for t in admin.list_tokens(user="alice").items if t.id == second.token_id]
    assert session.revoked_at is not None
    assert bearer(sso_stack, second.access_token).status_code == 401
    with sso_stack.client("") as anonymous:
        assert refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=second.refresh_token)).code == (
            "invalid_grant"
        )


def test_user_disabled_between_approval_and_token_issue_gets_nothing(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    add_alice(sso_stack, oidc_provider)
    started = start(sso_stack)
    assert browser.sign_in(started.verification_uri_complete, "alice-sub").status_code == 200
    with sso_stack.client() as admin:
        admin.update_user("alice", disabled=True)
    assert refused(lambda: poll(sso_stack, started)).code == "user_disabled"
    with sso_stack.client() as admin:
        admin.update_user("alice", disabled=False)
        assert admin.list_tokens(user="alice").items == []
    assert refused(lambda: poll(sso_stack, started)).code == "access_denied"  # that code is spent


def test_device_code_after_expiry_and_polling_too_fast(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    add_alice(sso_stack, oidc_provider)
    started = start(sso_stack)
    table = DeviceCode.__table__  # type: ignore[attr-defined]
    with sso_stack.services.engine.begin() as conn:
        conn.execute(table.update().values(interval_s=30.0))
    assert refused(lambda: poll(sso_stack, started)).code == "authorization_pending"
    slow = refused(lambda: poll(sso_stack, started))
    assert slow.code == "slow_down" and "35" in slow.message

    with sso_stack.services.engine.begin() as conn:
        conn.execute(table.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    page = browser.open_link(started.verification_uri_complete)
    assert page.status_code == 400 and "expired" in page.text
    assert refused(lambda: poll(sso_stack, started)).code == "expired_token"
    assert refused(lambda: poll_with(sso_stack, "dyd_made-up")).code == "invalid_grant"


def poll_with(stack: Stack, device_code: str) -> TokenGrant:
    with stack.client("") as anonymous:
        return anonymous.grant_token(DEVICE_GRANT, device_code=device_code)


def test_state_mismatch_is_refused_and_the_real_callback_still_works(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    add_alice(sso_stack, oidc_provider)
    started = start(sso_stack)
    login_form = browser.confirm(browser.open_link(started.verification_uri_complete))
    callback, query = callback_of(browser.log_in_at_provider(login_form, "alice-sub", follow=False))
    tampered = callback.replace(query["state"], query["state"][:-4] + "AAAA")
    assert browser.http.get(tampered).status_code == 400
    # Another browser (no state cookie) following the real link is refused too.
    with httpx.Client() as stranger:
        page = stranger.get(callback)
    assert page.status_code == 400 and "state mismatch" in page.text
    assert refused(lambda: poll(sso_stack, started)).code == "authorization_pending"
    assert browser.http.get(callback).status_code == 200
    assert poll(sso_stack, started).access_token
    assert browser.http.get(callback).status_code == 400  # a state works once


def test_nonce_mismatch_refuses_a_code_from_another_sign_in(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    """Code injection: a code obtained for one sign-in, delivered with another's state."""
    add_alice(sso_stack, oidc_provider)
    mine, theirs = start(sso_stack, "mine"), start(sso_stack, "theirs")
    attacker = Browser()
    try:
        form = attacker.confirm(attacker.open_link(theirs.verification_uri_complete))
        _, stolen = callback_of(attacker.log_in_at_provider(form, "alice-sub", follow=False))
    finally:
        attacker.close()
    victim_form = browser.confirm(browser.open_link(mine.verification_uri_complete))
    victim_callback, victim_query = callback_of(browser.log_in_at_provider(victim_form, "alice-sub", follow=False))
    forged = victim_callback.replace(victim_query["code"], stolen["code"])
    page = browser.http.get(forged)
    assert page.status_code == 400 and "nonce mismatch" in page.text
    assert refused(lambda: poll(sso_stack, mine)).code == "authorization_pending"


def test_a_code_without_a_confirmed_form_or_for_an_unknown_user_signs_in_nobody(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    started = start(sso_stack)
    page = browser.open_link(started.verification_uri_complete)
    # A form posted from elsewhere carries no CSRF cookie: refused before the provider.
    with httpx.Client() as other_site:
        forged = other_site.post(sso_stack.url + "/device", data={"user_code": started.user_code, "csrf": "x"})
    assert forged.status_code == 403
    oidc_provider.set_user("nobody-sub", email="nobody@example.com")
    done = browser.log_in_at_provider(browser.confirm(page), "nobody-sub")
    assert done.status_code == 403 and "No devyard user matches nobody@example.com" in done.text
    assert refused(lambda: poll(sso_stack, started)).code == "authorization_pending"
    assert browser.open_link(sso_stack.url + "/device?user_code=BBBB-BBBB").status_code == 400


def test_auto_create_and_group_roles(tmp_path: Path, oidc_provider: OidcProvider, browser: Browser) -> None:
    settings = sso_settings(
        oidc_provider,
        oidc_auto_create=True,
        oidc_default_role="viewer",
        oidc_group_roles={"yard-admins": "admin", "yard-devs": "developer"},
    )
    with running_stack(tmp_path / "g", "", None, **settings) as stack:
        oidc_provider.set_user("carol-sub", email="Carol.Ng@example.com", groups=["yard-devs", "yard-admins", "x"])
        oidc_provider.set_user("dave-sub", email="dave@example.com", preferred_username="dave", groups=["x"])
        carol = sign_in(stack, browser, "carol-sub")
        with stack.client(carol.access_token) as client:
            me = client.me()
        assert (me.name, me.role, me.email) == ("carol.ng", "admin", "Carol.Ng@example.com")
        dave = sign_in(stack, browser, "dave-sub")
        assert bearer(stack, dave.access_token).json()["role"] == "viewer"
        # Roles follow the groups at each sign-in.
        oidc_provider.set_user("carol-sub", email="Carol.Ng@example.com", groups=["yard-devs"])
        again = sign_in(stack, browser, "carol-sub")
        assert bearer(stack, again.access_token).json()["role"] == "developer"
        with stack.client() as admin:
            actions = [(e.action, e.details.get("by")) for e in admin.list_audit().items]
        assert ("user.create", "sso") in actions and ("sso.approve", None) in actions


def test_wrong_audience_and_another_devyards_tokens_are_refused(
    tmp_path: Path, oidc_provider: OidcProvider, browser: Browser
) -> None:
    from control.sso.oidc import IdentityProvider
    from control.sso.problem import SsoProblem

    first = running_stack(tmp_path / "one", "", None, **sso_settings(oidc_provider))
    other = running_stack(
        tmp_path / "two", "", None, **sso_settings(oidc_provider, oidc_client_id="other-devyard", oidc_client_secret="cs-two")
    )
    with first as one, other as two:
        add_alice(one, oidc_provider)
        add_alice(two, oidc_provider)
        grant = sign_in(one, browser)
        # One devyard's tokens mean nothing to another.
        assert bearer(two, grant.access_token).status_code == 401
        with two.client("") as anonymous:
            assert refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=grant.refresh_token)).code == (
                "invalid_grant"
            )
        # A refresh token is no access token, and the reverse.
        assert bearer(one, grant.refresh_token).status_code == 401
        with one.client("") as anonymous:
            assert refused(lambda: anonymous.grant_token(REFRESH_GRANT, refresh_token=grant.access_token)).code == (
                "invalid_grant"
            )

        # A code the provider issued for the first devyard, delivered to the second's callback.
        started = start(one)
        form = browser.confirm(browser.open_link(started.verification_uri_complete))
        _, code_for_one = callback_of(browser.log_in_at_provider(form, "alice-sub", follow=False))
        target = start(two)
        form_two = browser.confirm(browser.open_link(target.verification_uri_complete))
        callback_two, query_two = callback_of(browser.log_in_at_provider(form_two, "alice-sub", follow=False))
        page = browser.http.get(callback_two.replace(query_two["code"], code_for_one["code"]))
        assert page.status_code == 400 and "refused" in page.text
        assert refused(lambda: poll(two, target)).code == "authorization_pending"

        # The provider's own tokens (issued to another client) are no devyard token, and an ID
        # token whose audience is another client does not verify here.
        tokens = provider_tokens(oidc_provider, browser, client_id="some-other-app")
        assert bearer(one, tokens["access_token"]).status_code == 401
        assert bearer(one, tokens["id_token"]).status_code == 401
        idp = IdentityProvider(one.settings)
        with pytest.raises(SsoProblem) as caught:
            idp.verify_id_token(tokens["id_token"], "n-1")
        assert caught.value.code == "invalid_id_token" and "aud" in caught.value.message


def provider_tokens(provider: OidcProvider, browser: Browser, client_id: str) -> dict[str, str]:
    """A plain code flow at the provider for another application: its token answer."""
    redirect = "http://127.0.0.1:9/cb"
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": "openid email",
        "redirect_uri": redirect,
        "state": "s-1",
        "nonce": "n-1",
    }
    form = browser.http.get(provider.url + "/oauth2/authorize", params=params)
    _, query = callback_of(browser.log_in_at_provider(form, "alice-sub", follow=False))
    answer = httpx.post(
        provider.url + "/oauth2/token",
        data={"grant_type": "authorization_code", "code": query["code"], "redirect_uri": redirect},
        auth=(client_id, "whatever"),
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_without_sso_configured_the_endpoints_say_so(sqlite_stack: Stack) -> None:
    with sqlite_stack.client("") as anonymous:
        problem = refused(lambda: anonymous.start_device_login("x"))
    assert problem.status == 404 and problem.code == "sso_not_configured"
    assert httpx.get(sqlite_stack.url + "/device").status_code == 404


def test_client_settings_never_show_the_secret(sso_stack: Stack) -> None:
    assert CLIENT_SECRET not in repr(sso_stack.settings)
    assert CLIENT_SECRET not in repr(ControlClient)


def test_guessing_user_codes_is_throttled(sso_stack: Stack, browser: Browser) -> None:
    from control.sso.throttle import MAX_WRONG

    started = start(sso_stack)
    for n in range(MAX_WRONG):
        wrong = browser.open_link(f"{sso_stack.url}/device?user_code=BCDF-{'GHJKLMNPQR'[n]}XZZ")
        assert wrong.status_code == 400 and "No sign-in is waiting for that code" in wrong.text
    # Now even the right code gets no answer from this address.
    page = browser.open_link(started.verification_uri_complete)
    assert page.status_code == 429 and "Too many wrong codes" in page.text
    assert started.user_code not in page.text


def test_failed_sign_ins_leak_no_secret_into_logs_or_answers(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    add_alice(sso_stack, oidc_provider)
    answers: list[str] = []
    secrets = {"client secret": CLIENT_SECRET}

    first, second = start(sso_stack, "one"), start(sso_stack, "two")
    secrets |= {"device code 1": first.device_code, "device code 2": second.device_code}
    form = browser.confirm(browser.open_link(first.verification_uri_complete))
    callback, query = callback_of(browser.log_in_at_provider(form, "alice-sub", follow=False))
    secrets |= {"code 1": query["code"], "state 1": query["state"]}
    answers.append(browser.http.get(callback.replace(query["state"], "x" * 40)).text)  # state mismatch
    other = Browser()
    try:
        form2 = other.confirm(other.open_link(second.verification_uri_complete))
        callback2, query2 = callback_of(other.log_in_at_provider(form2, "alice-sub", follow=False))
        secrets |= {"code 2": query2["code"], "state 2": query2["state"]}
        answers.append(other.http.get(callback2.replace(query2["code"], query["code"])).text)  # nonce mismatch
        answers.append(other.http.get(callback2).text)  # that state is spent
    finally:
        other.close()
    # The provider spent code 1 on the forged callback: the real one is refused now, in words.
    answers.append(browser.http.get(callback).text)
    grant = sign_in(sso_stack, browser)
    secrets |= {"access token": grant.access_token, "refresh token": grant.refresh_token}
    for body in (
        {"grant_type": DEVICE_GRANT, "device_code": first.device_code},  # used
        {"grant_type": REFRESH_GRANT, "refresh_token": grant.refresh_token + "x"},  # unknown
        {"grant_type": REFRESH_GRANT, "refresh_token": grant.access_token},  # wrong kind
        {"grant_type": REFRESH_GRANT, "refresh_token": "y" * 300},  # too long
    ):
        answers.append(httpx.post(sso_stack.url + "/api/v1/auth/token", json=body).text)
    answers.append(bearer(sso_stack, grant.refresh_token).text)
    with sso_stack.client() as admin:
        audit = admin.list_audit(limit=500).model_dump_json()
    # The test's own browser and CLI share this process's httpx loggers (they log the URLs they
    # fetch, the callback's code included); the API's own records are everything else. (The
    # server log of a real `yard up` is searched whole in tests/tui/test_login_sso.py.)
    server_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "sso.approve" in audit and "nonce mismatch" in answers[1] and "refused the sign-in" in answers[3]
    assert "sso sign-in refused: nonce_mismatch" in server_log
    for where, text_ in {"server log": server_log, "audit log": audit, "answers": "\n".join(answers)}.items():
        for what, secret in secrets.items():
            assert secret not in text_, f"the {what} is in the {where}"


def test_matching_by_subject_and_links_made_by_admins(
    tmp_path: Path, oidc_provider: OidcProvider, browser: Browser
) -> None:
    with running_stack(tmp_path / "m", "", None, **sso_settings(oidc_provider, oidc_match="subject")) as stack:
        with stack.client() as admin:
            admin.create_user("frank", email="frank@example.com", issue_token=False)
            admin.create_user("gina", issue_token=False, sso_subject="gina-sub")
            assert refused(lambda: admin.create_user("imposter", sso_subject="gina-sub")).status == 409
        oidc_provider.set_user("frank-sub", email="frank@example.com")
        oidc_provider.set_user("gina-sub", email="someone-else@example.com")
        # By subject only: the address of an unlinked user does not sign anybody in.
        started = start(stack)
        page = browser.sign_in(started.verification_uri_complete, "frank-sub")
        assert page.status_code == 403 and "No devyard user matches frank@example.com" in page.text
        gina = sign_in(stack, browser, "gina-sub")
        assert bearer(stack, gina.access_token).json()["name"] == "gina"
        with stack.client() as admin:
            linked = admin.update_user("frank", sso_subject="frank-sub")
            assert linked.sso_subject == "frank-sub"
            assert refused(lambda: admin.update_user("frank", sso_subject="gina-sub")).status == 409
            admin.update_user("gina", sso_subject=None)  # unlinking ends her sign-ins
        # The terminal that was refused still waits; now frank's identity is his.
        assert browser.sign_in(started.verification_uri_complete, "frank-sub").status_code == 200
        assert bearer(stack, poll(stack, started).access_token).json()["name"] == "frank"
        assert bearer(stack, gina.access_token).status_code == 401


def test_unverified_or_taken_addresses_match_nobody(
    sso_stack: Stack, oidc_provider: OidcProvider, browser: Browser
) -> None:
    add_alice(sso_stack, oidc_provider)
    oidc_provider.set_user("mallory-sub", email="alice@example.com", email_verified=False)
    started = start(sso_stack)
    page = browser.sign_in(started.verification_uri_complete, "mallory-sub")
    assert page.status_code == 403 and "No devyard user matches mallory-sub" in page.text
    assert sign_in(sso_stack, browser).access_token  # alice links alice-sub by her address
    oidc_provider.set_user("mallory-sub", email="alice@example.com", email_verified=True)
    page = browser.sign_in(start(sso_stack).verification_uri_complete, "mallory-sub")
    assert page.status_code == 403 and "linked to another identity" in page.text
