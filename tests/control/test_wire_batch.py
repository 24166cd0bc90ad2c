"""The batch upload format: encoder and incremental decoder (shared with the sync client)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from control.wire.batch import (
    ENTRY_END,
    BatchDecoder,
    BatchEvent,
    BatchFormatError,
    Delete,
    Op,
    PutDir,
    PutFile,
    PutSymlink,
    encode_batch,
    encode_entry,
    encode_header,
    file_chunks,
)

CONTENT = b"hello batch\n" * 100
OPS: list[Op] = [
    PutDir("src", 0o755),
    PutFile("src/a.txt", 0o644, 1_700_000_000_000_000_000, len(CONTENT), hashlib.sha256(CONTENT).hexdigest()),
    PutFile("empty", 0o600, 0, 0),
    PutSymlink("link", "../anywhere"),
    Delete("old"),
]


def encoded() -> bytes:
    return b"".join(encode_entry(op, CONTENT if op.path == "src/a.txt" else b"") for op in OPS)


def decode(data: bytes, chunk: int) -> list[BatchEvent]:
    decoder = BatchDecoder()
    events = [event for i in range(0, len(data), chunk) for event in decoder.feed(data[i : i + chunk])]
    decoder.finish()
    return events


def merged(events: list[BatchEvent]) -> list[object]:
    """Events with consecutive content chunks joined (chunking is not part of the meaning)."""
    out: list[object] = []
    for event in events:
        if isinstance(event, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += event
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096, 1 << 20])
def test_decoding_does_not_depend_on_chunking(chunk: int) -> None:
    assert merged(decode(encoded(), chunk)) == [
        OPS[0],
        ENTRY_END,
        OPS[1],
        CONTENT,
        ENTRY_END,
        OPS[2],
        ENTRY_END,
        OPS[3],
        ENTRY_END,
        OPS[4],
        ENTRY_END,
    ]


@pytest.mark.parametrize(
    "path", ["plain.txt", 'quote"back\\slash', "tab\tnew\nline", "naïve/日本語.md", "bad-\udcff-byte", "\x7f\x1f"]
)
def test_file_headers_are_the_json_of_the_op_for_any_path(path: str) -> None:
    op = PutFile(path, 0o755, -1, 12, hashlib.sha256(b"x").hexdigest())
    header = encode_header(op)
    assert json.loads(header[4:]) == {
        "op": "put",
        "path": path,
        "kind": "file",
        "mode": 0o755,
        "mtime_ns": -1,
        "size": 12,
        "sha256": op.sha256,
    }
    assert struct.unpack(">I", header[:4])[0] == len(header) - 4
    assert list(BatchDecoder().feed(header)) == [op]


def test_encode_batch_streams_file_content(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(CONTENT)
    ops = [PutFile("a.txt", 0o644, 1, len(CONTENT))]
    data = b"".join(encode_batch(ops, lambda op: file_chunks(source, op.size, chunk_size=100)))
    assert data == encode_entry(ops[0], CONTENT)


def test_encode_batch_refuses_content_of_the_wrong_size(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"short")
    with pytest.raises(ValueError, match="shrank"):
        list(encode_batch([PutFile("a.txt", 0o644, 1, 100)], lambda op: file_chunks(source, op.size)))
    with pytest.raises(ValueError):
        encode_entry(PutFile("a", 0o644, 0, 3), b"toolong")


def test_truncated_content_is_reported_with_its_path() -> None:
    decoder = BatchDecoder()
    list(decoder.feed(encoded()[:-60]))
    with pytest.raises(BatchFormatError) as caught:
        decoder.finish()
    assert caught.value.code == "truncated"


def test_truncated_header_is_reported() -> None:
    decoder = BatchDecoder()
    list(decoder.feed(encode_header(Delete("x"))[:6]))
    with pytest.raises(BatchFormatError, match="header"):
        decoder.finish()


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b"[1, 2]",
        b'{"op": "put", "kind": "file"}',
        b'{"op": "rename", "path": "a"}',
        b'{"op": "put", "path": "a", "kind": "fifo"}',
        b'{"op": "put", "path": "a", "kind": "file", "mode": 420, "mtime_ns": 1, "size": -1}',
        b'{"op": "put", "path": "a", "kind": "file", "mode": 420, "mtime_ns": 1, "size": 1, "sha256": "XYZ"}',
        b'{"op": "put", "path": "a", "kind": "file", "mode": true, "mtime_ns": 1, "size": 1}',
        b'{"op": "put", "path": "a", "kind": "symlink", "target": ""}',
    ],
)
def test_malformed_headers_are_refused(header: bytes) -> None:
    with pytest.raises(BatchFormatError) as caught:
        list(BatchDecoder().feed(struct.pack(">I", len(header)) + header))
    assert caught.value.code == "bad_header"


def test_absurd_header_length_is_refused() -> None:
    with pytest.raises(BatchFormatError):
        list(BatchDecoder().feed(struct.pack(">I", 0xFFFFFFFF)))
