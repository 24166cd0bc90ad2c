"""The pure-Python pack indexer, checked against libgit2's own output."""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import zlib
from pathlib import Path

import pygit2
import pytest

from devserver.packindex import BLOB, REF_DELTA, PackError, apply_delta, index_pack, object_id, write_index


def history_repo(path: Path, commits: int = 25) -> pygit2.Repository:
    """A repository whose big file changes a little per commit, so packs contain deltas."""
    repo = pygit2.init_repository(path, initial_head="main")
    signature = pygit2.Signature("Test", "test@example.com")
    rng = random.Random(7)
    lines = [f"line {i} {rng.random()}\n" for i in range(2000)]
    parents: list[pygit2.Oid] = []
    for number in range(commits):
        for _ in range(4):
            lines[rng.randrange(len(lines))] = f"changed in {number}\n"
        (path / "big.txt").write_text("".join(lines))
        (path / f"small{number}.txt").write_text(f"{number}\n")
        repo.index.add_all()
        repo.index.write()
        tree = repo.index.write_tree()
        parents = [repo.create_commit("HEAD", signature, signature, f"commit {number}", tree, parents)]
    return repo


def build_pack(repo: pygit2.Repository, out: Path) -> Path:
    builder = pygit2.PackBuilder(repo)
    for commit in repo.walk(repo.head.target):
        builder.add_recur(commit.id)
    out.mkdir()
    builder.write(str(out))
    return next(out.glob("*.pack"))


def test_index_is_byte_identical_to_libgit2s(tmp_path: Path) -> None:
    repo = history_repo(tmp_path / "repo")
    pack = build_pack(repo, tmp_path / "pack")
    indexed = index_pack(pack)
    assert any(obj.kind >= 6 for obj in indexed.objects), "the test pack should contain deltas"
    write_index(indexed, tmp_path / "mine.idx")
    assert (tmp_path / "mine.idx").read_bytes() == pack.with_suffix(".idx").read_bytes()


def thin_pack(path: Path, base: bytes, target: bytes) -> None:
    """A one-object pack: ``target`` as a delta against ``base``, which is not in the pack."""
    assert target.startswith(base)
    extra = target[len(base) :]
    delta = bytes([len(base), len(target), 0x90, len(base), len(extra)]) + extra  # copy all of base, insert extra
    size = len(delta)
    header = bytes([(REF_DELTA << 4) | 0x80 | (size & 0x0F), size >> 4])
    body = b"PACK" + struct.pack(">II", 2, 1) + header + object_id(BLOB, base) + zlib.compress(delta)
    path.write_bytes(body + hashlib.sha1(body).digest())


def test_thin_pack_is_completed_with_its_external_base(tmp_path: Path) -> None:
    base, target = b"base content\n", b"base content\nmore\n"
    pack = tmp_path / "thin.pack"
    thin_pack(pack, base, target)
    with pytest.raises(PackError, match="no base"):
        index_pack(pack)
    indexed = index_pack(pack, lambda oid: (BLOB, base) if oid == object_id(BLOB, base) else None)
    write_index(indexed, pack.with_suffix(".idx"))
    assert len(indexed.objects) == 2
    repo = pygit2.init_repository(tmp_path / "repo")
    pack_dir = Path(repo.path) / "objects" / "pack"
    shutil.copy(pack, pack_dir / "pack-test.pack")
    shutil.copy(pack.with_suffix(".idx"), pack_dir / "pack-test.idx")
    reopened = pygit2.Repository(str(tmp_path / "repo"))
    assert reopened.odb.read(pygit2.Oid(raw=object_id(BLOB, target)))[1] == target
    assert reopened.odb.read(pygit2.Oid(raw=object_id(BLOB, base)))[1] == base


def test_corrupt_packs_are_refused(tmp_path: Path) -> None:
    repo = history_repo(tmp_path / "repo", commits=3)
    pack = build_pack(repo, tmp_path / "pack")
    data = bytearray(pack.read_bytes())
    data[40] ^= 0xFF
    broken = tmp_path / "broken.pack"
    broken.write_bytes(bytes(data))
    with pytest.raises(PackError, match="checksum"):
        index_pack(broken)
    broken.write_bytes(b"nonsense")
    with pytest.raises(PackError):
        index_pack(broken)


def test_apply_delta_checks_sizes() -> None:
    assert apply_delta(b"abc", bytes([3, 4, 0x90, 3, 1]) + b"d") == b"abcd"
    with pytest.raises(PackError):
        apply_delta(b"abcdef", bytes([3, 4, 0x90, 3, 1]) + b"d")


def test_corrupt_compressed_data_behind_a_valid_checksum_is_refused(tmp_path: Path) -> None:
    # The checksum is recomputed after the damage, so the indexer meets it inflating an object
    # (with a slice of the mapped pack in hand): a PackError, never a BufferError on unmapping.
    repo = history_repo(tmp_path / "repo", commits=3)
    body = build_pack(repo, tmp_path / "pack").read_bytes()[:-20]
    damaged = bytearray(body)
    damaged[14:20] = b"\xff" * 6  # the first object's zlib header
    truncated = body[:60]
    for name, content in (("damaged", bytes(damaged)), ("truncated", truncated)):
        pack = tmp_path / f"{name}.pack"
        pack.write_bytes(content + hashlib.sha1(content).digest())
        with pytest.raises(PackError, match=r"compressed data|truncated"):
            index_pack(pack)


def test_a_checksum_hashed_on_arrival_is_compared_instead_of_hashing_again(tmp_path: Path) -> None:
    repo = history_repo(tmp_path / "repo", commits=2)
    pack = build_pack(repo, tmp_path / "pack")
    content = pack.read_bytes()
    body_sha1 = hashlib.sha1(content[:-20]).digest()
    assert len(index_pack(pack, body_sha1=body_sha1).objects) == len(index_pack(pack).objects)
    with pytest.raises(PackError, match="checksum"):
        index_pack(pack, body_sha1=hashlib.sha1(b"something else").digest())
