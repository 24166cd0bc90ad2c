"""`yard run` on the standard-library fast path (see :mod:`tui.cli.quick`).

Covers ``yard run [-p P] [-e E] [--timeout S] [--cwd D] [--in-devserver|--no-devserver] [--tty] [--raw] -- CMD``:
create the run, follow its log as a binary frame stream, print it byte for byte and exit with the
run's exit code — what the full command does, without ~0.25 s of imports in front of every run.
Ctrl-C hands over to the full CLI, which asks whether to cancel the run or detach.
"""

from __future__ import annotations

import json
import sys
import time

from tui.cli.quick import CommandFailed, Http, Unreachable, parse, profile, read_json
from tui.cli.run_outcome import exit_code_of, sentence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from tui.cli.logs import LogPrinter

OPTIONS = {
    "-p": "project",
    "--project": "project",
    "-e": "env",
    "--env": "env",
    "--timeout": "timeout",
    "--cwd": "cwd",
}
FLAGS = {"--in-devserver": "devserver", "--no-devserver": "devserver", "--tty": "tty", "--raw": "raw"}
FOLLOW_RETRY_S = 30.0


def frames(stream: Iterator[bytes]) -> Iterator[tuple[bytes, int, bytes]]:
    """``(event, seq, payload)`` from the ``format=frames`` log stream (see run_logs.py)."""
    buffer = b""
    for piece in stream:
        buffer += piece
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            event, size, seq, _lines = buffer[:newline].split()
            end = newline + 1 + int(size)
            if len(buffer) < end:
                break
            payload = buffer[newline + 1 : end]
            buffer = buffer[end:]
            if event != b"keepalive":
                yield event, int(seq), payload


def follow(url: str, token: str, run_id: int, printer: LogPrinter) -> dict[str, Any]:
    """Print the log until the run ends, reconnecting for up to 30 s when the API goes away."""
    deadline = None
    while True:
        try:
            http = Http(url, token)
            path = f"/runs/{run_id}/logs?follow=true&format=frames&from_seq={printer.next_seq}"
            status, stream = http.request("GET", path, stream=True)
            if status >= 400:
                read_json(status, stream)
            for event, seq, payload in frames(stream):
                deadline = None
                if event == b"chunk":
                    printer.write_chunk(seq, payload)
                elif event == b"error":
                    raise CommandFailed(str(json.loads(payload).get("message", "The log stream failed.")))
                elif event == b"end":
                    # A fresh connection: the stream's own is left mid-body.
                    result: dict[str, Any] = read_json(*Http(url, token).request("GET", f"/runs/{run_id}"))
                    return result
        except (OSError, ValueError, Unreachable):
            pass  # the API went away (restart, network): resume from the next chunk
        deadline = deadline or time.monotonic() + FOLLOW_RETRY_S
        if time.monotonic() > deadline:
            raise CommandFailed(
                f"Lost the devyard API at {url} while following run {run_id}; `yard runs logs {run_id} -f` resumes."
            )
        time.sleep(0.5)


def run(args: list[str]) -> int | None:
    parsed = parse(args, OPTIONS, FLAGS)
    if parsed is None:
        return None
    options, command = parsed
    chosen = profile()
    if chosen is None or not chosen[0].startswith("http://") or not command or not command[0].strip():
        return None
    from tui.cli.project_name import default_project

    project = options.get("project") or default_project()
    body: dict[str, Any] = {"project": project, "command": command, "trigger": "manual"}
    if "env" in options:
        body["environment"] = options["env"]
    if "cwd" in options:
        body["cwd"] = options["cwd"]
    if "devserver" in options:
        body["in_devserver"] = options["devserver"] == "--in-devserver"
    from tui.cli.logs import LogPrinter, renders, tty_fields

    body.update(tty_fields("tty" in options))
    if "timeout" in options:
        if not options["timeout"].isdigit() or int(options["timeout"]) < 1:
            return None  # the full CLI words the bad value
        body["timeout_s"] = int(options["timeout"])
    url, token = chosen
    status, stream = Http(url, token).request("POST", "/runs", json.dumps(body).encode())
    try:
        created = read_json(status, stream)
    except CommandFailed as exc:
        if status == 404 and exc.message.startswith(f"Project {project} "):
            raise CommandFailed(
                f"Project {project} does not exist; create it with `yard projects add {project}` or pass --project."
            ) from None
        raise
    from tui.cli.closed_pipe import watch_stdout

    run_id = int(created["id"])
    printer = LogPrinter(render=renders("raw" in options))
    watch_stdout()  # `yard run ... | head -1`: leave when the reader does; the run goes on
    try:
        final = follow(url, token, run_id, printer)
    except KeyboardInterrupt:
        from tui.cli.runs import resume_after_interrupt

        return resume_after_interrupt(run_id, printer)
    if final["state"] != "succeeded":
        sys.stderr.write(sentence(final) + "\n")
    return exit_code_of(final)


def main(args: list[str]) -> int | None:
    """Exit code of the run, or None to let the full CLI handle these arguments."""
    try:
        return run(args)
    except CommandFailed as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.code
