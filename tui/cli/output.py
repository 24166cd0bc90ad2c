"""Rendering for the CLI: JSON for scripts, Rich tables for people, one-sentence errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Not a terminal (a pipe, a file): nothing to fit, so lines and tables keep their full width
# instead of Rich's 80 columns (`yard doctor | cat` cut every detail). COLUMNS still wins.
PIPE_WIDTH = 10_000


def _console(stderr: bool = False) -> Console:
    # No emoji codes: a fingerprint (SHA256:AB:CD:...) or a path with colons must print as it is.
    out = Console(stderr=stderr, emoji=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


console = _console()
errors = _console(stderr=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout and nothing else; wire models as the API sent them."""
    sys.stdout.write(json.dumps(to_jsonable_python(data, fallback=str), indent=2) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def humanize(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        # Year and UTC offset: "12-07 01:30:00" said neither which year nor which zone.
        return value.astimezone().isoformat(sep=" ", timespec="seconds")
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            return datetime.fromisoformat(value).astimezone().isoformat(sep=" ", timespec="seconds")
        except ValueError:
            return value
    if isinstance(value, (list, dict)):
        return json.dumps(value) if value else "-"
    return str(value)


HEADERS = {
    "exit_code": "EXIT",
    "duration_s": "SECS",
    "queued_at": "QUEUED",
    "created_at": "CREATED",
    "last_used_at": "USED",
    "expires_at": "EXPIRES",
    "revoked_at": "REVOKED",
    "restart_count": "RESTARTS",
    "last_activity_at": "ACTIVE",
}


Row = BaseModel | dict[str, Any]


def field(row: Row, name: str) -> Any:
    """A column's value: a wire model's attribute or a dict's key (None when absent)."""
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def table(rows: Iterable[Row], columns: Sequence[str], title: str | None = None) -> None:
    """A borderless table; every column keeps its natural width and the last one is cut to fit."""
    headers = [HEADERS.get(c, c.replace("_", " ").upper()) for c in columns]
    cells = [[humanize(field(row, c)) for c in columns] for row in rows]
    widths = [max([len(h), *(len(line[i]) for line in cells)]) for i, h in enumerate(headers)]
    room = console.width - sum(widths[:-1]) - 2 * (len(columns) - 1)
    last_width = max(8, min(widths[-1], room))
    grid = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for index, header in enumerate(headers):
        width = last_width if index == len(headers) - 1 else widths[index]
        grid.add_column(header, no_wrap=True, overflow="ellipsis", width=width)
    for line in cells:
        grid.add_row(*line)
    console.print(grid)


def details(row: Row, keys: Sequence[str] | None = None) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    names = keys or (list(row) if isinstance(row, dict) else list(type(row).model_fields))
    for key in names:
        grid.add_row(key.replace("_", " "), humanize(field(row, key)))
    console.print(grid)
