"""``GET /logs`` and the tail reader."""

from __future__ import annotations

from pathlib import Path

import httpx

from devserver.logs import tail
from tests.devserver.conftest import RunningServer, run


def test_tail_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    text, end = tail(log, 3)
    assert text == b"line 99997\nline 99998\nline 99999\n"
    assert end == log.stat().st_size
    assert tail(log, 0)[0] == b""
    short = tmp_path / "short"
    short.write_bytes(b"a\nb")
    assert tail(short, 10)[0] == b"a\nb"


def test_logs_endpoint_has_one_line_per_operation(client: httpx.Client, server: RunningServer) -> None:
    run(client, ["true"])
    response = client.get("/logs", params={"tail": 5})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert 1 <= len(lines) <= 5
    assert any("exec true" in line and "exit 0" in line for line in lines)
    assert client.get("/logs", params={"tail": 10_001}).status_code == 400


def test_follow_streams_new_lines(client: httpx.Client, server: RunningServer) -> None:
    with client.stream("GET", "/logs", params={"tail": 0, "follow": "true"}) as response:
        run(client, ["sh", "-c", "exit 7"])
        seen = ""
        for chunk in response.iter_text():
            seen += chunk
            if "exit 7" in seen:
                break
    assert "exec sh" in seen
