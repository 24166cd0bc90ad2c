"""The device authorization grant (RFC 8628) on the database: codes, approval, polling.

A device code's life: ``pending`` until a person signs in at the provider for its user code,
then ``approved`` for that user; the first poll after that issues the session and marks it
``used`` (a conditional update, so two polls can never both get a token); a later poll with the
same code is ``invalid_grant``. After ``expires_at`` it is ``expired_token`` whatever its state.
The user is checked again when the token is issued: one disabled after approving gets nothing.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from control import audit
from control.auth import Principal, hash_token
from control.clock import utcnow
from control.db.tables import DeviceCode, OidcLogin, User
from control.settings import Settings
from control.sso import identity, sessions
from control.sso.oidc import IdentityProvider, new_secret
from control.sso.problem import SsoProblem
from control.wire.errors import (
    ACCESS_DENIED,
    AUTHORIZATION_PENDING,
    EXPIRED_TOKEN,
    INVALID_GRANT,
    SLOW_DOWN,
    USER_DISABLED,
)
from control.wire.resources import Role
from control.wire.sso import TokenGrant

DEVICE_PREFIX = "dyd_"
# RFC 8628 section 6.1: no vowels (no words), nothing that reads like another letter.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
LOGIN_TTL = timedelta(minutes=10)
SLOW_DOWN_STEP_S = 5.0
UNKNOWN_USER_CODE = "unknown_user_code"


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(text: str) -> str:
    """What a person typed, as stored: case, spaces and dashes do not matter."""
    return "".join(c for c in text.upper() if c in USER_CODE_ALPHABET)


def start(session: Session, settings: Settings, client_name: str) -> tuple[DeviceCode, str, str]:
    """A new device code; returns the row, the device code and the user code (shown once)."""
    now = utcnow()
    _forget_old(session)
    device_code = DEVICE_PREFIX + secrets.token_urlsafe(32)
    user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    row = DeviceCode(
        device_code_hash=hash_token(device_code),
        user_code_hash=hash_token(user_code),
        client_name=client_name,
        expires_at=now + timedelta(seconds=settings.sso_device_code_ttl_s),
        interval_s=settings.sso_poll_interval_s,
    )
    session.add(row)
    session.flush()
    return row, device_code, format_user_code(user_code)


def waiting(session: Session, user_code: str) -> DeviceCode:
    """The pending device code a person typed in; SsoProblem when there is none (any more)."""
    code = normalize_user_code(user_code)
    row = None
    if len(code) == USER_CODE_LENGTH:
        row = session.exec(select(DeviceCode).where(DeviceCode.user_code_hash == hash_token(code))).first()
    if row is None:
        raise SsoProblem(
            UNKNOWN_USER_CODE, "No sign-in is waiting for that code; check it, or run `yard login --sso` again."
        )
    if row.expires_at <= utcnow():
        raise SsoProblem(EXPIRED_TOKEN, "That code has expired; run `yard login --sso` again for a new one.")
    if row.state != "pending":
        raise SsoProblem(INVALID_GRANT, "That code has already been used; run `yard login --sso` again for a new one.")
    return row


def begin_login(session: Session, idp: IdentityProvider, device: DeviceCode, redirect_uri: str) -> tuple[str, str]:
    """Remember a browser's trip to the provider for ``device``: the provider's URL to send it
    to, and the state (which the caller also binds to the browser with a cookie)."""
    assert device.id is not None
    state, nonce, verifier = new_secret(), new_secret(), new_secret()
    session.add(
        OidcLogin(
            state_hash=hash_token(state),
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            device_code_id=device.id,
            expires_at=utcnow() + LOGIN_TTL,
        )
    )
    return idp.authorization_url(redirect_uri, state, nonce, verifier), state


def finish_login(
    session: Session, settings: Settings, idp: IdentityProvider, state: str, code: str
) -> tuple[DeviceCode, User]:
    """The provider sent the browser back: check the state, redeem the code (PKCE verifier,
    nonce), map the identity and approve the device code. The login row is used up first, so
    a replayed callback finds nothing."""
    login = session.exec(select(OidcLogin).where(OidcLogin.state_hash == hash_token(state))).first()
    if login is None or login.expires_at <= utcnow():
        raise SsoProblem("state_mismatch", "This sign-in is unknown or has expired (state mismatch); start again.")
    session.delete(login)
    session.commit()  # used up even if what follows fails: a state works once
    device = session.get(DeviceCode, login.device_code_id)
    if device is None or device.state != "pending" or device.expires_at <= utcnow():
        raise SsoProblem(EXPIRED_TOKEN, "The terminal's sign-in has expired or is done; run `yard login --sso` again.")
    claims = idp.redeem(code, login.redirect_uri, login.code_verifier, login.nonce)
    user = identity.user_for(session, settings, claims)
    device.state, device.user_id = "approved", user.id
    session.add(device)
    audit.record(
        session,
        _as_principal(user),
        "sso.approve",
        "device_code",
        device.id,
        subject=str(claims["sub"]),
        client=device.client_name,
    )
    return device, user


def poll(session: Session, settings: Settings, device_code: str) -> TokenGrant:
    """The CLI's poll (RFC 8628 section 3.4): the session once approved, else the RFC's error."""
    row = session.exec(select(DeviceCode).where(DeviceCode.device_code_hash == hash_token(device_code))).first()
    if row is None:
        raise SsoProblem(INVALID_GRANT, "The device code is not valid.")
    now = utcnow()
    if row.state == "used":
        raise SsoProblem(INVALID_GRANT, "This device code has already been used; run `yard login --sso` again.")
    if row.state == "denied":
        raise SsoProblem(ACCESS_DENIED, "The sign-in was refused.")
    if row.expires_at <= now:
        raise SsoProblem(EXPIRED_TOKEN, "The sign-in was not approved in time; run `yard login --sso` again.")
    if row.state == "pending":
        too_soon = row.last_polled_at is not None and (now - row.last_polled_at).total_seconds() < row.interval_s * 0.8
        row.last_polled_at = now
        if too_soon:
            row.interval_s += SLOW_DOWN_STEP_S
        session.add(row)
        session.commit()
        if too_soon:
            raise SsoProblem(SLOW_DOWN, f"Polling too fast; wait {row.interval_s:g} s between polls.", 400)
        raise SsoProblem(AUTHORIZATION_PENDING, "The sign-in has not been approved yet.")
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        row.state = "denied"
        session.add(row)
        session.commit()
        name = user.name if user else "the approving user"
        raise SsoProblem(USER_DISABLED, f"User {name} is disabled.", 403)
    used = session.exec(  # type: ignore[call-overload]
        update(DeviceCode).where(col(DeviceCode.id) == row.id, col(DeviceCode.state) == "approved").values(state="used")
    )
    if used.rowcount != 1:  # another poll got here first
        session.rollback()
        raise SsoProblem(INVALID_GRANT, "This device code has already been used; run `yard login --sso` again.")
    token, grant = sessions.open_session(session, settings, user, f"sso: {row.client_name}")
    audit.record(
        session, _as_principal(user), "token.create", "token", token.id, user=user.name, name=token.name, kind="sso"
    )
    session.commit()
    return grant


def _as_principal(user: User) -> Principal:
    assert user.id is not None
    return Principal(user_id=user.id, name=user.name, role=Role(user.role), token_id=0)


def _forget_old(session: Session) -> None:
    """Device codes (and their browser logins) an hour past their expiry are of no use to anyone."""
    cutoff = utcnow() - timedelta(hours=1)
    old = select(DeviceCode.id).where(col(DeviceCode.expires_at) < cutoff)
    session.exec(delete(OidcLogin).where(col(OidcLogin.device_code_id).in_(old)))  # type: ignore[call-overload]
    session.exec(delete(DeviceCode).where(col(DeviceCode.expires_at) < cutoff))  # type: ignore[call-overload]
