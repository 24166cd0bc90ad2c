"""Notices between the API processes of one host that share a SQLite data dir.

PostgreSQL carries wake-ups between API processes with LISTEN/NOTIFY; SQLite has nothing like
it. Here every process binds a Unix datagram socket in ``<data-dir>/state/bus/`` and sends each
notice to every other socket in that folder. A socket file whose process is gone refuses
datagrams and is removed by whoever notices first; files of dead pids are removed at start.

Sends never block the caller: a datagram that does not fit into a busy peer's queue right now is
handed to a sender thread that retries for a while. As with NOTIFY, a notice only says "look
again", so a lost one delays a waiter until its next poll but never corrupts anything.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("devyard.localbus")

MAX_DATAGRAM = 60 * 1024
KEYS, EVENT = b"K", b"E"
RETRY_FOR_S = 2.0
RECENT_NS = 1_000_000_000
# Unix socket paths are limited to 107 bytes; longer ones are reached through the folder's fd.
MAX_PATH = 100


class LocalBus:
    """One process's end of the bus: receives in a thread, sends without blocking."""

    def __init__(
        self, folder: Path, on_keys: Callable[[list[str]], None], on_event: Callable[[str], None] | None = None
    ) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder = folder
        self.on_keys = on_keys
        self.on_event = on_event
        self._dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        self._remove_dead()
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._inbox.bind(self._address(self.name))
        self._outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._peers: list[str] = []
        self._listed_at: int | None = None
        self._lock = threading.Lock()
        self._backlog: deque[tuple[str, bytes, float]] = deque()
        self._backlog_ready = threading.Condition(self._lock)
        self._closed = False
        threading.Thread(target=self._receive, name="devyard-bus-in", daemon=True).start()
        threading.Thread(target=self._retry, name="devyard-bus-out", daemon=True).start()

    def send_keys(self, keys: Iterable[str]) -> None:
        """Wake waiters of ``keys`` in every other process."""
        batch: list[bytes] = []
        size = 0
        for key in keys:
            encoded = key.encode()
            if size + len(encoded) + 1 > MAX_DATAGRAM and batch:
                self._send(KEYS + b"\n".join(batch))
                batch, size = [], 0
            batch.append(encoded)
            size += len(encoded) + 1
        if batch:
            self._send(KEYS + b"\n".join(batch))

    def send_event(self, payload: str) -> bool:
        """Hand an event to every other process; False if it is too large to send."""
        data = EVENT + payload.encode()
        if len(data) > MAX_DATAGRAM:
            return False
        self._send(data)
        return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._backlog_ready.notify_all()
        with contextlib.suppress(OSError):
            os.unlink(self.name, dir_fd=self._dir_fd)
        with contextlib.suppress(OSError):
            self._inbox.shutdown(socket.SHUT_RDWR)  # wakes the receiving thread, which closes up

    # ------------------------------------------------------------------ sending

    def _send(self, data: bytes) -> None:
        if self._closed:
            return
        for peer in self._current_peers():
            with self._lock:
                if self._backlog:  # keep the order: behind what is already waiting
                    self._backlog.append((peer, data, time.monotonic() + RETRY_FOR_S))
                    self._backlog_ready.notify()
                    continue
            try:
                self._outbox.sendto(data, socket.MSG_DONTWAIT, self._address(peer))
            except BlockingIOError:
                with self._lock:
                    self._backlog.append((peer, data, time.monotonic() + RETRY_FOR_S))
                    self._backlog_ready.notify()
            except OSError as exc:
                if not self._closed:
                    self._peer_failed(peer, exc)

    def _retry(self) -> None:
        while True:
            with self._lock:
                while not self._backlog and not self._closed:
                    self._backlog_ready.wait()
                if self._closed:
                    return
                peer, data, give_up_at = self._backlog[0]
            try:
                self._outbox.sendto(data, socket.MSG_DONTWAIT, self._address(peer))
            except BlockingIOError:
                if time.monotonic() < give_up_at:
                    time.sleep(0.002)  # the peer's receiving thread is behind; let it catch up
                    continue
                log.warning("dropped a notice for %s: its queue stayed full", peer)
            except OSError as exc:
                self._peer_failed(peer, exc)
            with self._lock:
                self._backlog.popleft()

    def _current_peers(self) -> list[str]:
        """The other sockets in the folder, listed again only when the folder may have changed."""
        try:
            changed = os.stat(self._dir_fd).st_mtime_ns
        except OSError:
            return []
        # Directory times are coarse (a clock tick): a second change within the tick of the
        # first leaves the time as it was, so keep listing while the last change is recent.
        if changed != self._listed_at or time.time_ns() - changed < RECENT_NS:
            try:
                names = os.listdir(self._dir_fd)
            except OSError:
                return []
            self._peers = [n for n in names if n.endswith(".sock") and n != self.name]
            self._listed_at = changed
        return self._peers

    def _peer_failed(self, peer: str, exc: OSError) -> None:
        if exc.errno == errno.ECONNREFUSED:  # nobody is bound to it: its process is gone
            with contextlib.suppress(OSError):
                os.unlink(peer, dir_fd=self._dir_fd)
        elif exc.errno != errno.ENOENT:
            log.warning("bus notice to %s failed: %s", peer, exc)
        self._listed_at = None

    # ------------------------------------------------------------------ receiving

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self._inbox.recv(MAX_DATAGRAM + 1)
            except OSError:
                break
            kind, body = data[:1], data[1:]
            try:
                if kind == KEYS:
                    self.on_keys(body.decode().split("\n"))
                elif kind == EVENT and self.on_event is not None:
                    self.on_event(body.decode())
            except Exception:  # a bad notice must not end the bus for this process
                log.warning("bus notice failed", exc_info=True)
        self._inbox.close()
        self._outbox.close()
        os.close(self._dir_fd)

    # ------------------------------------------------------------------ the folder

    def _address(self, name: str) -> str:
        path = str(self.folder / name)
        return path if len(path) <= MAX_PATH else f"/proc/self/fd/{self._dir_fd}/{name}"

    def _remove_dead(self) -> None:
        for name in os.listdir(self._dir_fd):
            pid = name.split("-", 1)[0]
            if name.endswith(".sock") and pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._dir_fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
