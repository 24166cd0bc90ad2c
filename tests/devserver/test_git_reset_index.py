"""``POST /git/ref`` after a file sync: ``reset_index`` (git reset --mixed) and detaching HEAD."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

import httpx
import pygit2
import pytest

from tests.devserver.conftest import RunningServer
from tests.devserver.test_packindex import build_pack, history_repo


@pytest.fixture
def ws(server: RunningServer) -> Path:
    """The workspace, emptied before each test."""
    for child in server.workspace.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return server.workspace


def index_stat(ws: Path) -> dict[str, tuple[int, int]]:
    """``{path: (mtime seconds, size)}`` straight from ``.git/index`` (version 2, as libgit2 writes it)."""
    data = (ws / ".git" / "index").read_bytes()
    assert data[:4] == b"DIRC" and struct.unpack(">I", data[4:8])[0] == 2
    count = struct.unpack(">I", data[8:12])[0]
    entries, pos = {}, 12
    for _ in range(count):
        mtime = struct.unpack(">I", data[pos + 8 : pos + 12])[0]
        size = struct.unpack(">I", data[pos + 36 : pos + 40])[0]
        end = data.index(b"\x00", pos + 62)
        entries[data[pos + 62 : end].decode()] = (mtime, size)
        pos += (62 + end - (pos + 62) + 8) // 8 * 8
    return entries


def status_of(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/git/status")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_reset_index_leaves_only_the_working_tree_changes(client: httpx.Client, ws: Path, tmp_path: Path) -> None:
    source = history_repo(tmp_path / "source", commits=4)
    head = str(source.head.target)
    client.post("/git/init", json={"branch": "main"})
    assert client.post("/git/objects", content=build_pack(source, tmp_path / "pack").read_bytes()).status_code == 200
    # What a file sync leaves behind: the tree of HEAD, one file edited and one new file.
    for name in ("big.txt", "small0.txt", "small1.txt", "small2.txt", "small3.txt"):
        shutil.copy(tmp_path / "source" / name, ws / name)
    (ws / "small1.txt").write_text("edited locally\n")
    (ws / "notes.md").write_text("new\n")

    without = client.post("/git/ref", json={"name": "refs/heads/main", "target": head, "set_head": True})
    assert without.status_code == 200
    before = {(f["path"], f["status"], f["staged"]) for f in status_of(client)["files"]}
    assert ("big.txt", "deleted", True) in before  # the empty index says every file was removed

    moved = client.post(
        "/git/ref", json={"name": "refs/heads/main", "target": head, "set_head": True, "reset_index": True}
    )
    assert moved.status_code == 200, moved.text
    status = status_of(client)
    assert (status["branch"], status["head"]) == ("main", head)
    assert {(f["path"], f["status"], f["staged"]) for f in status["files"]} == {
        ("small1.txt", "modified", False),
        ("notes.md", "untracked", False),
    }
    # Files whose content already matched got real stat data, so status need not hash them again;
    # the edited one keeps the tree's entry (no stat data), which can never be mistaken for clean.
    stat = index_stat(ws)
    assert stat["big.txt"] == (int((ws / "big.txt").stat().st_mtime), (ws / "big.txt").stat().st_size)
    assert stat["small1.txt"] == (0, 0)
    assert (ws / "small1.txt").read_text() == "edited locally\n"  # the working tree is never touched


def test_detached_head_and_a_second_reset_keeps_unchanged_entries(
    client: httpx.Client, ws: Path, tmp_path: Path
) -> None:
    source = history_repo(tmp_path / "source", commits=3)
    head = source.head.target
    parent = source[head].parents[0].id  # type: ignore[attr-defined]
    client.post("/git/init", json={"branch": "main"})
    assert client.post("/git/objects", content=build_pack(source, tmp_path / "pack").read_bytes()).status_code == 200
    for name in ("big.txt", "small0.txt", "small1.txt", "small2.txt"):
        shutil.copy(tmp_path / "source" / name, ws / name)
    body = {"name": "refs/heads/main", "target": str(head), "set_head": True, "reset_index": True}
    assert client.post("/git/ref", json=body).status_code == 200
    kept = index_stat(ws)["small0.txt"]
    assert kept != (0, 0)

    detached = client.post("/git/ref", json={"name": "HEAD", "target": str(parent), "reset_index": True})
    assert detached.status_code == 200, detached.text
    assert detached.json()["detached"] is True and detached.json()["head"] == str(parent)
    status = status_of(client)
    # At the parent, small2.txt did not exist yet and big.txt was different.
    assert {(f["path"], f["status"]) for f in status["files"]} == {
        ("small2.txt", "untracked"),
        ("big.txt", "modified"),
    }
    assert index_stat(ws)["small0.txt"] == kept  # unchanged between the commits: stat data carried over
    repo = pygit2.Repository(str(ws))
    assert repo.head_is_detached and repo.references["refs/heads/main"].target == head


def test_reset_index_refuses_what_it_cannot_do(client: httpx.Client, ws: Path, tmp_path: Path) -> None:
    source = history_repo(tmp_path / "source", commits=1)
    client.post("/git/init", json={"branch": "main"})
    assert client.post("/git/objects", content=build_pack(source, tmp_path / "pack").read_bytes()).status_code == 200
    tree = str(source[source.head.target].tree_id)  # type: ignore[attr-defined]
    not_commit = client.post("/git/ref", json={"name": "HEAD", "target": tree})
    assert not_commit.status_code == 409 and not_commit.json()["error"]["code"] == "not_a_commit"
    missing = client.post("/git/ref", json={"name": "HEAD", "target": "1" * 40, "reset_index": True})
    assert missing.status_code == 409 and missing.json()["error"]["code"] == "missing_object"
    assert client.post("/git/ref", json={"name": "ORIG_HEAD", "target": tree}).status_code == 400
    bad_flag = {"name": "HEAD", "target": str(source.head.target), "reset_index": "yes"}
    assert client.post("/git/ref", json=bad_flag).status_code == 400


def test_blob_id_is_what_git_computes(tmp_path: Path) -> None:
    from devserver.gitops import HASH_CHUNK, blob_id

    samples = {
        "empty": b"",
        "text": b"hello\n",
        "nul": b"a\x00b" * 1000,
        "big": bytes(range(256)) * (HASH_CHUNK // 256 + 7),  # more than one read
    }
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
        assert blob_id(str(tmp_path / name), len(data)) == str(pygit2.hashfile(str(tmp_path / name))), name
    # A file that is not the size its stat said (it changed meanwhile) has no id to compare.
    assert blob_id(str(tmp_path / "text"), 5) is None
    assert blob_id(str(tmp_path / "text"), 7) is None
    (tmp_path / "link").symlink_to(tmp_path / "text")
    with pytest.raises(OSError):  # never read through a link
        blob_id(str(tmp_path / "link"), 6)
