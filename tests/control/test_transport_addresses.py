"""The standard-library transport and a name with several addresses (API replicas in DNS)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from control import transport


@pytest.fixture
def two_addresses(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, list[Any]]]:
    """``api.example`` resolving to a refusing address, then a listening one; the addresses
    connected to are recorded."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        live = listener.getsockname()
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()
        answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", dead), (socket.AF_INET, socket.SOCK_STREAM, 6, "", live)]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *_args: list(answers))
        monkeypatch.setattr(transport, "_answered", {})
        tried: list[Any] = []
        connect = socket.socket.connect

        def recording(sock: socket.socket, address: Any) -> None:
            tried.append(address)
            connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", recording)
        yield dead, live, tried


def test_the_next_address_is_tried_and_the_one_that_answered_comes_first_next_time(
    two_addresses: tuple[Any, Any, list[Any]],
) -> None:
    dead, live, tried = two_addresses
    with transport._open("api.example", 8421, 1.0) as first:
        assert first.getpeername() == live
    assert tried == [dead, live]
    tried.clear()
    with transport._open("api.example", 8421, 1.0) as second:
        assert second.getpeername() == live
    assert tried == [live]  # a silent address would have cost its timeout only once


def test_no_address_answering_is_the_last_error(
    two_addresses: tuple[Any, Any, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead, _live, _tried = two_addresses
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_args: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", dead)])
    with pytest.raises(ConnectionRefusedError):
        transport._open("api.example", 8421, 1.0)
