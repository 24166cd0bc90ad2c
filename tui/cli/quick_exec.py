"""`yard dev exec` on the standard-library fast path (see :mod:`tui.cli.quick`): a command
round trip should cost a round trip, not the CLI's imports. Without a running develop server
the full CLI takes over and says what to do; once a piped stdin has been read for the command,
problems are said here in the full CLI's words (control/reach.py, transport.refusal)."""

from __future__ import annotations

import json
import struct
import sys

from control.transport import Unreachable, refusal
from tui.cli.quick import Handover, Said, connect, parse, read

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# The exec frame header of control/wire/frames.py (kind byte + big-endian length), decoded here
# without that module's dataclass import.
FRAME = struct.Struct(">cI")
OPTIONS = {"-p": "project", "--project": "project", "--cwd": "cwd", "--timeout": "timeout"}
FLAGS = {"--tty": "tty", "--no-stdin": "no_stdin", "-n": "no_stdin"}


def frames(stream: Iterator[bytes]) -> Iterator[tuple[bytes, bytes]]:
    buffer = b""
    for piece in stream:
        buffer += piece
        while len(buffer) >= FRAME.size:
            kind, length = FRAME.unpack_from(buffer)
            end = FRAME.size + length
            if len(buffer) < end:
                break
            yield kind, buffer[FRAME.size : end]
            buffer = buffer[end:]


def run(args: list[str]) -> int | None:
    parsed = parse(args, OPTIONS, FLAGS)
    if parsed is None:
        return None
    options, command = parsed
    if not command or not command[0].strip():
        return None
    from tui.cli.project_name import default_project

    project = options.get("project") or default_project()
    if not project.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return None  # not a project name: let the full CLI say so
    timeout_s = None
    if "timeout" in options:
        try:
            timeout_s = float(options["timeout"])
        except ValueError:
            return None
    connection = connect()
    servers = read(connection, "GET", f"/devservers?project={project}")
    if not servers or servers[0].get("state") != "running":
        raise Handover  # the full CLI says how to create or start it
    from tui.cli.exec_request import StdinTooLarge, exec_body

    # exec_body reads a piped stdin: from here on nothing is handed over (the full CLI would
    # find stdin spent), and what goes wrong is said here, in the full CLI's words.
    try:
        body = exec_body(command, options.get("cwd"), timeout_s, "tty" in options, "no_stdin" not in options)
    except StdinTooLarge as exc:
        raise Said(str(exc)) from None
    status, stream = connection.stream("POST", f"/api/v1/devservers/{servers[0]['id']}/exec", json.dumps(body).encode())
    if status >= 400:
        raise Said(refusal(status, b"".join(stream))[1])
    from tui.cli.closed_pipe import exit_quietly, watch_stdout
    from tui.cli.exec_output import write_exec_frames

    watch_stdout()  # `yard dev exec ... | head -1`: leave when the reader does (the command is stopped)
    try:
        return write_exec_frames(frames(stream))
    except BrokenPipeError:
        exit_quietly()


def main(args: list[str]) -> int | None:
    """Exit code of the command, or None to let the full CLI handle these arguments."""
    try:
        return run(args)
    except Handover:
        return None
    except (Unreachable, Said) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
