"""`yard run` on the standard-library fast path (see :mod:`tui.cli.quick`).

Covers ``yard run [-p P] [-e E] [--timeout S] [--cwd D] [--ref R|--workspace|--no-checkout] [--tty] [--raw] -- CMD``:
create the run, follow its log as a binary frame stream, print it byte for byte and exit with the
run's exit code, without ~0.25 s of imports in front of every run. Anything else goes to the full
CLI: before the run exists, the whole command; once it exists, the rest of the follow (the API
went away, Ctrl-C's cancel-or-detach question, the retries of a failed run).
"""

from __future__ import annotations

import json
import sys

from control.transport import Unreachable
from tui.cli.quick import Handover, connect, parse, read

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
    "--ref": "ref",
}
FLAGS = {
    "--in-devserver": "devserver",
    "--no-devserver": "devserver",
    "--workspace": "workspace",
    "--no-checkout": "no_checkout",
    "--tty": "tty",
    "--raw": "raw",
}


class FollowLost(Exception):
    """The fast follow stopped before the run's end; the full CLI's follow takes over."""


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


def follow(run_id: int, printer: LogPrinter) -> dict[str, Any]:
    """Print the log until the run ends; the run then. :class:`FollowLost` on anything else."""
    connection = connect()
    path = f"/api/v1/runs/{run_id}/logs?follow=true&format=frames&from_seq={printer.next_seq}"
    try:
        status, stream = connection.stream("GET", path)
        if status >= 400:
            raise FollowLost
        for event, seq, payload in frames(stream):
            if event == b"chunk":
                printer.write_chunk(seq, payload)
            elif event == b"end":
                result: dict[str, Any] = read(connection, "GET", f"/runs/{run_id}")
                return result
            else:  # an error frame: the full follow says it
                raise FollowLost
    except BrokenPipeError:  # `yard run ... | head -1`: the reader left; the run goes on
        from tui.cli.closed_pipe import exit_quietly

        exit_quietly()
    except (Unreachable, Handover, ValueError, OSError):
        raise FollowLost from None
    raise FollowLost  # the stream ended without its end frame


def run(args: list[str]) -> int | None:
    parsed = parse(args, OPTIONS, FLAGS)
    if parsed is None:
        return None
    options, command = parsed
    if not command or not command[0].strip():
        return None
    from tui.cli.project_name import default_project

    body: dict[str, Any] = {
        "project": options.get("project") or default_project(),
        "command": command,
        "trigger": "manual",
    }
    if "env" in options:
        body["environment"] = options["env"]
    if "cwd" in options:
        body["cwd"] = options["cwd"]
    if "devserver" in options:
        body["in_devserver"] = options["devserver"] == "--in-devserver"
    if sum(key in options for key in ("ref", "workspace", "no_checkout")) > 1:
        return None  # the full CLI words the conflict
    if "ref" in options:
        body["ref"] = options["ref"]
    if "workspace" in options or "no_checkout" in options:
        body["code"] = "workspace" if "workspace" in options else "none"
    if "timeout" in options:
        if not options["timeout"].isdigit() or int(options["timeout"]) < 1:
            return None  # the full CLI words the bad value
        body["timeout_s"] = int(options["timeout"])
    from tui.cli.logs import LogPrinter, renders, tty_fields

    body.update(tty_fields("tty" in options))
    connection = connect()
    try:
        status, answer = connection.call(
            "POST", "/api/v1/runs", json.dumps(body).encode(), content_type="application/json"
        )
    except Unreachable as exc:
        if not exc.sent:
            raise Handover from None
        raise  # sent, and no answer: the run may exist, so no second request (main says it)
    if status >= 400:
        raise Handover  # refused: nothing was created, and the full CLI says why
    connection.close()
    created = json.loads(answer)
    from tui.cli.closed_pipe import watch_stdout

    run_id = int(created["id"])
    printer = LogPrinter(render=renders("raw" in options))
    watch_stdout()  # `yard run ... | head -1`: leave when the reader does; the run goes on
    try:
        final = follow(run_id, printer)
    except KeyboardInterrupt:
        from tui.cli.runs import resume_after_interrupt

        return resume_after_interrupt(run_id, printer)
    except FollowLost:
        from tui.cli.runs import finish_following

        return finish_following(run_id, printer)
    if final["state"] != "succeeded" and final["attempt"] <= final["max_retries"]:
        from control.wire.runs import RunOut
        from tui.cli.runs import finish_following

        return finish_following(run_id, printer, RunOut.model_validate(final))  # the retries to follow
    if final["state"] != "succeeded":
        from tui.cli.run_outcome import sentence

        sys.stderr.write(sentence(final) + "\n")
    from tui.cli.run_outcome import exit_code_of

    return exit_code_of(final)


def main(args: list[str]) -> int | None:
    """Exit code of the run, or None to let the full CLI handle these arguments."""
    try:
        return run(args)
    except Handover:
        return None
    except Unreachable as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
