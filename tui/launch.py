"""A fast path into the TUI for the ``yard`` console script.

``yard``, ``yard tui``, ``yard tui --read-only`` and the same with ``--profile NAME`` (or
``-p NAME``) in front only open the TUI, so they need neither Typer nor the other commands'
modules: importing those costs about 150 ms of a start-up whose target is 500 ms. :func:`main`
recognises exactly those argument lists (anything else returns None: let the full CLI parse it)
and says an expected problem (no profile, a bad tui.toml) in one sentence, as the CLI would.
Only the standard library is imported here.
"""

from __future__ import annotations

import sys

TUI_OPTIONS = {"--read-only"}


def parse(args: list[str]) -> tuple[str | None, bool] | None:
    """``(profile, read_only)`` when ``args`` only ask for the TUI, else None."""
    rest = list(args)
    profile = None
    if rest[:1] in (["--profile"], ["-p"]):
        if len(rest) < 2 or rest[1].startswith("-"):
            return None
        profile, rest = rest[1], rest[2:]
    elif rest and rest[0].startswith("--profile="):
        profile, rest = rest[0].split("=", 1)[1], rest[1:]
    if not rest:
        return profile, False
    if rest[0] != "tui" or not set(rest[1:]) <= TUI_OPTIONS:
        return None
    return profile, "--read-only" in rest[1:]


def terminal_problem() -> str | None:
    """One sentence when the TUI cannot work here: without a terminal on stdin and stdout it
    would write escape codes into a file or pipe forever (`yard </dev/null >out` in a script)."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return None
    return (
        "The TUI needs a terminal (stdin and stdout are not one); "
        "in scripts use the commands instead (`yard --help` lists them)."
    )


def _skip_httpx_command_line() -> None:
    """``import httpx`` also imports its command-line tool (``httpx._main``: click, rich's
    syntax highlighting, pygments) just to expose ``httpx.main``, which the TUI never calls. A
    stand-in saves those imports; only ``httpx.main`` itself would be affected."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    import types

    stand_in = types.ModuleType("httpx._main")
    stand_in.main = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stand_in


def main(args: list[str]) -> int | None:
    """Run the TUI for ``args`` and return the exit code, or None when ``args`` are for the CLI."""
    parsed = parse(args)
    if parsed is None:
        return None
    profile, read_only = parsed
    problem = terminal_problem()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    _skip_httpx_command_line()
    from control.profiles import ProfileProblem
    from tui.app import run_app

    try:
        run_app(profile, read_only=read_only)
    except ProfileProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
