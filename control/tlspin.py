"""SSL contexts for clients of the control API (see :mod:`control.trust` for what they trust).

A pinned fingerprint is checked by the socket classes of the context itself
(``SSLContext.sslsocket_class`` / ``sslobject_class``) right after the handshake, so every client
that takes an ``SSLContext`` (httpx sync and async, the standard-library transport, websockets)
checks it the same way, before a byte of the request (and its token) is sent.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading

from control.trust import Trust, TrustProblem, fingerprint_of


class CertificateChanged(ssl.SSLError):
    """The server's certificate is not the pinned one. ``str()`` is one sentence for the user."""

    def __init__(self, expected: str, seen: str) -> None:
        super().__init__(
            f"the server's certificate changed: it is {seen}, not the pinned {expected}; if it was"
            f" replaced on purpose, log in again with --fingerprint {seen}"
        )
        self.expected = expected
        self.seen = seen

    def __str__(self) -> str:
        return str(self.args[0])


class _Pins:
    """The accepted fingerprint: the first certificate of a file, read again whenever the file
    changes (a renewed certificate of the server next door); else, or when the file cannot be
    read (a run worker in a container, where the agent's path does not exist), a fixed one."""

    def __init__(self, trust: Trust) -> None:
        self.fixed = trust.fingerprint
        self.path = trust.pin_file
        self._stamp: tuple[int, int, int] | None = None
        self._pin: str | None = None
        self._lock = threading.Lock()

    def expected(self) -> str:
        if self.path is None:
            assert self.fixed is not None
            return self.fixed
        with self._lock:
            try:
                info = os.stat(self.path)
                stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
                if stamp != self._stamp or self._pin is None:
                    self._pin = file_fingerprint(self.path)
                    self._stamp = stamp
            except (OSError, ValueError):
                if self._pin is None:
                    return self.fixed or f"SHA256:(unreadable {self.path})"
            assert self._pin is not None
            return self._pin

    def check(self, der: bytes | None) -> None:
        expected = self.expected()
        seen = fingerprint_of(der or b"")
        if seen != expected:
            raise CertificateChanged(expected, seen)


def file_fingerprint(path: str) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    with open(path) as handle:
        return fingerprint_of(ssl.PEM_cert_to_DER_cert(_first_pem(handle.read())))


def _first_pem(text: str) -> str:
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError("no certificate")
    return text[start : stop + len(end)] + "\n"


def _pinned_context(pins: _Pins) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The pin replaces the chain and the name: it is checked after the handshake, below.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    class PinnedSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            pins.check(self.getpeercert(binary_form=True))

    class PinnedObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()  # raises SSLWantReadError until the handshake is complete
            pins.check(self.getpeercert(binary_form=True))

    context.sslsocket_class = PinnedSocket
    context.sslobject_class = PinnedObject
    return context


def client_context(trust: Trust, *, system: bool = True) -> ssl.SSLContext:
    """See :func:`control.trust.client_context`."""
    if trust.pinned:
        return _pinned_context(_Pins(trust))
    if trust.ca_file or trust.ca_pem:
        try:
            context = ssl.create_default_context(cafile=trust.ca_file, cadata=trust.ca_pem)
        except (OSError, ssl.SSLError) as exc:
            where = trust.ca_file or "the given CA"
            raise TrustProblem(f"Cannot use {where} as a CA file ({exc}); pass a PEM file of CA certificates.") from exc
        return context
    if system:
        import truststore

        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return ssl.create_default_context()


def peer_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """The DER certificate ``host:port`` presents, accepted whatever it is (to show or pin it)."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der


def handshake_problem(host: str, port: int, trust: Trust, timeout: float = 10.0) -> ssl.SSLError | None:
    """Why a client trusting ``trust`` refuses ``host:port``'s certificate (a pin that does not
    match, a failed verification), or None when it accepts it. Connection problems raise OSError."""
    import socket

    context = client_context(trust)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return None
        except (CertificateChanged, ssl.SSLCertVerificationError) as exc:
            return exc


def why_refused(problem: ssl.SSLError) -> str:
    """A refused certificate in words (no sentence end)."""
    if isinstance(problem, CertificateChanged):
        return str(problem)
    return str(getattr(problem, "verify_message", None) or problem.reason or problem)


@functools.lru_cache(maxsize=512)
def pinned_context(fingerprint: str) -> ssl.SSLContext:
    """A client context accepting exactly the certificate ``fingerprint`` names (a develop
    server's, as its agent reported it); one per fingerprint, so connections can share it."""
    return _pinned_context(_Pins(Trust(fingerprint=fingerprint)))


def refused_pin(exc: BaseException | None) -> CertificateChanged | None:
    """The pin refusal behind ``exc`` (httpx and websockets wrap it), None if there is none."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, CertificateChanged):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
