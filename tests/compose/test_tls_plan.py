"""Which TLS a server serves (compose.stack.tls.plan) and the self-signed certificate it makes."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest

from compose.stack.problem import UpProblem
from compose.stack.tls import certificate_fingerprint, plan
from control.settings import load_settings
from tests.tlscerts import server_pair


def test_loopback_serves_plain_http(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        tls = plan(load_settings(tmp_path, host=host))
        assert tls.cert is None and tls.scheme == "http"
    assert not (tmp_path / "tls").exists()


def test_another_address_gets_a_self_signed_certificate_made_once(tmp_path: Path) -> None:
    first = plan(load_settings(tmp_path, host="0.0.0.0"))
    assert first.self_signed and first.scheme == "https" and first.cert and first.key
    assert stat.S_IMODE(first.key.stat().st_mode) == 0o600
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(first.cert, first.key)  # a working pair
    again = plan(load_settings(tmp_path, host="10.1.2.3"))
    assert (again.cert, again.key) == (first.cert, first.key)
    assert certificate_fingerprint(first.cert).startswith("SHA256:")
    # The same certificate across restarts: a client's pin stays valid.
    assert certificate_fingerprint(again.cert) == certificate_fingerprint(first.cert)  # type: ignore[arg-type]


def test_insecure_http_is_asked_for_explicitly(tmp_path: Path) -> None:
    tls = plan(load_settings(tmp_path, host="0.0.0.0", insecure_http=True))
    assert tls.cert is None and not (tmp_path / "tls").exists()


def test_given_files_are_used_and_checked(tmp_path: Path) -> None:
    cert, key, _ = server_pair(tmp_path)
    tls = plan(load_settings(tmp_path, host="0.0.0.0", tls_cert=cert, tls_key=key))
    assert (tls.cert, tls.key, tls.self_signed) == (cert, key, False)
    with pytest.raises(UpProblem, match="Pass both --tls-cert and --tls-key"):
        plan(load_settings(tmp_path, tls_cert=cert))
    with pytest.raises(UpProblem, match="does not exist"):
        plan(load_settings(tmp_path, tls_cert=tmp_path / "missing.pem", tls_key=key))
    other_cert, _, _ = server_pair(tmp_path, name="other")
    with pytest.raises(UpProblem, match="must be a PEM certificate and its private key"):
        plan(load_settings(tmp_path, tls_cert=other_cert, tls_key=key))
