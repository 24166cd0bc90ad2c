"""A real SMTP server for tests: aiosmtpd on a free loopback port, in a thread with its own loop.

With ``starttls`` it offers STARTTLS under a self-signed certificate for 127.0.0.1 (the client
trusts it through ``ca_file``) and, with ``login``, requires AUTH LOGIN/PLAIN after TLS with that
user and password, as a real submission server (port 587) does.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    tls: bool
    authenticated: bool


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: Path | None
    received: list[Received] = field(default_factory=list)

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Stack settings that send through this server."""
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_ca_file": self.ca_file, **extra}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devyard test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        self.server.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message_from_bytes(envelope.original_content or envelope.content),
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(folder: Path, starttls: bool = False, login: tuple[str, str] | None = None) -> Iterator[SmtpServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    tls_context = None
    ca_file = None
    if starttls:
        ca_file, key_file = self_signed(folder)
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(ca_file, key_file)
    server = SmtpServer("127.0.0.1", sock.getsockname()[1], ca_file)
    handler = _Handler(server)

    def authenticate(_s: Any, _session: Any, _env: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and login is not None
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == login
        )
        return AuthResult(success=ok)

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="smtp.test",
            tls_context=tls_context,
            require_starttls=starttls,
            authenticator=authenticate if login else None,
            auth_required=login is not None,
            auth_require_tls=True,
            loop=loop,
        )

    def serve() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(loop.create_server(factory, sock=sock))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="test-smtp", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield server
    finally:

        async def close() -> None:
            holder["server"].close()
            await holder["server"].wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
