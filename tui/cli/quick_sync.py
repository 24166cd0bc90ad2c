"""`yard sync` on the standard-library fast path (see :mod:`tui.cli.quick`).

Covers ``yard sync [PATH] [-p P] [--json]`` when nothing changed since a sync that found nothing
to do: the engine's own no-change check (:mod:`sync.unchanged`) answers that in about the time of
``git status``, but the full CLI spends ~0.35 s importing Typer, Rich, httpx, pygit2 and the
engine before it starts. Here the develop server is found with one request, the check runs with
a HEAD read from the repository's files (:mod:`sync.githead`), and the summary and status file
are the ones the engine and the full command write. Anything else — another option, an
``https://`` profile, a develop server that is not running, a tree, workspace or HEAD that
changed or cannot be compared, any error — returns None: the full CLI then syncs (or says what
is wrong), so both paths behave the same to the user.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tui.cli.quick import Handover, connect, read

OPTIONS = {"-p", "--project"}
FLAGS = {"--json"}


def parse(args: list[str]) -> tuple[str | None, str | None, bool] | None:
    """``(path, project, as_json)`` for the plain form, else None."""
    path = project = None
    as_json = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in FLAGS:
            as_json = True
        elif arg in OPTIONS or arg.startswith("--project="):  # not "-p=X": Click reads "=X" there
            value = arg.partition("=")[2]
            if arg in OPTIONS:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            if value.startswith("-"):
                return None  # let the option parser decide what this means
            project = value
        elif arg.startswith("-") or not arg or path is not None:
            return None  # other options, "--", an empty PATH, a second PATH
        else:
            path = arg
        i += 1
    return path, project, as_json


def printable(text: str) -> bool:
    """Whether Rich prints ``text`` as it is: no control character (Rich drops them), no tab
    (expanded) and no colon (``:name:`` may be an emoji code)."""
    return text.isprintable() and ":" not in text


def run(args: list[str]) -> int | None:
    parsed = parse(args)
    if parsed is None:
        return None
    path, project, as_json = parsed
    connection = connect()
    url, token = connection.url, connection.token or ""  # the URL as control.client.ControlClient keeps it
    from tui.cli.sync_common import find_tree

    root = find_tree(Path(path) if path is not None else None)
    if isinstance(root, str) or not printable(os.fspath(root)):
        return None  # the full CLI says what is wrong with PATH
    from tui.cli.project_name import default_project

    name = project or default_project(os.fspath(root))
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return None
    try:
        servers = read(connection, "GET", f"/devservers?project={name}")
    finally:
        connection.close()
    server = servers[0] if isinstance(servers, list) and servers else None
    if not isinstance(server, dict) or server.get("state") != "running":
        return None  # the full CLI says how to start it
    server_id, workspace = int(server["id"]), str(server["workspace"])

    from sync import unchanged
    from sync.githead import read_head
    from sync.state import state_dir
    from sync.status import about, write_status

    read_head(root)  # raises UnknownHead before the walk for a repository only pygit2 reads
    directory = state_dir(url, workspace, root)
    started = time.perf_counter()
    outcome = unchanged.check(root, directory, url, token, server_id, lambda: read_head(root), connection.trust)
    report = outcome.report
    if report is None:
        return None
    report.seconds = time.perf_counter() - started
    write_status(directory, **about(root, server_id, workspace, url), conflicts=0, refused=0)

    from tui.cli.sync_common import document, synced_line

    if as_json:  # as tui.cli.output.print_json writes it
        sys.stdout.write(json.dumps(document(report, root, name, server["id"]), indent=2, default=str) + "\n")
    else:
        sys.stdout.write(synced_line(report, root, server["id"]) + "\n")
    return 0


def main(args: list[str]) -> int | None:
    """0 when the fast path synced (nothing to do), or None to let the full CLI handle ``args``."""
    from sync.githead import UnknownHead

    try:
        return run(args)
    except (Handover, OSError, ValueError, KeyError, TypeError, UnknownHead):
        return None
    except KeyboardInterrupt:
        return 130
