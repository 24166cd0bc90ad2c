"""Indexing a git packfile in pure Python (what ``git index-pack`` does).

pygit2 can write packs but exposes no indexer, and the ``git`` command is not on every host. A
pack received from a client is parsed once to find every object's offset, type and CRC, its
deltas are resolved depth-first (only one delta chain in memory at a time) to learn each
object's id, and a version 2 ``.idx`` is written next to it. libgit2 then reads the pack like any
other. A "thin" pack (deltas against objects the receiver already has) is completed the way
``git index-pack --fix-thin`` does it: the missing bases are looked up through ``external`` and
appended to the pack as whole objects, because libgit2 only resolves deltas within one pack.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

COMMIT, TREE, BLOB, TAG = 1, 2, 3, 4
OFS_DELTA, REF_DELTA = 6, 7
TYPE_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob", TAG: b"tag"}
OID_SIZE = 20  # SHA-1 repositories only
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# Looks up an object outside the pack by raw id: (type, content) or None.
ExternalLookup = Callable[[bytes], tuple[int, bytes] | None]


class PackError(ValueError):
    """The data is not a valid, complete pack."""


@dataclass(slots=True)
class PackedObject:
    """Where one object sits in the pack and, once resolved, its id and type."""

    offset: int
    end: int = 0
    kind: int = 0  # the packed type (1-4, or 6/7 for deltas)
    base_offset: int | None = None  # OFS_DELTA
    base_oid: bytes | None = None  # REF_DELTA
    data_start: int = 0  # where the compressed data starts
    oid: bytes = b""
    real_kind: int = 0  # the type after delta resolution
    crc32: int = 0


@dataclass
class IndexedPack:
    """The result of :func:`index_pack`."""

    objects: list[PackedObject]
    checksum: bytes
    external_bases: list[tuple[bytes, int, bytes]] = field(default_factory=list)  # (oid, type, content)


def index_pack(pack: Path, external: ExternalLookup | None = None, *, body_sha1: bytes | None = None) -> IndexedPack:
    """Parse and resolve every object in ``pack``; raises :class:`PackError` if it is invalid.

    ``body_sha1``: the SHA-1 of everything before the pack's checksum, when the caller hashed
    it already (as it received the pack); it is compared with the checksum instead of reading
    the whole pack once more to hash it.
    """
    with open(pack, "rb") as source:
        if source.seek(0, 2) < 12 + OID_SIZE:
            raise PackError("The data is too short to be a git pack.")
        data = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            with memoryview(data) as view:
                indexed = _Indexer(view, external).run(body_sha1)
        finally:
            # A PackError's traceback may still hold a slice of the mapping: it is unmapped
            # when that goes, instead of a BufferError hiding the PackError.
            with contextlib.suppress(BufferError):
                data.close()
    if indexed.external_bases:
        _append_bases(pack, indexed)
    return indexed


def _append_bases(pack: Path, indexed: IndexedPack) -> None:
    """Make a thin pack self-contained: append its external delta bases as whole objects."""
    with open(pack, "r+b") as target:
        end = target.seek(-OID_SIZE, 2)
        target.truncate(end)
        for oid, kind, content in indexed.external_bases:
            entry = _object_header(kind, len(content)) + zlib.compress(content)
            indexed.objects.append(
                PackedObject(end, end + len(entry), kind, oid=oid, real_kind=kind, crc32=zlib.crc32(entry))
            )
            target.write(entry)
            end += len(entry)
        target.seek(8)
        target.write(_U32.pack(len(indexed.objects)))
        target.seek(0)
        digest = hashlib.sha1()
        while chunk := target.read(1 << 20):
            digest.update(chunk)
        indexed.checksum = digest.digest()
        target.write(indexed.checksum)


def _object_header(kind: int, size: int) -> bytes:
    """A pack entry header: type and inflated size as git's variable-length integer."""
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def write_index(pack: IndexedPack, path: Path) -> None:
    """Write a version 2 pack index (``.idx``) for ``pack``."""
    objects = sorted(pack.objects, key=lambda obj: obj.oid)
    fanout = [0] * 256
    for obj in objects:
        fanout[obj.oid[0]] += 1
    running = 0
    parts = [b"\xfftOc", _U32.pack(2)]
    for count in fanout:
        running += count
        parts.append(_U32.pack(running))
    parts.extend(obj.oid for obj in objects)
    parts.extend(_U32.pack(obj.crc32) for obj in objects)
    large: list[int] = []
    for obj in objects:
        if obj.offset < 0x80000000:
            parts.append(_U32.pack(obj.offset))
        else:
            parts.append(_U32.pack(0x80000000 | len(large)))
            large.append(obj.offset)
    parts.extend(_U64.pack(offset) for offset in large)
    parts.append(pack.checksum)
    body = b"".join(parts)
    path.write_bytes(body + hashlib.sha1(body).digest())


