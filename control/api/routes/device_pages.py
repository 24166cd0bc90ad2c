"""The browser half of `yard login --sso`: ``/device`` (enter or confirm the code) and
``/device/callback`` (where the identity provider sends the browser back).

Guards, each against a known attack on this flow:
- the code is confirmed on a page before anything happens (RFC 8628 section 5.4), and that
  page's form carries a CSRF value that must match a SameSite=Strict cookie, so another site
  cannot submit it for the person;
- the state sent to the provider is also set as a cookie of this browser and must come back in
  both, once (the login row is used up first), and the ID token's nonce must be this login's;
- pages are never cached or framed and send no referrer (the callback's URL holds the code).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from control.api.deps import services
from control.api.routes.auth import public_base
from control.api.services import Services
from control.auth import hash_token
from control.clock import utcnow
from control.db.tables import DeviceCode, OidcLogin
from control.sso import device, pages
from control.sso.device import UNKNOWN_USER_CODE
from control.sso.oidc import IdentityProvider
from control.sso.problem import SsoProblem
from control.sso.throttle import WrongCodes
from control.wire.errors import ACCESS_DENIED

router = APIRouter(include_in_schema=False)
log = logging.getLogger("devyard.sso")

CSRF_COOKIE = "devyard_csrf"
STATE_COOKIE = "devyard_sso_state"
COOKIE_PATH = "/device"
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
}
MAX_FORM_BYTES = 4096


TOO_MANY = "Too many wrong codes from your address; wait a few minutes, then check the code and try again."


def wrong_codes(svc: Services) -> WrongCodes:
    limiter = svc.extras.get("sso_wrong_codes")
    if not isinstance(limiter, WrongCodes):
        limiter = svc.extras["sso_wrong_codes"] = WrongCodes()
    return limiter


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def identity_provider(svc: Services) -> IdentityProvider:
    """This process's provider client (its discovery document and keys are cached)."""
    idp = svc.extras.get("idp")
    if not isinstance(idp, IdentityProvider):
        idp = svc.extras["idp"] = IdentityProvider(svc.settings)
    return idp


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers=HEADERS)


def _secure(svc: Services, request: Request) -> bool:
    return public_base(svc.settings, request).startswith("https://")


@router.get("/device")
async def device_page(request: Request, user_code: str = "") -> Response:
    svc = services(request)
    if not svc.settings.sso_enabled:
        return _html(pages.failed("Single sign-on is not configured on this devyard."), 404)
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    limiter, address = wrong_codes(svc), _address(request)
    if user_code and limiter.blocked(address):
        response = _html(pages.enter_code(csrf, TOO_MANY), 429)
    elif user_code:
        try:
            row = await run_in_threadpool(_waiting, svc, user_code)
            shown = device.format_user_code(device.normalize_user_code(user_code))
            response = _html(pages.confirm_code(csrf, shown, row.client_name))
        except SsoProblem as problem:
            if problem.code == UNKNOWN_USER_CODE:
                limiter.wrong(address)
            response = _html(pages.enter_code(csrf, problem.message), 400)
    else:
        response = _html(pages.enter_code(csrf))
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(svc, request),
        max_age=3600,
    )
    return response


@router.post("/device")
async def device_submit(request: Request) -> Response:
    """The person confirmed the code: off to the identity provider."""
    svc = services(request)
    if not svc.settings.sso_enabled:
        return _html(pages.failed("Single sign-on is not configured on this devyard."), 404)
    body = await request.body()
    form = {k: v[0] for k, v in parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace")).items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, form.get("csrf", "")):
        return _html(pages.failed("This form did not come from this devyard's sign-in page; open the link again."), 403)
    base = public_base(svc.settings, request)
    limiter, address = wrong_codes(svc), _address(request)
    if limiter.blocked(address):
        return _html(pages.enter_code(cookie, TOO_MANY), 429)
    try:
        url, state = await run_in_threadpool(_begin, svc, form.get("user_code", ""), base + "/device/callback")
    except SsoProblem as problem:
        if problem.code == UNKNOWN_USER_CODE:
            limiter.wrong(address)
        return _html(pages.enter_code(cookie, problem.message), problem.status)
    response = RedirectResponse(url, 303, headers=HEADERS)
    response.set_cookie(
        STATE_COOKIE,
        state,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=base.startswith("https://"),
        max_age=600,
    )
    return response


@router.get("/device/callback")
async def device_callback(request: Request) -> Response:
    """The provider's answer: ``code`` and ``state``, or ``error`` and ``state``."""
    svc = services(request)
    if not svc.settings.sso_enabled:
        return _html(pages.failed("Single sign-on is not configured on this devyard."), 404)
    state = request.query_params.get("state", "")
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not state or not cookie or not hmac.compare_digest(state, cookie):
        log.warning("sso callback refused: the state does not match this browser's")
        # The cookie stays: a forged callback must not break this browser's real sign-in.
        return _html(pages.failed("This sign-in did not start in this browser (state mismatch); start again."), 400)
    code, error = request.query_params.get("code"), request.query_params.get("error")
    try:
        if error is not None or not code:
            await run_in_threadpool(_refused_at_provider, svc, state)
            reason = error if error and error.replace("_", "").isalnum() and len(error) < 40 else "no code"
            raise SsoProblem(ACCESS_DENIED, f"The identity provider did not sign you in ({reason}).", 403)
        user, client_name = await run_in_threadpool(_finish, svc, state, code)
    except SsoProblem as problem:
        log.warning("sso sign-in refused: %s (%s)", problem.code, problem.message)
        return _callback_answer(pages.failed(problem.message), problem.status)
    log.info("sso sign-in approved for %s (%s)", user, client_name)
    return _callback_answer(pages.signed_in(user, client_name), 200)


def _callback_answer(body: str, status: int) -> Response:
    response = _html(body, status)
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


def _waiting(svc: Services, user_code: str) -> DeviceCode:
    with Session(svc.engine, expire_on_commit=False) as session:
        return device.waiting(session, user_code)


def _begin(svc: Services, user_code: str, redirect_uri: str) -> tuple[str, str]:
    with Session(svc.engine, expire_on_commit=False) as session:
        row = device.waiting(session, user_code)
        url, state = device.begin_login(session, identity_provider(svc), row, redirect_uri)
        session.commit()
    return url, state


def _finish(svc: Services, state: str, code: str) -> tuple[str, str]:
    with Session(svc.engine, expire_on_commit=False) as session:
        row, user = device.finish_login(session, svc.settings, identity_provider(svc), state, code)
        session.commit()
        return user.name, row.client_name


def _refused_at_provider(svc: Services, state: str) -> None:
    """The person refused (or the provider failed) at the provider: the terminal's sign-in is over."""
    with Session(svc.engine, expire_on_commit=False) as session:
        login = session.exec(select(OidcLogin).where(OidcLogin.state_hash == hash_token(state))).first()
        if login is None:
            return
        row = session.get(DeviceCode, login.device_code_id)
        session.delete(login)
        if row is not None and row.state == "pending" and row.expires_at > utcnow():
            row.state = "denied"
            session.add(row)
        session.commit()
