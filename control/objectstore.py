"""Object storage for logs and artifacts, on obstore: a local folder or any S3-compatible store.

``file:///abs/path`` is the embedded default; ``s3://bucket/prefix`` reaches AWS S3 or an
S3-compatible server (SeaweedFS, MinIO) when an endpoint override is given. Keys are relative
``/``-separated paths; they never contain ``..`` or start with ``/`` so a key cannot escape the
store's root or prefix.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import obstore
from obstore.store import LocalStore, S3Store

STREAM_CHUNK = 1024 * 1024


class ObjectStoreProblem(Exception):
    """The store cannot be used (bad URL, unreachable, refused); one sentence for the user."""


class ObjectNotFound(KeyError):
    """No object at that key."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


def check_key(key: str) -> str:
    """Validate an object key, returning it unchanged."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


class ObjectStore:
    """A bucket-like store addressed by keys; sync and async variants of each operation."""

    def __init__(self, url: str, store: Any, prefix: str = "") -> None:
        self.url = url
        self._store = store
        self._prefix = prefix.strip("/")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, *, s3_endpoint: str | None = None, s3_region: str | None = None) -> ObjectStore:
        """Open the store named by ``url``; raises :class:`ObjectStoreProblem` for a bad URL."""
        parsed = urlparse(url)
        if parsed.scheme == "file":
            root = Path(unquote(parsed.path))
            if parsed.netloc not in ("", "localhost") or not root.is_absolute():
                raise ObjectStoreProblem(f"The object store URL {url} must name an absolute folder.")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ObjectStoreProblem(f"Cannot create the object store folder {root} ({exc.strerror}).") from exc
            return cls(url, LocalStore(str(root), mkdir=True))
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise ObjectStoreProblem(f"The object store URL {url} has no bucket; use s3://bucket/prefix.")
            return cls(url, _s3_store(parsed.netloc, s3_endpoint, s3_region), parsed.path)
        raise ObjectStoreProblem(f"Unsupported object store URL {url!r}; use file:///path or s3://bucket/prefix.")

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def _key(self, path: str) -> str:
        return path[len(self._prefix) + 1 :] if self._prefix else path

    # -- sync ---------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        with _translated(key):
            obstore.put(self._store, self._path(key), data)

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file from disk, streamed (multipart for big files)."""
        with _translated(key), open(path, "rb") as handle:
            obstore.put(self._store, self._path(key), handle)

    def get(self, key: str) -> bytes:
        with _translated(key):
            return bytes(obstore.get(self._store, self._path(key)).bytes())

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object; ``end`` past the size is clipped."""
        with _translated(key):
            size = obstore.head(self._store, self._path(key))["size"]
            end = min(end, size)
            if start >= end:
                return b""
            return bytes(obstore.get_range(self._store, self._path(key), start=start, end=end))

    def stream(self, key: str, chunk_size: int = STREAM_CHUNK) -> Iterator[bytes]:
        """Read an object piece by piece without holding it all in memory."""
        with _translated(key):
            result = obstore.get(self._store, self._path(key))
            for piece in result.stream(min_chunk_size=chunk_size):
                yield bytes(piece)

    def head(self, key: str) -> ObjectInfo:
        with _translated(key):
            meta = obstore.head(self._store, self._path(key))
        return ObjectInfo(key, meta["size"], meta["last_modified"])

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a folder-like prefix ending in ``/`` or not)."""
        full = self._prefix + "/" + prefix if self._prefix else prefix
        with _translated(prefix or "/"):
            for batch in obstore.list(self._store, prefix=full or None, chunk_size=1000):
                for meta in batch:
                    yield ObjectInfo(self._key(meta["path"]), meta["size"], meta["last_modified"])

    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""
        try:
            with _translated(key):
                obstore.delete(self._store, self._path(key))
        except ObjectNotFound:
            pass

    # -- async --------------------------------------------------------------------------------
    async def put_async(self, key: str, data: bytes) -> None:
        with _translated(key):
            await obstore.put_async(self._store, self._path(key), data)

    async def get_async(self, key: str) -> bytes:
        with _translated(key):
            result = await obstore.get_async(self._store, self._path(key))
            return bytes(await result.bytes_async())

    async def get_range_async(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; ``end`` must not pass the object's size."""
        if start >= end:
            return b""
        with _translated(key):
            return bytes(await obstore.get_range_async(self._store, self._path(key), start=start, end=end))

    async def stream_async(self, key: str, chunk_size: int = STREAM_CHUNK) -> AsyncIterator[bytes]:
        with _translated(key):
            result = await obstore.get_async(self._store, self._path(key))
            async for piece in result.stream(min_chunk_size=chunk_size):
                yield bytes(piece)

    async def delete_async(self, key: str) -> None:
        try:
            with _translated(key):
                await obstore.delete_async(self._store, self._path(key))
        except ObjectNotFound:
            pass

    def check(self) -> None:
        """Write, read and delete a probe object; raises :class:`ObjectStoreProblem` on failure."""
        key = f".devyard-probe-{os.getpid()}"
        try:
            self.put(key, b"ok")
            readback = self.get(key)
        except ObjectNotFound as exc:
            raise ObjectStoreProblem(
                f"The object store {self.url} refused a write: its bucket or folder does not exist."
            ) from exc
        if readback != b"ok":
            raise ObjectStoreProblem(f"The object store {self.url} returned different bytes than written.")
        self.delete(key)


def _s3_store(bucket: str, endpoint: str | None, region: str | None) -> S3Store:
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # Bounded retries: the run worker keeps its own spool and retries forever, so a store
    # outage should surface within seconds rather than after obstore's default three minutes.
    kwargs: dict[str, Any] = {
        "region": region,
        "retry_config": {
            "max_retries": 3,
            "retry_timeout": timedelta(seconds=10),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2), "base": 2},
        },
    }
    if endpoint:
        # S3-compatible servers are addressed path-style (http://host/bucket/key).
        kwargs["endpoint"] = endpoint
        kwargs["virtual_hosted_style_request"] = False
        if endpoint.startswith("http://"):
            kwargs["client_options"] = {"allow_http": True, "timeout": "30s", "connect_timeout": "5s"}
    access_key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        kwargs["access_key_id"] = access_key
        kwargs["secret_access_key"] = secret_key
    try:
        return S3Store(bucket, **kwargs)
    except Exception as exc:  # obstore raises several config error types
        raise ObjectStoreProblem(f"Cannot configure the S3 store for bucket {bucket}: {exc}.") from exc


@contextmanager
def _translated(key: str) -> Iterator[None]:
    """Map obstore's errors onto ours so callers handle one vocabulary."""
    try:
        yield
    except (FileNotFoundError, obstore.exceptions.NotFoundError) as exc:
        raise ObjectNotFound(key) from exc
    except ValueError:
        raise
    except (OSError, RuntimeError, obstore.exceptions.BaseError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ObjectStoreProblem(f"The object store failed on {key!r}: {first}") from exc
