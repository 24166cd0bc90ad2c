"""The object store contract, on the local folder store and on a real SeaweedFS S3 server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from control.objectstore import ObjectNotFound, ObjectStore, ObjectStoreProblem


@pytest.fixture
def store(object_store_url: str) -> ObjectStore:
    return ObjectStore.from_url(object_store_url)


def test_put_get_head_delete(store: ObjectStore) -> None:
    store.put("runs/1/logs/000001", b"hello\n")
    assert store.get("runs/1/logs/000001") == b"hello\n"
    assert store.head("runs/1/logs/000001").size == 6
    assert store.exists("runs/1/logs/000001")
    store.delete("runs/1/logs/000001")
    assert not store.exists("runs/1/logs/000001")
    store.delete("runs/1/logs/000001")  # deleting twice is fine


def test_missing_object_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("nothing/here")
    with pytest.raises(ObjectNotFound):
        store.get_range("nothing/here", 0, 10)


def test_ranged_reads_are_exact_and_clipped(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40
    store.put("blob", data)
    assert store.get_range("blob", 0, 10) == data[:10]
    assert store.get_range("blob", 1000, 1300) == data[1000:1300]
    assert store.get_range("blob", len(data) - 5, len(data) + 100) == data[-5:]
    assert store.get_range("blob", len(data), len(data) + 10) == b""


def test_list_by_prefix(store: ObjectStore) -> None:
    for key in ("runs/1/a", "runs/1/b", "runs/2/a", "artifacts/1/x"):
        store.put(key, key.encode())
    assert sorted(o.key for o in store.list("runs/1/")) == ["runs/1/a", "runs/1/b"]
    assert sorted(o.key for o in store.list("runs/")) == ["runs/1/a", "runs/1/b", "runs/2/a"]
    assert len(list(store.list())) == 4


def test_streaming_reads_and_file_uploads(store: ObjectStore, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    store.put_file("big/object", source)
    pieces = list(store.stream("big/object", chunk_size=512 * 1024))
    assert b"".join(pieces) == payload
    assert len(pieces) > 1


def test_async_variants(store: ObjectStore) -> None:
    async def scenario() -> bytes:
        await store.put_async("async/key", b"abc" * 1000)
        parts = [p async for p in store.stream_async("async/key")]
        assert b"".join(parts) == await store.get_async("async/key")
        await store.delete_async("async/key")
        return b"".join(parts)

    assert asyncio.run(scenario()) == b"abc" * 1000
    assert not store.exists("async/key")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/\x00b", ".."])
def test_keys_cannot_escape(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_prefixes_isolate_s3_tenants(s3_env: object) -> None:
    from tests.services.seaweedfs import S3Service

    assert isinstance(s3_env, S3Service)
    one = ObjectStore.from_url(f"s3://{s3_env.bucket}/tenant-one")
    two = ObjectStore.from_url(f"s3://{s3_env.bucket}/tenant-two")
    one.put("same/key", b"one")
    two.put("same/key", b"two")
    assert one.get("same/key") == b"one" and two.get("same/key") == b"two"
    assert [o.key for o in one.list("same/")] == ["same/key"]


@pytest.mark.parametrize("url", ["ftp://x/y", "s3://", "file://relative/path", "nonsense"])
def test_bad_urls_are_one_sentence(url: str) -> None:
    with pytest.raises(ObjectStoreProblem):
        ObjectStore.from_url(url)


def test_unreachable_s3_is_a_store_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = ObjectStore.from_url("s3://bucket/p", s3_endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(ObjectStoreProblem):
        store.put("k", b"v")
