"""The status bar's sync state, read from what `yard sync` leaves behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from control.profiles import Profile
from tui.sync_status import _from_raw, local_status, sync_now, tree_root


def test_the_last_sync_of_a_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.state import state_home
    from sync.status import write_status

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    repo = tmp_path / "shop"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert tree_root(repo / "src") == repo.resolve()
    assert local_status(repo).state == "never"
    write_status(state_home() / "k1", root=str(repo.resolve()), project="shop", conflicts=[], refused=[])
    status = local_status(repo / "src")  # from a subdirectory too
    assert status.state == "synced" and status.last_sync_at is not None and status.project == "shop"
    write_status(state_home() / "k1", root=str(repo.resolve()), project="shop", conflicts=[{"path": "a"}])
    assert local_status(repo).state == "conflicts" and local_status(repo).conflicts == 1


def test_what_the_summary_fields_mean() -> None:
    assert _from_raw({"last_sync_at": "2026-11-22T09:00:00+00:00"}).state == "synced"
    assert _from_raw({"last_sync_at": "2026-11-22T09:00:00", "pending_changes": 3}).state == "pending"
    assert _from_raw({"refused": ["x"]}).state == "error"
    assert _from_raw({"syncing": True}).state == "syncing"
    assert _from_raw({}).state == "never"


def test_sync_now_says_why_it_failed_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(sync_now(tmp_path, "shop", Profile("t", "http://127.0.0.1:9", "dy_x")))
    assert "Traceback" not in str(caught.value) and str(caught.value)
