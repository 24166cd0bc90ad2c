"""Where a local agent's develop servers listen, and the address the API is told (multi-host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from compose.local import LocalLauncher
from compose.substrates import make_launcher
from control.settings import SettingsProblem, load_settings


def test_develop_servers_listen_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    launcher = make_launcher("local", load_settings(tmp_path))
    assert isinstance(launcher, LocalLauncher)
    assert launcher.bind_host == "127.0.0.1"
    assert launcher.endpoint("1:2", 4100) == "https://127.0.0.1:4100"


def test_an_agent_on_another_host_advertises_its_own_address(tmp_path: Path) -> None:
    launcher = make_launcher("local", load_settings(tmp_path, devserver_host="10.0.1.4"))
    assert isinstance(launcher, LocalLauncher)
    assert launcher.bind_host == "10.0.1.4"
    assert launcher.endpoint("1:2", 4100) == "https://10.0.1.4:4100"
    assert LocalLauncher("fd00::4").endpoint("1:2", 4100) == "https://[fd00::4]:4100"


def test_a_devserver_host_that_is_not_an_address_is_one_sentence(tmp_path: Path) -> None:
    for bad in ("http://10.0.1.4", "10.0.1.4:8000", "", "build host"):
        with pytest.raises(SettingsProblem, match=r"devserver_host.*not an IP address or host name"):
            load_settings(tmp_path, devserver_host=bad)
    assert load_settings(tmp_path, devserver_host="build-1.internal").devserver_host == "build-1.internal"
