"""Single sign-on for terminals: the device authorization grant's two endpoints (RFC 8628).

Both are public: ``/auth/device`` hands out a device code, ``/auth/token`` turns an approved
device code (once) or a refresh token (once) into a session's tokens. The approval itself happens
in a browser (control/api/routes/device_pages.py).
"""

from __future__ import annotations

from fastapi import Request

from control.api.deps import DB, Svc
from control.api.routing import SegmentRouter
from control.settings import Settings
from control.sso import device, sessions
from control.sso.problem import SsoProblem
from control.wire.errors import INVALID_REQUEST, SSO_NOT_CONFIGURED, ApiError
from control.wire.sso import DEVICE_GRANT, DeviceAuthorization, DeviceStart, TokenGrant, TokenRequest

router = SegmentRouter(tags=["auth"])
PUBLIC: dict[str, object] = {"security": []}


def require_sso(settings: Settings) -> None:
    if not settings.sso_enabled:
        raise ApiError(
            404, SSO_NOT_CONFIGURED, "Single sign-on is not configured on this devyard; log in with a token instead."
        )


def public_base(settings: Settings, request: Request) -> str:
    """The URL people reach this API at: the setting, else the one this request came to."""
    return settings.public_url or str(request.base_url).rstrip("/")


@router.post("/auth/device", response_model=DeviceAuthorization, openapi_extra=PUBLIC)
def start_device_login(body: DeviceStart, request: Request, session: DB, svc: Svc) -> DeviceAuthorization:
    """Start a terminal's sign-in: show ``user_code`` and ``verification_uri`` to the person,
    then poll ``/auth/token`` with ``device_code`` every ``interval`` seconds."""
    require_sso(svc.settings)
    row, device_code, user_code = device.start(session, svc.settings, body.client_name)
    session.commit()
    page = public_base(svc.settings, request) + "/device"
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=page,
        verification_uri_complete=f"{page}?user_code={user_code}",
        expires_in=svc.settings.sso_device_code_ttl_s,
        interval=row.interval_s,
    )


@router.post("/auth/token", response_model=TokenGrant, openapi_extra=PUBLIC)
def grant_token(body: TokenRequest, session: DB, svc: Svc) -> TokenGrant:
    """An approved device code's session (once), or a session renewed with its refresh token
    (once: the answer carries the next one). Errors carry the RFC's codes."""
    require_sso(svc.settings)
    try:
        if body.grant_type == DEVICE_GRANT:
            if body.device_code is None:
                raise ApiError(422, INVALID_REQUEST, "Invalid device_code: a device code is required.")
            return device.poll(session, svc.settings, body.device_code)
        if body.refresh_token is None:
            raise ApiError(422, INVALID_REQUEST, "Invalid refresh_token: a refresh token is required.")
        grant = sessions.refresh(session, svc.settings, body.refresh_token)
        svc.principals.clear()  # the replaced access token stops working in every process now
        return grant
    except SsoProblem as problem:
        if problem.ended_session:
            svc.principals.clear()
        raise ApiError(problem.status, problem.code, problem.message) from None
