"""The `yard` console script. `yard dev exec`, `yard run` and `yard sync` try a standard-library
fast path first (see :mod:`tui.cli.quick`), `yard` / `yard tui` open the TUI without Typer
(:mod:`tui.launch`); everything else loads the full Typer CLI."""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    code = None
    if "_YARD_COMPLETE" in os.environ:
        pass  # shell completion (the words are in the environment, argv is empty): Typer answers
    elif args[:2] == ["dev", "exec"]:
        from tui.cli import quick_exec

        code = quick_exec.main(args[2:])
    elif args[:1] == ["run"]:
        from tui.cli import quick_run

        code = quick_run.main(args[1:])
    elif args[:1] == ["sync"]:
        from tui.cli import quick_sync

        code = quick_sync.main(args[1:])
    elif not args or args[0] in ("tui", "-p", "--profile") or args[0].startswith("--profile="):
        from tui import launch  # the TUI without Typer (tui/launch.py)

        code = launch.main(args)
    if code is not None:
        sys.exit(code)
    from tui.cli.main import main as full_cli

    full_cli()
