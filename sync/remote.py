"""The develop server's workspace as the sync sees it: its endpoints, through the gateway.

Every failure that means "the develop server is not there right now" (not running, restarting,
the control API unreachable) becomes :class:`DevserverUnavailable`, which a sync reports and a
watch waits out; everything else is a :class:`control.client.DevyardError` as usual.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from control.client import ApiError, ConnectionFailed, ControlClient, DevyardError
from control.wire.batch import MEDIA_TYPE
from control.wire.manifest import Entry
from sync.ignore import TEMP_PREFIX
from sync.unchanged import parse_listing as parse_listing  # re-exported: it was defined here

UNAVAILABLE_CODES = frozenset({"devserver_not_running", "devserver_unreachable"})


class DevserverUnavailable(DevyardError):
    """The develop server (or the control API in front of it) does not answer right now."""


class EntryRefused(DevyardError):
    """The develop server refused one batch entry; the ``applied`` entries before it were applied."""

    def __init__(self, path: str, applied: int, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.applied = applied


def unavailable(exc: DevyardError) -> bool:
    """Whether ``exc`` means the develop server cannot be reached (as opposed to a refusal)."""
    if isinstance(exc, ConnectionFailed):
        return True
    if isinstance(exc, ApiError):
        return exc.code in UNAVAILABLE_CODES or exc.status >= 500
    return False


class RemoteWorkspace:
    """One develop server's workspace."""

    def __init__(self, client: ControlClient, server_id: int) -> None:
        self.client = client
        self.server_id = server_id

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self.client.devserver_call(self.server_id, method, path, **kwargs)
        except DevyardError as exc:
            if unavailable(exc):
                raise DevserverUnavailable(str(exc)) from exc
            raise

    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def manifest(self) -> dict[str, Entry]:
        """Every entry of the workspace (``.git`` aside), by path."""
        return self.listing()[0] or {}

    def listing(self, since: str | None = None) -> tuple[dict[str, Entry] | None, str | None]:
        """The manifest and the token naming it; with ``since``, ``None`` instead of the entries
        when the workspace has not changed since the manifest of that token."""
        return parse_listing(self._call("GET", "/files/manifest", params={"since": since} if since else None))

    def apply(self, body: Iterable[bytes]) -> dict[str, Any]:
        """Send one streamed batch; raises :class:`EntryRefused` for a refused entry."""
        try:
            result: dict[str, Any] = self.client.devserver_upload(
                self.server_id, "/files/batch", body, media_type=MEDIA_TYPE
            )
            return result
        except ApiError as exc:
            applied = exc.extra.get("applied")
            if exc.status == 400 and isinstance(applied, int):
                raise EntryRefused(str(exc.extra.get("path") or "?"), applied, exc.message) from exc
            if unavailable(exc):
                raise DevserverUnavailable(str(exc)) from exc
            raise
        except ConnectionFailed as exc:
            raise DevserverUnavailable(str(exc)) from exc

    def download(self, path: str, target: Path) -> None:
        """Copy the workspace file ``path`` to the local file ``target`` (atomically)."""
        temp = target.with_name(f"{TEMP_PREFIX}{target.name}")  # never synced: see sync.ignore
        try:
            with open(temp, "wb") as out:
                for chunk in self.client.devserver_stream(self.server_id, "GET", "/files/read", params={"path": path}):
                    out.write(chunk)
            os.replace(temp, target)
        except DevyardError as exc:
            temp.unlink(missing_ok=True)
            if unavailable(exc):
                raise DevserverUnavailable(str(exc)) from exc
            raise
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ git

    def git_refs(self) -> dict[str, Any] | None:
        """``{"refs": {name: oid}, "head": ...}``, or None if the workspace is no repository yet."""
        try:
            result: dict[str, Any] = self._call("GET", "/git/refs")
        except ApiError as exc:
            if exc.code == "not_a_repository":
                return None
            raise
        return result

    def git_init(self, branch: str) -> None:
        """Create the workspace repository with ``branch`` as its unborn HEAD."""
        self._call("POST", "/git/init", json={"branch": branch})

    def git_missing(self, oids: list[str]) -> list[str]:
        """Which of ``oids`` the workspace repository lacks."""
        missing: list[str] = self._call("POST", "/git/has", json={"oids": oids})["missing"]
        return missing

    def git_send_pack(self, pack: Path | Iterable[bytes]) -> int:
        """Stream a packfile (a file, or its bytes as they are made) into the workspace
        repository; the number of objects it held."""

        def chunks(path: Path) -> Iterator[bytes]:
            with open(path, "rb") as source:
                while chunk := source.read(1024 * 1024):
                    yield chunk

        try:
            result = self.client.devserver_upload(
                self.server_id, "/git/objects", chunks(pack) if isinstance(pack, Path) else pack
            )
        except DevyardError as exc:
            if unavailable(exc):
                raise DevserverUnavailable(str(exc)) from exc
            raise
        return int(result["objects"])

    def git_set_ref(self, name: str, target: str, *, set_head: bool = False, reset_index: bool = False) -> None:
        """Point ``name`` (or a detached ``HEAD``) at ``target``; the working tree is not touched."""
        body = {"name": name, "target": target, "set_head": set_head, "checkout": "none", "reset_index": reset_index}
        self._call("POST", "/git/ref", json=body)
