"""Writing a packfile of given objects as a stream, without delta search.

libgit2's PackBuilder searches for deltas among all the objects it is given, which costs about
13 s for a fresh 200 MB commit here; a sync pushes mostly new blobs with nothing to delta
against, so this writer stores each object whole, zlib-compressed, and streams the pack as it
goes (nothing is written to disk, one object is in memory at a time). Objects that do not
compress (binaries, generated data) are stored at level 0: compressing them is slow and saves
nothing. History with many versions of the same files travels in the repository's own packs
instead (see :mod:`sync.gitstate`), deltas and all.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pygit2

PROBE = 16 * 1024
# Stored instead of compressed when the first PROBE bytes shrink by less than this.
POOR_RATIO = 0.9
FLUSH = 256 * 1024


def object_header(kind: int, size: int) -> bytes:
    """A pack entry header: type and size, seven bits a byte after the first four."""
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def compress(data: bytes) -> bytes:
    """zlib data for one object: fast compression, or none for data that does not compress."""
    if len(data) > PROBE and len(zlib.compress(data[:PROBE], 1)) > POOR_RATIO * PROBE:
        return zlib.compress(data, 0)
    return zlib.compress(data, 1)


def pack_stream(repo: pygit2.Repository, oids: Sequence[pygit2.Oid]) -> Iterator[bytes]:
    """The packfile (version 2) holding ``oids``, in chunks; the trailer is its SHA-1."""
    checksum = hashlib.sha1()
    buffer = bytearray(b"PACK" + struct.pack(">II", 2, len(oids)))
    for oid in oids:
        kind, data = repo.odb.read(oid)
        buffer += object_header(int(kind), len(data))
        buffer += compress(data)
        if len(buffer) >= FLUSH:
            checksum.update(buffer)
            yield bytes(buffer)
            buffer.clear()
    checksum.update(buffer)
    buffer += checksum.digest()
    yield bytes(buffer)
