"""Certificates for TLS tests, made with ``cryptography``: a CA and server certificates it signs,
or self-signed ones."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from control.trust import fingerprint_of


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def write(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path


def authority(name: str = "test CA") -> Authority:
    key = _key()
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def server_pair(
    folder: Path,
    signer: Authority | None = None,
    name: str = "server",
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
) -> tuple[Path, Path, str]:
    """A certificate for ``hosts`` (names and addresses; signed by ``signer``, else self-signed)
    and its key, written as ``name.pem`` / ``name.key`` under ``folder`` by rename (as a renewal
    does); returns the paths and the certificate's fingerprint."""
    key = _key()
    now = datetime.now(UTC)
    names = [_alt_name(host) for host in hosts]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("devyard test server"))
        .issuer_name(signer.certificate.subject if signer else _name("devyard test server"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    certificate = builder.sign(signer.key if signer else key, hashes.SHA256())
    der = certificate.public_bytes(serialization.Encoding.DER)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    for path, data in ((key_path, _pem_key(key)), (cert_path, certificate.public_bytes(serialization.Encoding.PEM))):
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return cert_path, key_path, fingerprint_of(der)


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
