"""TLS on the API's port: which certificate a server uses, a self-signed one made when it has
none, and an SSL context that follows the certificate files when they are replaced.

The decision (:func:`plan`):
- ``tls_cert`` and ``tls_key`` given: serve TLS with them;
- else, bound to a loopback address (the embedded default), or ``insecure_http``: plain HTTP;
- else: a self-signed certificate kept in ``<data-dir>/tls/`` (made once, reused, key 0600), whose
  SHA-256 fingerprint `yard up` prints for clients to pin. Plain HTTP on an address other machines
  can reach needs ``--insecure-http``: a token must not cross a network in clear by default.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from compose.stack.problem import UpProblem
from control.selfsigned import self_signed as new_self_signed
from control.settings import Settings
from control.trust import is_loopback

logger = logging.getLogger("devyard.tls")

SELF_SIGNED_CERT = "self-signed.pem"
SELF_SIGNED_KEY = "self-signed.key"


@dataclass(frozen=True)
class TlsPlan:
    """How a server serves: ``cert``/``key`` None is plain HTTP."""

    cert: Path | None
    key: Path | None
    self_signed: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"


def binds_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only."""
    return host not in ("", "0.0.0.0", "::") and is_loopback(host)


def plan(settings: Settings) -> TlsPlan:
    """What ``settings`` ask for (see the module docstring); raises :class:`UpProblem` for half a
    pair or unreadable files, and makes the self-signed certificate when one is needed."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise UpProblem("Pass both --tls-cert and --tls-key (DEVYARD_TLS_CERT and DEVYARD_TLS_KEY), or neither.")
    if settings.tls_cert and settings.tls_key:
        load_pair(settings.tls_cert, settings.tls_key)  # one sentence now rather than a dead server
        return TlsPlan(settings.tls_cert, settings.tls_key)
    if settings.insecure_http or binds_loopback(settings.host):
        return TlsPlan(None, None)
    cert, key = self_signed(settings.data_dir / "tls", settings.host)
    return TlsPlan(cert, key, self_signed=True)


def with_plan(settings: Settings, tls: TlsPlan) -> Settings:
    """``settings`` naming the certificate files of ``tls``, for the server's API processes."""
    return settings.model_copy(update={"tls_cert": tls.cert, "tls_key": tls.key})


def load_pair(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with ``cert`` and ``key``; one sentence when they cannot be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise UpProblem(f"The TLS file {exc.filename} does not exist; check --tls-cert and --tls-key.") from exc
    except OSError as exc:  # ssl.SSLError too
        detail = exc.strerror or str(exc)
        raise UpProblem(
            f"Cannot serve TLS with {cert} and {key} ({detail}); they must be a PEM certificate and its private key."
        ) from exc
    return context


def certificate_fingerprint(cert: Path) -> str:
    """The ``SHA256:...`` fingerprint of the first certificate in a PEM file (what clients pin)."""
    from control.tlspin import file_fingerprint

    return file_fingerprint(str(cert))


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """The self-signed certificate and key in ``folder``, made on first use. Replicas sharing a
    data dir make it once (a lock), and a key is never readable by others (0600 from creation)."""
    cert, key = folder / SELF_SIGNED_CERT, folder / SELF_SIGNED_KEY
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cert.exists() and key.exists()):
            key_pem, cert_pem = _generate(host)
            _write(key, key_pem, 0o600)
            _write(cert, cert_pem, 0o644)
            logger.info("made a self-signed TLS certificate %s", cert)
    return cert, key


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _generate(host: str) -> tuple[bytes, bytes]:
    names = ["localhost"]
    hostname = socket.gethostname()
    if hostname and hostname != "localhost":
        names.append(hostname)
    addresses = {"127.0.0.1", "::1"}
    if host not in ("", "0.0.0.0", "::"):
        addresses.add(host)
    return new_self_signed(f"devyard on {hostname or host}", names + sorted(addresses), ca=True)


class ReloadingCertificate:
    """The server's SSL context. Every new connection's hello checks whether the certificate or
    key file changed (a stat of each); if so the pair is loaded again and that connection, and
    every later one, gets it: renewing a certificate is replacing its files, no restart. A pair
    that does not load (the key replaced before the certificate) is skipped, the previous one
    kept, and tried again at the next connection."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.context = load_pair(cert, key)  # what the listener is given; it stays the same object
        self.context.sni_callback = self._hello
        self._current = self.context
        self._failed_stamp: tuple[object, ...] | None = None

    def _stat(self) -> tuple[object, ...]:
        try:
            return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (self.cert.stat(), self.key.stat()))
        except OSError:
            return ()

    def _hello(self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
        stamp = self._stat()
        with self._lock:
            if stamp and stamp != self._stamp and stamp != self._failed_stamp:
                try:
                    self._current = load_pair(self.cert, self.key)
                    self._stamp = stamp
                    logger.info("TLS certificate %s loaded again (%s)", self.cert, certificate_fingerprint(self.cert))
                except (UpProblem, OSError, ValueError) as exc:
                    self._failed_stamp = stamp
                    logger.warning("TLS certificate not reloaded, keeping the previous one: %s", exc)
            current = self._current
        if current is not self.context:
            connection.context = current
