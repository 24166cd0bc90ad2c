"""A folder swapped for a symlink while batches write below it (audit finding, issue 15 item 4).

A real develop server receives real batch uploads while a thread keeps replacing a workspace
folder with a symlink to a folder outside and back. Nothing may ever appear outside, and every
answer is a 200 or a 4xx: a swap is the client's doing, not a server fault.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.devserver.conftest import RunningServer, running_server
from tests.devserver.test_files import post_batch, put

BATCHES = 400  # upper bound; the swaps race with each entry's parent walk
TIME_LIMIT_S = 25.0
ENTRIES_PER_BATCH = 8


@pytest.fixture
def racing_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "server") as server:
        server.workspace.mkdir(exist_ok=True)
        yield server


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> None:
    """Swap two names atomically (``renameat2(RENAME_EXCHANGE)``): each always exists."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def _swapper(workspace: Path, outside: Path, stop: threading.Event) -> None:
    """Keep exchanging the folder ``inner`` with a symlink to ``outside``, as fast as it can."""
    spare = workspace / "inner.link"
    spare.symlink_to(outside)
    while not stop.is_set():
        _exchange(workspace / "inner", spare)


def test_a_folder_swapped_for_a_symlink_never_leads_outside(racing_server: RunningServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # Batches write below ``race``, a symlink that stays inside (to ``inner``), so every entry
    # takes the path that follows links; ``inner`` itself is what the swapper replaces.
    (racing_server.workspace / "inner").mkdir()
    (racing_server.workspace / "race").symlink_to("inner")
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(racing_server.workspace, outside, stop), daemon=True)
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + TIME_LIMIT_S
    swapper.start()
    try:
        with racing_server.client() as client:
            for number in range(BATCHES):
                body = b"".join(put(f"race/b{number}-{entry}/deep/f.txt", b"x\n") for entry in range(ENTRIES_PER_BATCH))
                try:
                    response = post_batch(client, body)
                except httpx.HTTPError as exc:  # a dropped connection would be a server fault too
                    raise AssertionError(f"batch {number}: {exc!r}") from None
                status = response.status_code
                answer = str(status) if status == 200 else f"{status} {response.json()['error']}"
                statuses[answer] = statuses.get(answer, 0) + 1
                if status >= 500 or any(outside.iterdir()) or time.monotonic() > deadline:
                    break
    finally:
        stop.set()
        swapper.join(10)
    escaped = sorted(str(path.relative_to(outside)) for path in outside.rglob("*"))
    assert escaped == [], f"written outside the workspace: {escaped[:10]} (answers {statuses})"
    assert all(answer[0] in "24" for answer in statuses), f"server errors: {statuses}"
    assert statuses.get("200", 0) > 0, f"no batch got through at all: {statuses}"
    print(f"answers: {statuses}")
