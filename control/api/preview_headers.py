"""Headers of a previewed app's requests and answers, as they cross the API.

The app is served under a prefix (``/api/v1/devservers/{id}/ports/{port}``) but believes it is
at the root of ``localhost:{port}`` (the develop server sends that Host). So that a typical app
keeps working, going in: the prefix, host and scheme the browser used are given as
``X-Forwarded-Prefix/Host/Proto`` (apps that honour them build correct links), a browser Origin
becomes the app's own, and credentials of devyard (the preview cookie, an API token) are taken
out; coming back: a redirect to the app's root or to ``localhost:{port}`` is put under the
prefix, and cookies are kept to the prefix's path. Pure functions; no web framework.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from control.previews import COOKIE

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the WebSocket handshake itself on the next hop.
WEBSOCKET_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
APP_AUTHORIZATION = "x-devyard-app-authorization"
"""The app's own Authorization header, carried past the develop server's (which is the gateway's)."""


def to_app(
    headers: list[tuple[str, str]],
    *,
    prefix: str,
    host: str,
    scheme: str,
    client: str | None,
    port: int,
    drop_authorization: bool,
    websocket: bool = False,
) -> list[tuple[str, str]]:
    """The request headers to send on towards the app."""
    public_origin = f"{scheme}://{host}"
    out: list[tuple[str, str]] = []
    forwarded_for: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower == "host" or lower.startswith("x-forwarded-") or lower == APP_AUTHORIZATION:
            if lower == "x-forwarded-for":
                forwarded_for.append(value)
            continue
        if websocket and lower in WEBSOCKET_HANDSHAKE:
            continue
        if lower == "authorization":
            if not drop_authorization:
                out.append((APP_AUTHORIZATION, value))
            continue
        if lower == "cookie":
            value = _without_preview_cookie(value)
            if not value:
                continue
        if lower == "origin" and value == public_origin:
            value = f"http://localhost:{port}"
        if lower == "referer" and value.startswith(public_origin + prefix):
            value = f"http://localhost:{port}" + value[len(public_origin + prefix) :]
        out.append((lower, value))
    if client:
        forwarded_for.append(client)
    out += [("x-forwarded-prefix", prefix), ("x-forwarded-host", host), ("x-forwarded-proto", scheme)]
    if forwarded_for:
        out.append(("x-forwarded-for", ", ".join(forwarded_for)))
    return out


def _without_preview_cookie(value: str) -> str:
    kept = [part.strip() for part in value.split(";") if part.strip().partition("=")[0] != COOKIE]
    return "; ".join(kept)


def from_app(headers: list[tuple[str, str]], *, prefix: str, port: int) -> list[tuple[str, str]]:
    """The answer's headers to send on to the browser."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            continue
        if lower == "location":
            value = location(value, prefix=prefix, port=port)
        elif lower == "set-cookie":
            kept = set_cookie(value, prefix=prefix)
            if kept is None:
                continue
            value = kept
        out.append((lower, value))
    return out


def location(value: str, *, prefix: str, port: int) -> str:
    """A redirect target under the prefix: ``/x`` and ``http://localhost:PORT/x`` become
    ``PREFIX/x``; relative targets and other sites stay as they are."""
    if value.startswith("/") and not value.startswith("//"):
        return prefix + value
    parts = urlsplit(value)
    local = parts.scheme in ("http", "https") and parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not local or (parts.port or (443 if parts.scheme == "https" else 80)) != port:
        return value
    rest = parts.path or "/"
    if parts.query:
        rest += "?" + parts.query
    if parts.fragment:
        rest += "#" + parts.fragment
    return prefix + rest


def set_cookie(value: str, *, prefix: str) -> str | None:
    """An app's cookie kept within the prefix (its Path put under it, its Domain dropped); None
    for a cookie that would shadow devyard's own."""
    name = value.partition("=")[0].strip()
    if name == COOKIE:
        return None
    attributes = [part.strip() for part in value.split(";")]
    out = [attributes[0]]
    has_path = False
    for attribute in attributes[1:]:
        key, _, rest = attribute.partition("=")
        key_lower = key.strip().lower()
        if key_lower == "domain":
            continue
        if key_lower == "path":
            has_path = True
            path = rest.strip() or "/"
            attribute = f"Path={prefix}{path if path.startswith('/') else '/' + path}"
        out.append(attribute)
    if not has_path:
        out.append(f"Path={prefix}/")
    return "; ".join(part for part in out if part)


def preview_cookie(secret: str, *, prefix: str, max_age: int, secure: bool) -> str:
    """The cookie a preview link leaves in the browser: its secret, for this port's path only."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE] = secret
    morsel = cookie[COOKIE]
    morsel["path"] = prefix + "/"
    morsel["max-age"] = max(0, max_age)
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()
