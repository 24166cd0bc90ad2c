"""Self-signed certificates: the API's when it serves off loopback without one, and each develop
server's (made at every start). Either is trusted by its SHA-256 fingerprint (or, for the API,
used as its own CA file), never through a public CA."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

VALID_DAYS = 3650


def self_signed(common_name: str, names: list[str] = [], ca: bool = False) -> tuple[bytes, bytes]:  # noqa: B006
    """A new EC P-256 key and a certificate for it, signed by itself: ``(key PEM, cert PEM)``.

    ``names`` become subject alternative names (IP addresses as such, the rest as DNS names);
    ``ca`` marks it its own CA, so a client can also give it as ``--ca-file``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
    )
    if names:
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    certificate = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)
