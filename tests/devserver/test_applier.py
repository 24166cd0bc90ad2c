"""The batch applier: chunks applied in order by a thread of their own, with back-pressure, errors
reported once, and a stop that leaves nothing half-written (the HTTP side is in test_files.py)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from control.wire.batch import BatchDecoder, BatchFormatError, Delete, PutFile, encode_entry
from devserver import applier as applier_module
from devserver.applier import BatchApplier
from devserver.paths import BadPath, Workspace
from devserver.writer import TEMP_PREFIX, WorkspaceWriter
from tests.waiting import wait_until_async

MTIME = 1_600_000_000_123_456_789


def _body(files: dict[str, bytes]) -> bytes:
    return b"".join(encode_entry(PutFile(path, 0o644, MTIME, len(data)), data) for path, data in files.items())


def _pieces(body: bytes, size: int) -> list[bytes]:
    return [body[start : start + size] for start in range(0, len(body), size)]


def _names(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(folder, name), root) for folder, _, names in os.walk(root) for name in names}


def test_chunks_are_applied_in_order_with_back_pressure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applier_module, "QUEUED_LIMIT", 4096)
    files = {f"pkg/m{i % 7}/f{i}.txt": os.urandom(300 + i * 13) for i in range(400)}
    files["pkg/m0/f0.txt"] = b"first version"

    async def upload() -> WorkspaceWriter:
        writer = WorkspaceWriter(Workspace(tmp_path))
        applier = BatchApplier(writer, BatchDecoder())
        try:
            for piece in _pieces(_body(files) + _body({"pkg/m0/f0.txt": b"second version"}), 1000):
                await applier.put(piece)
                assert applier._queued <= applier_module.QUEUED_LIMIT + 1000
            await applier.finish()
        finally:
            applier.stop()
        return writer

    writer = asyncio.run(upload())
    assert writer.written == len(files) + 1
    files["pkg/m0/f0.txt"] = b"second version"  # the later entry for a path wins: order is kept
    for path, data in files.items():
        assert (tmp_path / path).read_bytes() == data
    assert all(thread.name != "batch-writer" for thread in threading.enumerate()), "stop() ends the thread"


def test_the_event_loop_keeps_running_while_the_writer_works(tmp_path: Path) -> None:
    files = {f"d{i % 10}/f{i}.bin": os.urandom(4096) for i in range(2000)}

    async def upload() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        applier = BatchApplier(WorkspaceWriter(Workspace(tmp_path)), BatchDecoder())
        try:
            await applier.put(_body(files))  # one big chunk: all of its work is the thread's
            await applier.finish()
        finally:
            applier.stop()
            stop.set()
            await task
        return ticks

    assert asyncio.run(upload()) > 10, "the loop must not block while 2,000 files are written"
    assert len(_names(tmp_path)) == 2000


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b"\x00\x00\x00\x05{oops", BatchFormatError),
        (encode_entry(PutFile("../escape.txt", 0o644, MTIME, 2), b"no"), BadPath),
    ],
)
def test_an_error_stops_the_writer_and_is_raised_once(tmp_path: Path, bad: bytes, error: type[Exception]) -> None:
    good = _body({"a.txt": b"kept"})

    async def upload() -> tuple[WorkspaceWriter, BatchApplier]:
        writer = WorkspaceWriter(Workspace(tmp_path / "ws"))
        applier = BatchApplier(writer, BatchDecoder())
        try:
            await applier.put(good)
            await applier.put(bad)
            with pytest.raises(error):
                await applier.finish()
            assert applier.error is not None
            await applier.put(_body({"after.txt": b"dropped"}))  # nothing is applied after an error
            return writer, applier
        finally:
            applier.stop()

    (tmp_path / "ws").mkdir()
    writer, _ = asyncio.run(upload())
    assert writer.applied == 1
    assert _names(tmp_path / "ws") == {"a.txt"}
    assert not (tmp_path / "escape.txt").exists()


def test_a_refused_write_reports_its_path(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "blocker").write_text("a file where a folder is needed")

    async def upload() -> None:
        applier = BatchApplier(WorkspaceWriter(Workspace(tmp_path / "ws")), BatchDecoder())
        try:
            await applier.put(_body({"blocker/inside.txt": b"x"}))
            with pytest.raises(BadPath, match="not a directory") as refused:
                await applier.finish()
            assert refused.value.path == "blocker/inside.txt"
        finally:
            applier.stop()

    asyncio.run(upload())


def test_stopping_mid_file_leaves_nothing_half_written(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    whole = encode_entry(PutFile("big.bin", 0o644, MTIME, len(data)), data)

    async def upload() -> None:
        applier = BatchApplier(WorkspaceWriter(Workspace(tmp_path)), BatchDecoder())
        try:
            await applier.put(_body({"small.txt": b"done"}))
            await applier.put(whole[: len(whole) // 2])  # the client goes away here
            await wait_until_async(
                lambda: not applier._chunks and (tmp_path / "small.txt").exists(),
                timeout=10,
                message="the writer to take both chunks",
            )
        finally:
            applier.stop()

    asyncio.run(upload())
    assert _names(tmp_path) == {"small.txt"}
    assert not any(name.startswith(TEMP_PREFIX) for name in os.listdir(tmp_path))


def test_closing_waits_for_the_writer_without_blocking_the_loop(tmp_path: Path) -> None:
    """The client goes away while the writer removes a big folder: the event loop keeps serving."""
    big = tmp_path / "old"
    for n in range(20):
        (big / f"d{n}").mkdir(parents=True)
        for m in range(400):
            (big / f"d{n}" / f"f{m}").touch()

    async def upload() -> float:
        applier = BatchApplier(WorkspaceWriter(Workspace(tmp_path)), BatchDecoder())
        worst = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                before = loop.time()
                await asyncio.sleep(0.001)
                worst = max(worst, loop.time() - before)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        await applier.put(encode_entry(Delete("old")))
        await wait_until_async(lambda: not applier._chunks, timeout=10, message="the writer to take the delete")
        assert big.exists()
        await applier.aclose()  # while the writer is still deleting
        stop.set()
        await task
        return worst

    worst = asyncio.run(upload())
    assert not big.exists()
    assert all(thread.name != "batch-writer" for thread in threading.enumerate())
    assert worst < 0.05, f"the event loop stalled for {worst * 1000:.0f} ms"


class _CountingWriter(WorkspaceWriter):
    """A real writer that records how many appliers were inside ``feed`` at once."""

    inside = 0
    most = 0
    guard = threading.Lock()

    def feed(self, decoder: BatchDecoder, chunk: bytes) -> None:
        with _CountingWriter.guard:
            _CountingWriter.inside += 1
            _CountingWriter.most = max(_CountingWriter.most, _CountingWriter.inside)
        try:
            threading.Event().wait(0.002)  # long enough for the other applier to try its turn
            super().feed(decoder, chunk)
        finally:
            with _CountingWriter.guard:
                _CountingWriter.inside -= 1


def test_uploads_sharing_a_turn_never_write_at_once(tmp_path: Path) -> None:
    turn = threading.Lock()
    bodies = {name: _body({f"{name}/f{i}.txt": os.urandom(2000) for i in range(60)}) for name in ("left", "right")}

    async def upload(name: str) -> WorkspaceWriter:
        writer = _CountingWriter(Workspace(tmp_path))
        applier = BatchApplier(writer, BatchDecoder(), turn=turn)
        try:
            for piece in _pieces(bodies[name], 3000):
                await applier.put(piece)
                await asyncio.sleep(0)  # let the other upload put its chunks meanwhile
            await applier.finish()
        finally:
            await applier.aclose()
        return writer

    async def both() -> list[WorkspaceWriter]:
        return list(await asyncio.gather(upload("left"), upload("right")))

    _CountingWriter.most = 0
    writers = asyncio.run(both())
    assert [writer.written for writer in writers] == [60, 60]
    assert _CountingWriter.most == 1, "one chunk at a time across the two uploads"
    assert len(_names(tmp_path / "left")) == len(_names(tmp_path / "right")) == 60


def test_an_upload_waiting_for_its_turn_stops_at_once(tmp_path: Path) -> None:
    # Another upload is writing (it holds the turn, as during a long delete): stopping this one
    # must not wait for that, and must not apply the chunk it was waiting to write.
    turn = threading.Lock()

    async def upload() -> tuple[float, WorkspaceWriter]:
        writer = WorkspaceWriter(Workspace(tmp_path))
        applier = BatchApplier(writer, BatchDecoder(), turn=turn)
        await applier.put(_body({"waiting.txt": b"never written\n"}))
        # The writer thread took the chunk: it now waits for the turn.
        await wait_until_async(lambda: not applier._chunks, timeout=10, message="the writer to take the chunk")
        started = time.monotonic()
        await applier.aclose()
        return time.monotonic() - started, writer

    with turn:
        waited, writer = asyncio.run(upload())
    assert waited < 1.0, f"stop waited {waited:.2f} s for the other upload's turn"
    assert writer.written == 0 and not (tmp_path / "waiting.txt").exists()
    assert all(thread.name != "batch-writer" for thread in threading.enumerate())
