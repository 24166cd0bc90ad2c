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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from control.trust import fingerprint_of

CERT_FILE = "tls.pem"
KEY_FILE = "tls.key"
VALID_DAYS = 3650


def make_certificate(folder: Path) -> tuple[Path, Path, str]:
    """A fresh key and self-signed certificate in ``folder``: (cert, key, fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devyard develop server")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    _write(key_path, key_pem, 0o600)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o600)
    return cert_path, key_path, fingerprint_of(certificate.public_bytes(serialization.Encoding.DER))


def _write(path: Path, data: bytes, mode: int) -> None:
    # Created with its mode (never briefly readable by others), then renamed into place.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(temp, path)
