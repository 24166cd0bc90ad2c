"""Connection failures read as plain words, never as Python exception names."""

from __future__ import annotations

import socket

import httpx
import pytest

from control.client import ConnectionFailed, ControlClient


def test_an_api_that_accepts_but_never_answers_is_said_in_words() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with ControlClient(url, "dy_x", timeout=0.5) as client, pytest.raises(ConnectionFailed) as failed:
            client.health()
    message = str(failed.value)
    assert message.startswith(f"Cannot reach the devyard API at {url}: it did not answer in time;"), message
    assert "Timeout" not in message and "Error" not in message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com", "the URL is not an http:// or https:// address; check the URL"),
        ("https://no-such-host.invalid", "the host name is unknown; check the URL and your network."),
    ],
)
def test_bad_urls_are_said_in_words(url: str, words: str) -> None:
    with ControlClient(url, "dy_x", timeout=5) as client, pytest.raises(ConnectionFailed) as failed:
        client.health()
    assert words in str(failed.value)
    assert "UnsupportedProtocol" not in str(failed.value) and "ConnectError" not in str(failed.value)
    assert isinstance(failed.value.__cause__, httpx.TransportError)