def object_id(kind: int, content: bytes) -> bytes:
    """The git object id of ``content`` stored as ``kind``."""
    digest = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[kind], len(content)))
    digest.update(content)
    return digest.digest()


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """Rebuild an object from its base and a git delta."""
    source_size, pos = _varint(delta, 0)
    target_size, pos = _varint(delta, pos)
    if source_size != len(base):
        raise PackError("A delta does not match the size of its base object.")
    out = bytearray()
    end = len(delta)
    while pos < end:
        op = delta[pos]
        pos += 1
        if op & 0x80:  # copy from the base
            offset = size = 0
            for i in range(4):
                if op & (1 << i):
                    offset |= delta[pos] << (8 * i)
                    pos += 1
            for i in range(3):
                if op & (0x10 << i):
                    size |= delta[pos] << (8 * i)
                    pos += 1
            size = size or 0x10000
            if offset + size > len(base):
                raise PackError("A delta copies beyond the end of its base object.")
            out += base[offset : offset + size]
        elif op:  # insert literal bytes
            out += delta[pos : pos + op]
            pos += op
        else:
            raise PackError("A delta contains a reserved instruction.")
    if len(out) != target_size:
        raise PackError("A delta produced an object of the wrong size.")
    return bytes(out)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise PackError("A delta header is truncated.")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


