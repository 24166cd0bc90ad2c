"""The git endpoints over HTTP, including a packfile round trip from another repository."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pygit2
import pytest

from tests.devserver.conftest import RunningServer
from tests.devserver.test_packindex import build_pack, history_repo

AUTHOR = {"author_name": "Ada", "author_email": "ada@example.com"}


@pytest.fixture
def ws(server: RunningServer) -> Path:
    """The workspace, emptied before each test."""
    for child in server.workspace.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return server.workspace


def commit(client: httpx.Client, message: str, **options: object) -> str:
    response = client.post("/git/commit", json={"message": message, **AUTHOR, **options})
    assert response.status_code == 200, response.text
    return str(response.json()["oid"])


def test_without_a_repository(client: httpx.Client, ws: Path) -> None:
    assert client.get("/git/status").json() == {
        "initialized": False,
        "branch": None,
        "head": None,
        "detached": False,
        "files": [],
    }
    for method, path in (("GET", "/git/log"), ("GET", "/git/refs"), ("POST", "/git/commit")):
        response = client.request(method, path, json={"message": "m"} if method == "POST" else None)
        assert response.status_code == 409 and response.json()["error"]["code"] == "not_a_repository"


def test_init_commit_status_log_diff(client: httpx.Client, ws: Path) -> None:
    first = client.post("/git/init", json={"branch": "trunk"})
    assert first.json()["created"] is True and first.json()["branch"] == "trunk"
    assert client.post("/git/init", json={"branch": "trunk"}).json()["created"] is False
    (ws / "a.txt").write_text("one\n")
    (ws / "b.txt").write_text("bee\n")
    status = client.get("/git/status").json()
    assert status["initialized"] and status["head"] is None and status["branch"] == "trunk"
    assert {(f["path"], f["status"], f["staged"]) for f in status["files"]} == {
        ("a.txt", "untracked", False),
        ("b.txt", "untracked", False),
    }
    assert client.post("/git/commit", json={"message": "empty"}).status_code == 409
    first_oid = commit(client, "Add a\n\nWith a body.", paths=["a.txt"])

    (ws / "a.txt").write_text("one\ntwo\n")
    status = client.get("/git/status").json()
    assert status["head"] == first_oid
    assert {(f["path"], f["status"], f["staged"]) for f in status["files"]} == {
        ("a.txt", "modified", False),
        ("b.txt", "untracked", False),
    }
    diff = client.get("/git/diff").json()
    assert diff["files_changed"] == 1 and diff["insertions"] == 1 and diff["deletions"] == 0
    assert "+two" in diff["patch"]
    assert client.get("/git/diff", params={"cached": "true"}).json()["files_changed"] == 0

    second_oid = commit(client, "Change a", all=True)
    log = client.get("/git/log", params={"limit": 10}).json()["commits"]
    assert [c["oid"] for c in log] == [second_oid, first_oid]
    assert log[1]["summary"] == "Add a" and log[1]["message"].startswith("Add a\n\nWith a body.")
    assert log[0]["author"] == "Ada" and log[0]["email"] == "ada@example.com" and log[0]["time"].endswith("Z")
    assert len(client.get("/git/log", params={"limit": 1}).json()["commits"]) == 1
    assert client.get("/git/log", params={"ref": "no-such-branch"}).status_code == 404
    assert client.get("/git/log", params={"limit": 0}).status_code == 400


def test_checkout_branches_and_local_changes(client: httpx.Client, ws: Path) -> None:
    client.post("/git/init", json={"branch": "main"})
    (ws / "f.txt").write_text("main\n")
    main_oid = commit(client, "on main", paths=["f.txt"])
    created = client.post("/git/checkout", json={"ref": "feature", "create": True})
    assert created.status_code == 200 and created.json()["branch"] == "feature"
    (ws / "f.txt").write_text("feature\n")
    commit(client, "on feature", all=True)

    (ws / "f.txt").write_text("uncommitted\n")
    refused = client.post("/git/checkout", json={"ref": "main"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "local_changes"
    assert (ws / "f.txt").read_text() == "uncommitted\n"
    forced = client.post("/git/checkout", json={"ref": "main", "force": True})
    assert forced.status_code == 200 and forced.json()["branch"] == "main"
    assert (ws / "f.txt").read_text() == "main\n"

    detached = client.post("/git/checkout", json={"ref": main_oid}).json()
    assert detached["detached"] is True and detached["head"] == main_oid
    assert client.post("/git/checkout", json={"ref": "nope"}).status_code == 404
    assert client.post("/git/checkout", json={"ref": "main", "create": True}).status_code == 409

    refs = client.get("/git/refs").json()
    assert set(refs["refs"]) == {"refs/heads/main", "refs/heads/feature"}
    assert refs["head"] == main_oid


def test_pack_round_trip_makes_the_workspace_match(client: httpx.Client, ws: Path, tmp_path: Path) -> None:
    source = history_repo(tmp_path / "source", commits=10)
    head = str(source.head.target)
    pack = build_pack(source, tmp_path / "pack")
    client.post("/git/init", json={"branch": "main"})

    missing = client.post("/git/has", json={"oids": [head]}).json()["missing"]
    assert missing == [head]
    refused = client.post("/git/ref", json={"name": "refs/heads/main", "target": head})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "missing_object"

    received = client.post("/git/objects", content=pack.read_bytes())
    assert received.status_code == 200, received.text
    assert received.json()["objects"] == len(list(source.odb))
    assert client.post("/git/has", json={"oids": [head]}).json()["missing"] == []

    moved = client.post(
        "/git/ref", json={"name": "refs/heads/main", "target": head, "set_head": True, "checkout": "force"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["head"] == head and moved.json()["branch"] == "main"
    for name in ("big.txt", "small0.txt", "small9.txt"):
        assert (ws / name).read_bytes() == (tmp_path / "source" / name).read_bytes()
    status = client.get("/git/status").json()
    assert status["files"] == [] and status["head"] == head
    repo = pygit2.Repository(str(ws))
    assert len(list(repo.walk(repo.head.target))) == 10

    # The same pack again is harmless.
    assert client.post("/git/objects", content=pack.read_bytes()).status_code == 200


def test_bad_git_input(client: httpx.Client, ws: Path) -> None:
    client.post("/git/init", json={})
    assert client.post("/git/objects", content=b"not a pack at all, sorry").json()["error"]["code"] == "bad_pack"
    assert not list((ws / ".git" / "objects" / "pack").glob("tmp_*"))
    assert client.post("/git/has", json={"oids": ["xyz"]}).status_code == 400
    assert client.post("/git/ref", json={"name": "main", "target": "0" * 40}).status_code == 400
    bad_mode = {"name": "refs/heads/x", "target": "0" * 40, "checkout": "sometimes"}
    assert client.post("/git/ref", json=bad_mode).status_code == 400
    assert client.post("/git/init", json={"branch": "bad..name"}).status_code == 400
    assert client.post("/git/commit", json={"message": "m", "paths": ["../x"]}).status_code == 400


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/git/checkout", {"ref": "--output=/tmp/x", "create": True}),
        ("/git/checkout", {"ref": "-b", "create": True}),
        ("/git/checkout", {"ref": "--output=/tmp/x"}),
        ("/git/ref", {"name": "refs/heads/x", "target": "--all"}),
    ],
)
def test_refs_that_look_like_options_are_refused(
    client: httpx.Client, ws: Path, route: str, body: dict[str, object]
) -> None:
    client.post("/git/init", json={})
    (ws / "a.txt").write_text("a\n")
    commit(client, "first", paths=["a.txt"])
    response = client.post(route, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_ref_name"
    assert client.get("/git/log", params={"ref": "--all"}).json()["error"]["code"] == "bad_ref_name"
    assert "-" not in client.get("/git/refs").text


@pytest.mark.parametrize(("piece", "big"), [(7, 0), (19, 0), (20, 0), (21, 0), (65_536, 3 * 1024 * 1024 + 5)])
def test_a_pack_arriving_in_any_pieces_is_indexed(
    client: httpx.Client, ws: Path, tmp_path: Path, piece: int, big: int
) -> None:
    # The server hashes the pack as it arrives, keeping back what may be the 20-byte checksum:
    # pieces smaller than, as long as and longer than that, and a pack over several of its
    # 1 MiB writes, all work.
    source = pygit2.init_repository(tmp_path / "source", initial_head="main")
    (tmp_path / "source" / "big.bin").write_bytes(os.urandom(big))  # random: does not compress
    (tmp_path / "source" / "small.txt").write_text("small\n")
    source.index.add_all()
    source.index.write()
    signature = pygit2.Signature("Test", "test@example.com")
    source.create_commit("HEAD", signature, signature, "one", source.index.write_tree(), [])
    data = build_pack(source, tmp_path / "pack").read_bytes()
    client.post("/git/init", json={})

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), piece):
            yield data[start : start + piece]

    received = client.post("/git/objects", content=pieces())
    assert received.status_code == 200, received.text
    assert received.json()["objects"] == len(list(source.odb))
    broken = bytearray(data)
    broken[-1] ^= 1  # the checksum itself
    refused = client.post("/git/objects", content=bytes(broken))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_pack"
    assert not list((ws / ".git" / "objects" / "pack").glob("tmp_*"))


FLUSH_POINT = 1024 * 1024 + 20  # devserver.gitapi.PACK_WRITE + CHECKSUM_SIZE


@pytest.mark.parametrize(
    "size", [0, 1, 19, 20, 21, 45, *(FLUSH_POINT + delta for delta in (-21, -20, -19, -1, 0, 1, 19, 20, 21, 40))]
)
def test_a_received_pack_is_hashed_without_its_last_20_bytes(tmp_path: Path, size: int) -> None:
    # Uploads of every length around the server's flush point, cut there and a few bytes on:
    # the digest covers exactly everything but the last 20 bytes, and the file holds it all.
    import asyncio
    import hashlib

    from starlette.requests import Request

    from devserver.gitapi import CHECKSUM_SIZE, PACK_WRITE, _receive_pack

    assert PACK_WRITE + CHECKSUM_SIZE == FLUSH_POINT
    data = os.urandom(size)
    cut = min(size, FLUSH_POINT)
    pieces = [data[:cut], data[cut : cut + 7], data[cut + 7 :]]
    messages = [{"type": "http.request", "body": piece, "more_body": True} for piece in pieces]
    messages.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def run() -> bytes:
        request = Request({"type": "http", "method": "POST", "headers": []}, receive)  # type: ignore[arg-type]
        return await _receive_pack(request, tmp_path / "in.pack")

    digest = asyncio.run(run())
    assert digest == hashlib.sha1(data[: max(0, size - CHECKSUM_SIZE)]).digest()
    assert (tmp_path / "in.pack").read_bytes() == data
