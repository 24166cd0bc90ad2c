"""The run pipeline with logs and artifacts in a real S3-compatible store (SeaweedFS)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from control.clock import utcnow
from control.logformat import raw_output
from control.schedules.scheduler import Scheduler
from tests.services.seaweedfs import S3Service
from tests.stack import Stack, running_agent, running_stack, wait_for_run


@pytest.fixture
def s3_stack(tmp_path: Path, database_url: str, s3_env: S3Service) -> Iterator[Stack]:
    url = f"s3://{s3_env.bucket}/runs-{uuid.uuid4().hex[:8]}"
    with (
        running_stack(tmp_path / "data", database_url, url, cancel_grace_s=1) as stack,
        running_agent(stack, tmp_path / "agent"),
    ):
        with stack.client() as admin:
            admin.create_project("demo")
        yield stack


def test_logs_artifacts_and_compaction_on_s3(s3_stack: Stack, tmp_path: Path) -> None:
    script = "for i in $(seq 1 200); do printf 'line %s \\033[1mbold\\033[0m\\n' $i; done; head -c 100000 /dev/urandom > blob.bin"
    with s3_stack.client() as client:
        run = client.create_run("demo", ["sh", "-c", script], artifacts=["*.bin"])
        followed = b""
        for event in client.follow_logs(run.id):
            if event.event == "chunk":
                followed += base64.b64decode(event.json()["data"])
            elif event.event == "end":
                assert event.json()["state"] == "succeeded"
        final = wait_for_run(client, run.id)
        stored, _ = client.read_logs(run.id)
        (artifact,) = client.list_artifacts(run.id)
        with open(tmp_path / "blob.bin", "wb") as handle:
            client.download_artifact(run.id, artifact.id, handle)
    expected = b"".join(b"line %d \x1b[1mbold\x1b[0m\n" % i for i in range(1, 201))
    assert final.state == "succeeded"
    assert raw_output(followed) == raw_output(stored) == expected
    assert hashlib.sha256((tmp_path / "blob.bin").read_bytes()).hexdigest() == artifact.sha256
    cleaner = Scheduler(
        s3_stack.services.engine, s3_stack.services.store, s3_stack.settings.model_copy(update={"compact_after_s": 0})
    )
    _, report = cleaner.clean(utcnow() + timedelta(seconds=1))
    assert report.compacted == [run.id]
    with s3_stack.client() as client:
        assert client.read_logs(run.id)[0] == stored
        assert raw_output(client.read_logs(run.id, tail=1)[0]) == b"line 200 \x1b[1mbold\x1b[0m\n"
