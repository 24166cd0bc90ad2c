"""The develop server's own certificate: made at every start, pinned by the control plane.

Every develop server serves HTTPS, on loopback too (one code path; the handshake costs the
gateway one round trip per new connection, which it keeps open). The key is made here, written
0600 next to the ready file (the agent's private folder for this server), and never leaves the
host; the certificate's SHA-256 fingerprint goes into the ready file, the agent reports it with
the endpoint, and the gateway accepts exactly that certificate (control.tlspin). No CA and no
host name: the pin is the trust, so an impostor on the port (or a replaced certificate) is
refused before the per-server secret is sent.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from control.selfsigned import self_signed
from control.trust import fingerprint_of

CERT_FILE = "tls.pem"
KEY_FILE = "tls.key"


def make_certificate(folder: Path) -> tuple[Path, Path, str]:
    """A fresh key and self-signed certificate in ``folder``: (cert, key, fingerprint)."""
    key_pem, cert_pem = self_signed("devyard develop server")
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o600)
    return cert_path, key_path, fingerprint_of(ssl.PEM_cert_to_DER_cert(cert_pem.decode()))


def _write(path: Path, data: bytes, mode: int) -> None:
    # Created with its mode (never briefly readable by others), then renamed into place.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(temp, path)
