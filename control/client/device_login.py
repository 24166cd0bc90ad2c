"""`yard login --sso`: the client's side of the device authorization grant (RFC 8628 section 3.4).

Ask for a device code, let the caller show the code and link, then poll at the interval the API
gave (five seconds more after each ``slow_down``) until the person approved, refused, or the
code expired. A dropped connection while polling is retried until the code's expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from control.client.errors import ApiError, ConnectionFailed
from control.client.sync import ControlClient
from control.wire.errors import AUTHORIZATION_PENDING, SLOW_DOWN
from control.wire.sso import DEVICE_GRANT, DeviceAuthorization, TokenGrant

SLOW_DOWN_STEP_S = 5.0


def sign_in(
    client: ControlClient,
    client_name: str,
    show: Callable[[DeviceAuthorization], None],
    *,
    pause: Callable[[float], None] = time.sleep,
) -> TokenGrant:
    """The session's tokens once the person approved; raises the API's error otherwise
    (``access_denied``, ``expired_token``, ``user_disabled``, ...)."""
    started = client.start_device_login(client_name[:48] or "yard")
    show(started)
    interval = started.interval
    deadline = time.monotonic() + started.expires_in
    while True:
        pause(interval)  # the protocol's pacing: the API refuses faster polls with slow_down
        try:
            return client.grant_token(DEVICE_GRANT, device_code=started.device_code)
        except ConnectionFailed:
            if time.monotonic() > deadline:
                raise
        except ApiError as exc:
            if exc.code == SLOW_DOWN:
                interval += SLOW_DOWN_STEP_S
            elif exc.code != AUTHORIZATION_PENDING:
                raise
