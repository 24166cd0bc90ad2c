"""Which TLS certificate a client accepts from the control API, and when it may speak plain HTTP.

A client trusts one of:
- the system's trust store (the default; ``truststore`` for the httpx clients),
- a CA file (``--ca-file``): a chain to it and the host name are checked,
- a pinned SHA-256 fingerprint of the server's certificate (``--fingerprint``, or trust on first
  use): exactly that certificate, whatever names it carries, as ssh pins a host key,
- the certificate file of the server it runs next to (``pin_file``: the embedded stack's own agent
  and run workers), re-read when the file changes so a renewed certificate is followed.

Standard library only, and ``ssl`` is imported only when a context is built: the run worker and
the CLI's fast paths import this module (:mod:`control.transport`).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the fast paths ~2 ms
if TYPE_CHECKING:
    import ssl

PREFIX = "SHA256:"
# The environment of a run worker carries its trust as JSON (see Trust.to_json).
WORKER_ENV = "DEVYARD_WORKER_TLS"


class TrustProblem(Exception):
    """A certificate or URL cannot be trusted; the message is one sentence for the user."""


def fingerprint_of(der: bytes) -> str:
    """``SHA256:AB:CD:...``: the form ``openssl x509 -fingerprint -sha256`` prints, so an
    administrator can compare it with the server's file."""
    import hashlib

    return PREFIX + ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def parse_fingerprint(text: str) -> str:
    """A fingerprint as a user may type it (hex with or without colons, any case, with or without
    ``SHA256:``; or ssh's base64 form) in the form :func:`fingerprint_of` writes."""
    raw = text.strip()
    body = raw[len(PREFIX) :] if raw.upper().startswith(PREFIX) else raw
    digits = body.replace(":", "")
    if len(digits) == 64 and all(c in "0123456789abcdefABCDEF" for c in digits):
        data = bytes.fromhex(digits)
    else:
        import base64
        import binascii

        try:
            data = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            data = b""
    if len(data) != 32:
        raise TrustProblem(
            f"'{text}' is not a SHA-256 fingerprint (SHA256: and 64 hex digits, as `yard up` prints it)."
        )
    return PREFIX + ":".join(f"{byte:02X}" for byte in data)


class Trust:
    """What a client accepts from the API. A plain class with slots: the fast paths read it."""

    __slots__ = ("ca_file", "ca_pem", "fingerprint", "insecure_http", "pin_file")

    def __init__(
        self,
        *,
        ca_file: str | None = None,
        ca_pem: str | None = None,
        fingerprint: str | None = None,
        pin_file: str | None = None,
        insecure_http: bool = False,
    ) -> None:
        self.ca_file = ca_file
        self.ca_pem = ca_pem
        self.fingerprint = fingerprint
        self.pin_file = pin_file
        self.insecure_http = insecure_http

    def _key(self) -> tuple[object, ...]:
        return (self.ca_file, self.ca_pem, self.fingerprint, self.pin_file, self.insecure_http)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trust) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Trust({self.describe()})"

    @property
    def pinned(self) -> bool:
        return bool(self.fingerprint or self.pin_file)

    def describe(self) -> str:
        """In words, for `yard status` and messages."""
        if self.fingerprint:
            return f"pinned certificate {self.fingerprint}"
        if self.pin_file:
            return f"the certificate in {self.pin_file}"
        if self.ca_file:
            return f"certificates signed by {self.ca_file}"
        if self.ca_pem:
            return "certificates signed by the given CA"
        return "the system trust store"

    def to_json(self) -> str:
        """For a process started with it (a run worker): a CA file travels as its content, so a
        worker in a container, where the path does not exist, trusts the same CA."""
        data: dict[str, object] = {}
        if self.fingerprint:
            data["fingerprint"] = self.fingerprint
        if self.pin_file:
            data["pin_file"] = self.pin_file
            # For a worker that cannot read the file (in a container): the certificate as it is now.
            from control.tlspin import file_fingerprint

            try:
                data["fingerprint"] = file_fingerprint(self.pin_file)
            except (OSError, ValueError) as exc:
                raise TrustProblem(f"Cannot read the certificate {self.pin_file} ({exc}).") from exc
        ca_pem = self.ca_pem
        if self.ca_file and not ca_pem:
            try:
                with open(self.ca_file) as handle:
                    ca_pem = handle.read()
            except OSError as exc:
                raise TrustProblem(f"Cannot read the CA file {self.ca_file} ({exc.strerror}).") from exc
        if ca_pem:
            data["ca_pem"] = ca_pem
        if self.insecure_http:
            data["insecure_http"] = True
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | None) -> Trust:
        data = json.loads(text) if text else {}
        return cls(
            ca_pem=data.get("ca_pem"),
            fingerprint=data.get("fingerprint"),
            pin_file=data.get("pin_file"),
            insecure_http=bool(data.get("insecure_http")),
        )

    @classmethod
    def from_environment(cls) -> Trust:
        """``DEVYARD_CA_FILE``, ``DEVYARD_FINGERPRINT``, ``DEVYARD_CERTIFICATE_FILE``,
        ``DEVYARD_INSECURE_HTTP`` (set with ``DEVYARD_URL``)."""
        fingerprint = os.environ.get("DEVYARD_FINGERPRINT") or None
        return cls(
            ca_file=os.environ.get("DEVYARD_CA_FILE") or None,
            fingerprint=parse_fingerprint(fingerprint) if fingerprint else None,
            pin_file=os.environ.get("DEVYARD_CERTIFICATE_FILE") or None,
            insecure_http=os.environ.get("DEVYARD_INSECURE_HTTP", "").lower() in ("1", "true", "yes"),
        )

    def environment(self) -> dict[str, str]:
        """The variables :meth:`from_environment` reads back (for a child started with DEVYARD_URL)."""
        env = {}
        if self.fingerprint:
            env["DEVYARD_FINGERPRINT"] = self.fingerprint
        if self.pin_file:
            env["DEVYARD_CERTIFICATE_FILE"] = self.pin_file
        if self.ca_file:
            env["DEVYARD_CA_FILE"] = self.ca_file
        if self.insecure_http:
            env["DEVYARD_INSECURE_HTTP"] = "1"
        return env


def url_host(url: str) -> str:
    """The host of an http(s) URL, without brackets or port."""
    netloc = url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.partition(":")[0]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface (names are not resolved: a name
    other than ``localhost`` counts as another machine)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_http(url: str, token: str | None, trust: Trust | None) -> None:
    """Refuse to send a token over plain HTTP to another machine unless told it may."""
    if not url.startswith("http://") or not token or (trust is not None and trust.insecure_http):
        return
    host = url_host(url)
    if not is_loopback(host):
        raise TrustProblem(
            f"Refusing to send a token over plain HTTP to {host}; use an https:// URL, or log in with"
            " --insecure-http (DEVYARD_INSECURE_HTTP=1) if this network is trusted."
        )


def client_context(trust: Trust | None, *, system: bool = True) -> ssl.SSLContext:
    """The SSL context of a client that trusts ``trust``. ``system``: the system trust store
    through ``truststore`` (the httpx clients); False: OpenSSL's default paths (the same store on
    Linux, without the import)."""
    from control import tlspin

    return tlspin.client_context(trust or Trust(), system=system)
