"""What a client trusts and when it may speak plain HTTP (control.trust), decided without a network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from control import profiles
from control.client import ConnectionFailed, ControlClient
from control.transport import Connection
from control.trust import Trust, TrustProblem, check_plain_http, is_loopback, parse_fingerprint

HEX = "SHA256:" + ":".join(f"{n:02X}" for n in range(32))
YARD = str(Path(sys.executable).parent / "yard")


@pytest.mark.parametrize(
    "typed",
    [
        HEX,
        HEX.lower(),
        HEX.removeprefix("SHA256:"),
        HEX.replace(":", "").replace("SHA256", "SHA256:"),
        "sha256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  # ssh's base64 form of the same bytes
    ],
)
def test_fingerprints_are_read_in_the_forms_people_type(typed: str) -> None:
    assert parse_fingerprint(typed) == HEX


@pytest.mark.parametrize("typed", ["", "SHA256:abc", "SHA256:" + "G" * 64, HEX + ":00"])
def test_a_malformed_fingerprint_is_one_sentence(typed: str) -> None:
    with pytest.raises(TrustProblem, match="is not a SHA-256 fingerprint"):
        parse_fingerprint(typed)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("10.0.0.5", False),
        ("0.0.0.0", False),
        ("devyard.example.com", False),
        ("::", False),
    ],
)
def test_loopback_is_decided_by_address_not_by_resolving(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_token_never_goes_over_plain_http_to_another_machine_unless_allowed() -> None:
    check_plain_http("http://127.0.0.1:8421", "dy_x", None)
    check_plain_http("https://10.0.0.5:8421", "dy_x", None)
    check_plain_http("http://10.0.0.5:8421", None, None)  # no token, nothing to protect
    check_plain_http("http://10.0.0.5:8421", "dy_x", Trust(insecure_http=True))
    with pytest.raises(TrustProblem, match=r"Refusing to send a token over plain HTTP to 10\.0\.0\.5"):
        check_plain_http("http://10.0.0.5:8421", "dy_x", Trust())


def test_every_client_refuses_before_connecting() -> None:
    # 192.0.2.0/24 is reserved for documentation: nothing answers there, so a refusal that came
    # after trying to connect would read "Cannot reach", not this.
    url = "http://192.0.2.1:8421"
    with ControlClient(url, "dy_x") as client, pytest.raises(ConnectionFailed, match="Refusing to send a token"):
        client.health()
    with pytest.raises(TrustProblem):
        Connection(url, "dy_x")
    Connection(url, "dy_x", trust=Trust(insecure_http=True)).close()


def test_login_refuses_plain_http_to_another_machine(tmp_path: Path) -> None:
    done = subprocess.run(
        [YARD, "login", "http://192.0.2.1:8421", "--token", "dy_x"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "Refusing to send a token over plain HTTP to 192.0.2.1" in done.stderr
    assert not profiles.config_path().exists()


def test_profiles_keep_their_trust() -> None:
    pinned = profiles.Profile("a", "https://h:1", "dy_a", Trust(fingerprint=HEX))
    by_ca = profiles.Profile("b", "https://h:2", "dy_b", Trust(ca_file="/etc/ca.pem"))
    plain = profiles.Profile("c", "http://10.0.0.5:3", "dy_c", Trust(insecure_http=True))
    local = profiles.Profile("d", "https://127.0.0.1:4", "dy_d", Trust(pin_file="/data/tls/self-signed.pem"))
    for profile in (pinned, by_ca, plain, local):
        profiles.save_profile(profile)
    assert profiles.load_profiles()[1] == {"a": pinned, "b": by_ca, "c": plain, "d": local}


def test_the_environment_carries_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVYARD_URL", "https://h:1")
    monkeypatch.setenv("DEVYARD_TOKEN", "dy_x")
    monkeypatch.setenv("DEVYARD_FINGERPRINT", HEX.lower())
    assert profiles.resolve().trust == Trust(fingerprint=HEX)
    monkeypatch.setenv("DEVYARD_FINGERPRINT", "nonsense")
    with pytest.raises(profiles.ProfileProblem, match="DEVYARD_FINGERPRINT"):
        profiles.resolve()


def test_a_worker_gets_a_ca_file_as_its_content(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    sent = Trust.from_json(Trust(ca_file=str(ca), insecure_http=True).to_json())
    assert sent == Trust(ca_pem=ca.read_text(), insecure_http=True)
    assert Trust.from_json(Trust(fingerprint=HEX).to_json()) == Trust(fingerprint=HEX)


def test_a_worker_that_cannot_read_the_servers_certificate_file_falls_back_to_its_fingerprint(tmp_path: Path) -> None:
    from tests.tlscerts import server_pair

    cert, _, fingerprint = server_pair(tmp_path)
    sent = Trust.from_json(Trust(pin_file=str(cert)).to_json())
    assert sent == Trust(pin_file=str(cert), fingerprint=fingerprint)
    from control.tlspin import _Pins

    assert _Pins(sent).expected() == fingerprint
    cert.rename(tmp_path / "elsewhere.pem")  # as in a container, where the agent's path does not exist
    assert _Pins(sent).expected() == fingerprint
