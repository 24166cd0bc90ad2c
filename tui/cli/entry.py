"""The `yard` console script. `yard dev exec` and `yard run` try a standard-library fast path
first (see :mod:`tui.cli.quick`); everything else loads the full Typer CLI."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    code = None
    if args[:2] == ["dev", "exec"]:
        from tui.cli import quick_exec

        code = quick_exec.main(args[2:])
    elif args[:1] == ["run"]:
        from tui.cli import quick_run

        code = quick_run.main(args[1:])
    if code is not None:
        sys.exit(code)
    from tui.cli.main import main as full_cli

    full_cli()
