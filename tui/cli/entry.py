"""The `yard` console script. `yard dev exec` tries a standard-library fast path first (see
:mod:`tui.cli.quick_exec`); everything else loads the full Typer CLI."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:2] == ["dev", "exec"]:
        from tui.cli import quick_exec

        code = quick_exec.main(args[2:])
        if code is not None:
            sys.exit(code)
    from tui.cli.main import main as full_cli

    full_cli()
