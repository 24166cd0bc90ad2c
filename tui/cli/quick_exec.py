"""`yard dev exec` on the standard-library fast path (see :mod:`tui.cli.quick`): a command
round trip should cost a round trip, not the CLI's imports."""

from __future__ import annotations

import json
import struct
import sys

from tui.cli.quick import CONNECTION_LOST, CommandFailed, Http, parse, profile, read_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# The exec frame header of devserver/frames.py (kind byte + big-endian length), decoded here
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
    chosen = profile()
    if chosen is None or not chosen[0].startswith("http://") or not command or not command[0].strip():
        return None
    from tui.cli.project_name import default_project

    project = options.get("project") or default_project()
    if not project.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return None  # not a project name: let the full CLI say so
    http = Http(*chosen)
    servers = read_json(*http.request("GET", f"/devservers?project={project}"))
    server = servers[0] if servers else None
    if server is None:
        status, _ = http.request("GET", f"/projects/{project}")
        if status == 404:
            raise CommandFailed(
                f"Project {project} does not exist; create it with `yard projects add {project}`, "
                f"then `yard dev start -p {project}`."
            )
    if server is None or server.get("state") != "running":
        state_text = f"is {server['state']}" if server else "does not exist"
        raise CommandFailed(
            f"Your develop server for project {project} {state_text}; start it with `yard dev start -p {project}`."
        )
    timeout_s = None
    if "timeout" in options:
        try:
            timeout_s = float(options["timeout"])
        except ValueError:
            return None
    from tui.cli.exec_request import StdinTooLarge, exec_body

    try:
        body = exec_body(command, options.get("cwd"), timeout_s, "tty" in options, "no_stdin" not in options)
    except StdinTooLarge as exc:
        raise CommandFailed(str(exc)) from None
    status, stream = http.request("POST", f"/devservers/{server['id']}/exec", json.dumps(body).encode(), stream=True)
    if status >= 400:
        read_json(status, stream)
    from tui.cli.closed_pipe import exit_quietly, watch_stdout

    watch_stdout()  # `yard dev exec ... | head -1`: leave when the reader does (the command is stopped)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for kind, payload in frames(stream):
            if kind == b"o":
                out.write(payload)
                out.flush()
            elif kind == b"e":
                err.write(payload)
                err.flush()
            elif kind == b"!":
                err.write(b"error: " + payload + b"\n")
                err.flush()
            elif kind == b"x":
                return int(payload)
    except BrokenPipeError:
        exit_quietly()
    raise CommandFailed("The connection to the develop server was lost before the command finished.", CONNECTION_LOST)


def main(args: list[str]) -> int | None:
    """Exit code of the command, or None to let the full CLI handle these arguments."""
    try:
        return run(args)
    except CommandFailed as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130
