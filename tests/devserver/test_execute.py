"""``POST /exec`` against a real server: streaming, exit codes, timeouts, hang-ups."""

from __future__ import annotations

import signal
import time

import httpx

from control.wire import frames
from tests.devserver.conftest import RunningServer, run, wait_gone


def test_stdout_and_stderr_keep_their_order(client: httpx.Client) -> None:
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done"
    result = run(client, ["sh", "-c", script])
    assert result.code == 0
    assert result.stdout == b"out1\nout2\nout3\n"
    assert result.stderr == b"err1\nerr2\nerr3\n"


def test_exit_codes(client: httpx.Client) -> None:
    assert run(client, ["true"]).code == 0
    assert run(client, ["sh", "-c", "exit 3"]).code == 3


def test_killed_by_a_signal_is_128_plus_n(client: httpx.Client) -> None:
    assert run(client, ["sh", "-c", "kill -KILL $$"]).code == 128 + signal.SIGKILL
    assert run(client, ["sh", "-c", "kill -TERM $$"]).code == 128 + signal.SIGTERM


def test_timeout_is_124_and_stops_the_command(client: httpx.Client) -> None:
    started = time.monotonic()
    result = run(client, ["sh", "-c", "echo $$; sleep 30"], timeout_s=0.5)
    assert result.code == 124
    assert result.errors == ["Timed out: sh ran longer than 0.5 s and was stopped."]
    assert time.monotonic() - started < 5
    assert wait_gone(int(result.stdout.split()[0]))


def test_command_not_found_is_127_with_an_error_frame(client: httpx.Client) -> None:
    result = run(client, ["definitely-not-a-command-xyz"])
    assert result.code == 127
    assert result.errors and "not found" in result.errors[0]
    assert [f.kind for f in result.frames] == [frames.ERROR, frames.EXIT]


def test_stdin_env_and_cwd(client: httpx.Client) -> None:
    result = run(client, ["sh", "-c", 'cat; echo "$GREETING"'], stdin="from stdin\n", env={"GREETING": "hi"})
    assert result.stdout == b"from stdin\nhi\n"
    assert run(client, ["cat"]).stdout == b""  # no stdin: EOF at once, no hang


def test_output_streams_before_the_command_exits(client: httpx.Client) -> None:
    with client.stream("POST", "/exec", json={"argv": ["sh", "-c", "echo first; sleep 2; echo second"]}) as response:
        started = time.monotonic()
        decoder = frames.FrameDecoder()
        for chunk in response.iter_raw():
            got = list(decoder.feed(chunk))
            if any(f.payload == b"first\n" for f in got):
                break
        assert time.monotonic() - started < 1.5


def test_client_disconnect_kills_the_process_group(server: RunningServer) -> None:
    argv = ["sh", "-c", "sleep 60 & echo $$ $!; wait"]
    decoder = frames.FrameDecoder()
    with server.client() as own, own.stream("POST", "/exec", json={"argv": argv}) as response:
        first = next(frame for chunk in response.iter_raw() for frame in decoder.feed(chunk))
    # Leaving the block closed the connection mid-stream.
    shell_pid, sleep_pid = (int(part) for part in first.payload.split())
    assert wait_gone(shell_pid) and wait_gone(sleep_pid)


def test_big_output_arrives_complete(client: httpx.Client) -> None:
    result = run(client, ["sh", "-c", "head -c 5000000 /dev/zero"])
    assert result.code == 0 and len(result.stdout) == 5_000_000


def test_short_commands_answer_within_milliseconds(client: httpx.Client) -> None:
    # A regression guard for Nagle/delayed-ACK stalls (~40 ms per response) and slow spawning.
    timings = []
    for _ in range(11):
        started = time.perf_counter()
        assert run(client, ["true"]).code == 0
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[5] < 0.025, f"median exec round trip {sorted(timings)[5] * 1000:.1f} ms"
