"""Manifest, batch upload and file reads over HTTP, including the path confinement matrix."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control.wire.batch import MEDIA_TYPE, Delete, Op, PutDir, PutFile, PutSymlink, encode_entry, encode_header
from tests.devserver.conftest import RunningServer, run
from tests.waiting import wait_until

MTIME = 1_600_000_000_123_456_789


def post_batch(client: httpx.Client, content: bytes | Iterator[bytes]) -> httpx.Response:
    return client.post("/files/batch", content=content, headers={"content-type": MEDIA_TYPE})


def put(path: str, content: bytes, mode: int = 0o644, sha: bool = True) -> bytes:
    digest = hashlib.sha256(content).hexdigest() if sha else None
    return encode_entry(PutFile(path, mode, MTIME, len(content), digest), content)


def entry(op: Op) -> bytes:
    return encode_entry(op)


def manifest(client: httpx.Client) -> dict[str, dict[str, object]]:
    response = client.get("/files/manifest")
    assert response.status_code == 200
    return {item["path"]: item for item in response.json()["entries"]}


def temp_files(root: Path) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if name.startswith(".devyard-tmp-")]


def test_batch_applies_puts_and_deletes(client: httpx.Client, server: RunningServer) -> None:
    ws = server.workspace
    body = (
        entry(PutDir("pkg", 0o750))
        + put("pkg/mod.py", b"x = 1\n", 0o640)
        + put("tool.sh", b"#!/bin/sh\necho hi\n", 0o755)
        + entry(PutSymlink("pkg/alias.py", "mod.py"))
        + put("deep/new/dirs/file.txt", b"auto parents\n", sha=False)
        + put("empty.txt", b"")
    )
    response = post_batch(client, body)
    assert response.status_code == 200, response.text
    expected_bytes = len(b"x = 1\n") + len(b"#!/bin/sh\necho hi\n") + len(b"auto parents\n")
    assert response.json() == {"written": 4, "deleted": 0, "bytes": expected_bytes, "applied": 6}
    info = (ws / "pkg" / "mod.py").stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_mtime_ns == MTIME
    assert stat.S_IMODE((ws / "pkg").stat().st_mode) == 0o750
    assert os.readlink(ws / "pkg" / "alias.py") == "mod.py"
    listed = manifest(client)
    assert listed["tool.sh"]["mode"] == 0o755
    assert listed["pkg/mod.py"]["sha256"] == hashlib.sha256(b"x = 1\n").hexdigest()
    assert listed["pkg/mod.py"]["mtime_ns"] == MTIME
    assert listed["pkg/alias.py"]["kind"] == "symlink" and listed["pkg/alias.py"]["target"] == "mod.py"
    assert listed["empty.txt"]["size"] == 0

    deletes = entry(Delete("pkg")) + entry(Delete("tool.sh")) + entry(Delete("never/existed"))
    response = post_batch(client, deletes)
    assert response.json() == {"written": 0, "deleted": 3, "bytes": 0, "applied": 3}
    assert not (ws / "pkg").exists() and not (ws / "tool.sh").exists()


def test_manifest_sees_changes_and_leaves_out_git(client: httpx.Client, server: RunningServer) -> None:
    (server.workspace / ".git").mkdir(exist_ok=True)
    (server.workspace / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert post_batch(client, put("m.txt", b"one\n")).status_code == 200
    first = manifest(client)
    assert not any(path == ".git" or path.startswith(".git/") for path in first)
    assert post_batch(client, put("m.txt", b"two\n")).status_code == 200
    assert manifest(client)["m.txt"]["sha256"] == hashlib.sha256(b"two\n").hexdigest() != first["m.txt"]["sha256"]


def test_kinds_replace_each_other(client: httpx.Client, server: RunningServer) -> None:
    ws = server.workspace
    assert post_batch(client, put("swap/inner.txt", b"in a dir\n")).status_code == 200
    assert post_batch(client, put("swap", b"now a file\n")).status_code == 200
    assert (ws / "swap").read_bytes() == b"now a file\n"
    assert post_batch(client, entry(PutDir("swap", 0o755))).status_code == 200
    assert (ws / "swap").is_dir()


def test_a_large_file_streams_to_disk(client: httpx.Client, server: RunningServer) -> None:
    size, block = 50 * 1024 * 1024, bytes(range(256)) * 4096
    digest = hashlib.sha256()
    for _ in range(size // len(block)):
        digest.update(block)

    def body() -> Iterator[bytes]:
        yield encode_header(PutFile("big.bin", 0o600, MTIME, size, digest.hexdigest()))
        for _ in range(size // len(block)):
            yield block

    peak_before = _peak_rss_kb(server.process.pid)
    response = post_batch(client, body())
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == size
    assert (server.workspace / "big.bin").stat().st_size == size
    # The server must not have held the upload in memory.
    assert _peak_rss_kb(server.process.pid) - peak_before < 30 * 1024
    assert manifest(client)["big.bin"]["sha256"] == digest.hexdigest()
    (server.workspace / "big.bin").unlink()


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_truncated_body_is_refused_and_leaves_no_temp_file(client: httpx.Client, server: RunningServer) -> None:
    body = put("before.txt", b"kept\n") + encode_header(PutFile("cut.txt", 0o644, MTIME, 1000)) + b"only ten.."
    response = post_batch(client, body)
    assert response.status_code == 400
    assert response.json()["error"] | {"message": ""} == {
        "code": "truncated",
        "message": "",
        "path": "cut.txt",
        "applied": 1,
    }
    assert (server.workspace / "before.txt").read_bytes() == b"kept\n"
    assert not (server.workspace / "cut.txt").exists()
    assert temp_files(server.workspace) == []


def test_sha_mismatch_is_refused_and_keeps_the_old_file(client: httpx.Client, server: RunningServer) -> None:
    assert post_batch(client, put("sha.txt", b"original\n")).status_code == 200
    wrong = encode_entry(PutFile("sha.txt", 0o644, MTIME, 4, hashlib.sha256(b"else").hexdigest()), b"evil")
    response = post_batch(client, put("first.txt", b"1\n") + wrong + put("after.txt", b"never\n"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "sha256_mismatch" and response.json()["error"]["applied"] == 1
    assert response.json()["error"]["path"] == "sha.txt"
    assert (server.workspace / "sha.txt").read_bytes() == b"original\n"
    assert not (server.workspace / "after.txt").exists()
    assert temp_files(server.workspace) == []


def test_refusal_mid_stream_still_reaches_the_client(client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield put("../escape.txt", b"x")
        for _ in range(20):
            yield put("filler.bin", b"\0" * 512 * 1024)

    response = post_batch(client, body())
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_path"


def test_malformed_header_and_media_type(client: httpx.Client) -> None:
    response = post_batch(client, b"\x00\x00\x00\x05nope!")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_header"
    response = client.post("/files/batch", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 415


def test_read_streams_a_file_and_refuses_the_rest(client: httpx.Client, server: RunningServer) -> None:
    assert post_batch(client, put("r/data.bin", bytes(range(256)) * 10)).status_code == 200
    response = client.get("/files/read", params={"path": "r/data.bin"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == bytes(range(256)) * 10
    assert client.get("/files/read", params={"path": "r/missing"}).status_code == 404
    assert client.get("/files/read", params={"path": "r"}).status_code == 400
    assert client.get("/files/read", params={"path": ""}).status_code == 400
    os.mkfifo(server.workspace / "r" / "pipe")  # opening it must not wait for a writer
    fifo = client.get("/files/read", params={"path": "r/pipe"}, timeout=5)
    assert fifo.status_code == 400 and fifo.json()["error"]["code"] == "not_a_file"


@pytest.mark.parametrize(
    "path", ["n" * 5000, "folder/" + "n" * 300, "d" * 300 + "/file.txt"], ids=["5000", "file-300", "folder-300"]
)
def test_names_too_long_for_the_file_system_are_a_4xx(client: httpx.Client, path: str) -> None:
    read = client.get("/files/read", params={"path": path})
    assert read.status_code in (400, 404), read.text
    assert read.json()["error"]["code"] in ("name_too_long", "not_found")
    assert len(read.json()["error"]["message"]) < 600
    written = post_batch(client, put(path, b"x"))
    assert written.status_code == 400, written.text
    assert written.json()["error"]["code"] in ("name_too_long", "write_failed")


# ------------------------------------------------------------------ confinement


@pytest.fixture
def outside(server: RunningServer) -> Iterator[Path]:
    """A sentinel directory next to the workspace, plus symlinks pointing at it from inside."""
    sentinel = server.workspace.parent / "outside"
    sentinel.mkdir(exist_ok=True)
    (sentinel / "secret.txt").write_text("do not touch\n")
    (server.workspace / "escape").symlink_to(sentinel)
    (server.workspace / "escape_file").symlink_to(sentinel / "secret.txt")
    yield sentinel
    for name in ("escape", "escape_file"):
        (server.workspace / name).unlink(missing_ok=True)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes() if path.is_file() else b"", path.lstat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(put("../x", b"x"), id="dotdot"),
        pytest.param(put("a/../../x", b"x"), id="nested-dotdot"),
        pytest.param(put("/etc/passwd", b"x"), id="absolute"),
        pytest.param(put("a\x00b", b"x"), id="nul"),
        pytest.param(put("", b"x"), id="empty"),
        pytest.param(put("escape/new.txt", b"x"), id="new-file-through-symlinked-dir"),
        pytest.param(put("escape/secret.txt", b"overwritten"), id="overwrite-through-symlinked-dir"),
        pytest.param(entry(PutDir("escape/sub", 0o755)), id="dir-through-symlinked-dir"),
        pytest.param(entry(PutSymlink("escape/link", "/")), id="symlink-through-symlinked-dir"),
        pytest.param(entry(Delete("escape/secret.txt")), id="delete-through-symlinked-dir"),
        pytest.param(entry(Delete("../outside")), id="delete-dotdot"),
        pytest.param(put(".git/config", b"x"), id="write-into-git"),
        pytest.param(entry(Delete(".git")), id="delete-git"),
    ],
)
def test_batch_never_touches_anything_outside(client: httpx.Client, outside: Path, body: bytes) -> None:
    before = snapshot(outside)
    response = post_batch(client, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_path" and response.json()["error"]["applied"] == 0
    assert snapshot(outside) == before


def test_absolute_path_into_the_sentinel_is_refused(client: httpx.Client, outside: Path) -> None:
    before = snapshot(outside)
    assert post_batch(client, put(str(outside / "abs.txt"), b"x")).status_code == 400
    assert snapshot(outside) == before


def test_a_symlink_at_the_target_is_replaced_not_followed(
    client: httpx.Client, server: RunningServer, outside: Path
) -> None:
    before = snapshot(outside)
    assert post_batch(client, put("escape_file", b"a regular file now\n")).status_code == 200
    assert not (server.workspace / "escape_file").is_symlink()
    assert snapshot(outside) == before


@pytest.mark.parametrize("path", ["escape_file", "escape/secret.txt", "../outside/secret.txt", "/etc/passwd", "a\x00b"])
def test_reads_never_leave_the_workspace(client: httpx.Client, outside: Path, path: str) -> None:
    response = client.get("/files/read", params={"path": path})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_path"


@pytest.mark.parametrize("cwd", ["escape", "../", "/tmp"])
def test_exec_cwd_stays_inside(client: httpx.Client, outside: Path, cwd: str) -> None:
    response = client.post("/exec", json={"argv": ["pwd"], "cwd": cwd})
    assert response.status_code == 400


def test_exec_cwd_inside_works(client: httpx.Client, server: RunningServer) -> None:
    (server.workspace / "sub").mkdir(exist_ok=True)
    result = run(client, ["pwd"], cwd="sub")
    assert result.stdout.decode().strip() == str((server.workspace / "sub").resolve())


# ------------------------------------------------------------------ "unchanged" answers


def manifest_since(client: httpx.Client, token: str) -> dict[str, object]:
    response = client.get("/files/manifest", params={"since": token})
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def fresh_token(client: httpx.Client) -> str:
    response = client.get("/files/manifest")
    token = response.json()["token"]
    assert isinstance(token, str), "a workspace on a local file system gets manifest tokens"
    return token


def test_manifest_unchanged_until_a_write_through_the_server(client: httpx.Client) -> None:
    assert post_batch(client, put("tokens/a.txt", b"a\n")).status_code == 200
    token = fresh_token(client)
    assert manifest_since(client, token) == {"unchanged": True, "token": token}
    assert post_batch(client, put("tokens/b.txt", b"b\n")).status_code == 200
    changed = manifest_since(client, token)
    assert "unchanged" not in changed
    entries = changed["entries"]
    assert isinstance(entries, list)
    assert "tokens/b.txt" in {item["path"] for item in entries}
    assert changed["token"] != token


@pytest.mark.parametrize("change", ["edit", "create", "delete", "new-folder", "shell"])
def test_manifest_notices_changes_made_on_the_server(client: httpx.Client, server: RunningServer, change: str) -> None:
    folder = server.workspace / "outofband"
    assert post_batch(client, put("outofband/deep/file.txt", b"synced\n")).status_code == 200
    token = fresh_token(client)
    assert manifest_since(client, token)["unchanged"] is True
    if change == "edit":
        (folder / "deep" / "file.txt").write_bytes(b"edited in yard dev shell\n")
    elif change == "create":
        (folder / "report.csv").write_text("made by a run\n")
    elif change == "delete":
        (folder / "deep" / "file.txt").unlink()
    elif change == "new-folder":
        (folder / "deep" / "new").mkdir()
    else:
        assert run(client, ["sh", "-c", "echo more >> outofband/deep/file.txt"]).code == 0
    assert "unchanged" not in manifest_since(client, token)


def test_uploads_at_once_are_bounded(client: httpx.Client, server: RunningServer) -> None:
    from devserver.files import MAX_BATCH_UPLOADS

    release = threading.Event()
    results: list[int] = []

    def stalled(number: int) -> None:
        def body() -> Iterator[bytes]:
            yield put(f"stalled/{number}.txt", b"first\n")
            release.wait(30)
            yield put(f"stalled/{number}-b.txt", b"second\n")

        with server.client() as own:
            results.append(post_batch(own, body()).status_code)

    threads = [threading.Thread(target=stalled, args=(n,)) for n in range(MAX_BATCH_UPLOADS)]
    for thread in threads:
        thread.start()
    try:
        # Every stalled upload holds its slot once its first file is on disk. A probe sent before
        # then would take a free slot itself and could turn a stalled upload away.
        wait_until(
            lambda: all((server.workspace / "stalled" / f"{n}.txt").exists() for n in range(MAX_BATCH_UPLOADS)),
            timeout=20,
            message="every stalled upload to write its first file",
        )
        refused = post_batch(client, put("one-more.txt", b"x\n"))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_uploads"
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert results == [200] * MAX_BATCH_UPLOADS
    assert post_batch(client, put("after.txt", b"y\n")).status_code == 200, "the count goes down again"
    assert len(list((server.workspace / "stalled").iterdir())) == 2 * MAX_BATCH_UPLOADS
