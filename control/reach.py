"""Plain words for why the control API could not be reached or refused a token.

Standard library only: the fast CLI paths (tui/cli/quick.py) use it next to control/client.py,
so "Cannot reach ..." reads the same whichever path a command took. Messages name what happened
("the connection was refused"), never a Python exception class ("ConnectionRefusedError").
"""

from __future__ import annotations

import os

# Checked in order against the names of the exception's classes (httpx or socket errors alike)
# and then against its text; the first match wins.
_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("UnsupportedProtocol", "InvalidURL"), "the URL is not an http:// or https:// address"),
    (("ConnectTimeout",), "the connection timed out"),
    (("ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutError", "timeout"), "it did not answer in time"),
    (("ConnectionRefused", "refused"), "the connection was refused"),
    (("gaierror", "Name or service not known", "nodename nor servname", "resolution"), "the host name is unknown"),
    (("RemoteProtocolError", "ConnectionReset", "reset by peer", "closed"), "the connection was closed early"),
    (("unreachable",), "the network is unreachable"),
    (("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure"), "it does not answer TLS (try http://)"),
)


def why(exc: BaseException) -> str:
    """What went wrong with the connection, in words."""
    names = " ".join(cls.__name__ for cls in type(exc).__mro__)
    text = str(exc)
    for needles, reason in _REASONS:
        if any(needle in names or needle in text for needle in needles):
            return reason
    return "the connection failed"


def certificate_refused(exc: BaseException) -> str | None:
    """Why the API's certificate was refused, if that is what ``exc`` (or a cause of it) says:
    a pin that does not match (:class:`control.tlspin.CertificateChanged`) or a failed
    verification. Matched by class name: this module does not import ``ssl``."""
    from_environment = token_from_environment(None)  # DEVYARD_URL: the fix is a variable, not a login
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names = {cls.__name__ for cls in type(current).__mro__}
        if "CertificateChanged" in names:
            now, pinned = getattr(current, "seen", "?"), getattr(current, "expected", "?")
            fix = f"set DEVYARD_FINGERPRINT={now}" if from_environment else f"log in again with --fingerprint {now}"
            return f"the server's certificate changed: it is {now}, not the pinned {pinned}; if it was replaced on purpose, {fix}"
        if "SSLCertVerificationError" in names:
            detail = getattr(current, "verify_message", None) or str(current)
            fix = (
                "set DEVYARD_CA_FILE or DEVYARD_FINGERPRINT (with DEVYARD_URL)"
                if from_environment
                else "log in again with --ca-file or --fingerprint (`yard login --help`)"
            )
            return f"its certificate is not trusted ({detail}); {fix}"
        current = current.__cause__ or current.__context__
    return None


def unreachable(url: str, exc: BaseException) -> str:
    """One sentence: the API at ``url`` cannot be reached, why, and what to try."""
    refused = certificate_refused(exc)
    if refused is not None:
        return f"Refusing the devyard API at {url}: {refused}."
    reason = why(exc)
    if reason.startswith("the URL"):
        hint = "check the URL (of your profile, or DEVYARD_URL)."
    elif any(host in url for host in ("//127.0.0.1", "//localhost", "//[::1]")):
        hint = "is it running (`yard up` starts it)?"
    else:
        hint = "check the URL and your network."
    return f"Cannot reach the devyard API at {url}: {reason}; {hint}"


def token_from_environment(profile: str | None) -> bool:
    """Whether the token in use is DEVYARD_TOKEN (the same rule as control.profiles.resolve)."""
    return profile is None and bool(os.environ.get("DEVYARD_URL")) and bool(os.environ.get("DEVYARD_TOKEN"))


def refused_token(message: str, from_environment: bool) -> str:
    """A 401 message with where to fix the token."""
    if from_environment:
        return (
            f"{message.rstrip('.')}; check DEVYARD_TOKEN (set with DEVYARD_URL, it is used instead of your profiles)."
        )
    return f"{message.rstrip('.')}; check the token of your profile (`yard login` replaces it)."