class _Indexer:
    """Reads the pack through a memoryview of its mapping: slices are views, never copies (a
    copy of a 210 MB pack to hash it was a third of the indexing time)."""

    def __init__(self, data: memoryview, external: ExternalLookup | None) -> None:
        self.data = data
        self.external = external
        self.body_end = len(data) - OID_SIZE

    def run(self, body_sha1: bytes | None = None) -> IndexedPack:
        checksum = bytes(self.data[self.body_end :])
        if body_sha1 is None:
            body_sha1 = hashlib.sha1(self.data[: self.body_end]).digest()
        if body_sha1 != checksum:
            raise PackError("The pack's checksum does not match its content (corrupt or truncated).")
        if bytes(self.data[:4]) != b"PACK" or _U32.unpack_from(self.data, 4)[0] not in (2, 3):
            raise PackError("The data is not a git pack (version 2 or 3).")
        (count,) = _U32.unpack_from(self.data, 8)
        objects = self._scan(count)
        pack = IndexedPack(objects, checksum)
        self._resolve(pack)
        return pack

    # -------------------------------------------------------------- first pass: layout

    def _scan(self, count: int) -> list[PackedObject]:
        objects: list[PackedObject] = []
        pos = 12
        for _ in range(count):
            obj, pos, content = self._entry(pos)
            objects.append(obj)
            if obj.kind in TYPE_NAMES:
                obj.real_kind, obj.oid = obj.kind, object_id(obj.kind, content)
        if pos != self.body_end:
            raise PackError("The pack has data after its last object.")
        return objects

    def _entry(self, offset: int) -> tuple[PackedObject, int, bytes]:
        """The object at ``offset``, where the next one starts, and its inflated data."""
        obj = PackedObject(offset)
        byte = self._byte(offset)
        pos = offset + 1
        obj.kind = (byte >> 4) & 7
        while byte & 0x80:  # the inflated size; zlib tells us the same, so it is only skipped
            byte = self._byte(pos)
            pos += 1
        if obj.kind == OFS_DELTA:
            byte = self._byte(pos)
            pos += 1
            distance = byte & 0x7F
            while byte & 0x80:
                byte = self._byte(pos)
                pos += 1
                distance = ((distance + 1) << 7) | (byte & 0x7F)
            if distance > offset or distance == 0:
                raise PackError("A delta points before the start of the pack.")
            obj.base_offset = offset - distance
        elif obj.kind == REF_DELTA:
            obj.base_oid = bytes(self.data[pos : pos + OID_SIZE])
            pos += OID_SIZE
        elif obj.kind not in TYPE_NAMES:
            raise PackError(f"The pack contains an object of unknown type {obj.kind}.")
        obj.data_start = pos
        obj.end, content = self._stream_end(pos, keep=obj.kind in TYPE_NAMES)
        obj.crc32 = zlib.crc32(self.data[offset : obj.end])
        return obj, obj.end, content

    def _byte(self, pos: int) -> int:
        if pos >= self.body_end:
            raise PackError("The pack is truncated inside an object header.")
        return self.data[pos]

    def _stream_end(self, start: int, keep: bool) -> tuple[int, bytes]:
        """Where the zlib stream starting at ``start`` ends, and with ``keep`` what it inflates
        to (finding the end means inflating it: a whole object's data is kept rather than
        inflated a second time to hash it; a delta's is not needed until its base is)."""
        decompressor = zlib.decompressobj()
        pos, step = start, 1024
        parts: list[bytes] = []
        while not decompressor.eof:
            if pos >= self.body_end:
                raise PackError("The pack is truncated inside compressed data.")
            chunk = self.data[pos : min(pos + step, self.body_end)]
            try:
                data = decompressor.decompress(chunk)
            except zlib.error as exc:
                raise PackError(f"The pack has corrupt compressed data ({exc}).") from None
            if keep:
                parts.append(data)
            pos += len(chunk)
            step = min(step * 2, 1 << 20)
        return pos - len(decompressor.unused_data), parts[0] if len(parts) == 1 else b"".join(parts)

    def _inflate(self, obj: PackedObject) -> bytes:
        try:
            return zlib.decompress(self.data[obj.data_start : obj.end])
        except zlib.error as exc:
            raise PackError(f"The pack has corrupt compressed data ({exc}).") from None

    # -------------------------------------------------------------- second pass: deltas

    def _resolve(self, pack: IndexedPack) -> None:
        by_offset: dict[int, list[PackedObject]] = {}
        by_oid: dict[bytes, list[PackedObject]] = {}
        pending = 0
        for obj in pack.objects:
            if obj.base_offset is not None:
                by_offset.setdefault(obj.base_offset, []).append(obj)
                pending += 1
            elif obj.base_oid is not None:
                by_oid.setdefault(obj.base_oid, []).append(obj)
                pending += 1
        resolved = 0
        for obj in pack.objects:
            if obj.kind in TYPE_NAMES and (obj.offset in by_offset or obj.oid in by_oid):
                resolved += self._descend(obj.offset, obj.oid, obj.kind, self._inflate(obj), by_offset, by_oid)
        for base_oid in list(by_oid):
            found = self.external(base_oid) if self.external is not None and base_oid in by_oid else None
            if found is not None:
                pack.external_bases.append((base_oid, *found))
                resolved += self._descend(None, base_oid, *found, by_offset, by_oid)
        if resolved != pending:
            raise PackError(f"{pending - resolved} delta objects in the pack have no base object.")

    def _descend(
        self,
        offset: int | None,
        oid: bytes,
        kind: int,
        content: bytes,
        by_offset: dict[int, list[PackedObject]],
        by_oid: dict[bytes, list[PackedObject]],
    ) -> int:
        """Resolve every delta built (directly or not) on one base; returns how many.

        Depth-first with an explicit stack, so only the current chain's contents are in memory.
        """
        count = 0
        stack = [(kind, content, iter(_children(offset, oid, by_offset, by_oid)))]
        while stack:
            base_kind, base, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                continue
            result = apply_delta(base, self._inflate(child))
            child.real_kind, child.oid = base_kind, object_id(base_kind, result)
            count += 1
            stack.append((base_kind, result, iter(_children(child.offset, child.oid, by_offset, by_oid))))
        return count


def _children(
    offset: int | None, oid: bytes, by_offset: dict[int, list[PackedObject]], by_oid: dict[bytes, list[PackedObject]]
) -> list[PackedObject]:
    """The deltas whose base is the object at ``offset`` / with id ``oid`` (each handed out once)."""
    children = by_offset.pop(offset, []) if offset is not None else []
    return children + by_oid.pop(oid, [])
