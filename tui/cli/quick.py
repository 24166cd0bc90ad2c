"""The standard-library fast paths of the CLI (`yard run`, `yard dev exec`, `yard sync`):
shared pieces.

The full CLI spends ~0.3 s importing Typer, Rich and httpx before it sends anything; for the
plain, common forms of these three commands that is most of their run time (figures in
docs/benchmarks.md). The fast paths talk to the API through :mod:`control.transport` (the run
worker's client) and choose the profile with :mod:`control.profiles`, as the full CLI does.

They word no problem of their own. Whatever they do not cover exactly (``--help``, an option
they do not know, a profile problem, an error answer or no connection before the work has
started) raises :class:`Handover`, and the full CLI takes the same arguments from the start and
says what is wrong. Once the work has started, what they print comes from the modules the full
CLI prints it with (:mod:`tui.cli.logs`, :mod:`tui.cli.outcome`, :mod:`tui.cli.sync_common`).
"""

from __future__ import annotations

import json

from control.transport import Connection, Unreachable

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms of every call
if TYPE_CHECKING:
    from typing import Any


class Handover(Exception):
    """Nothing has been done yet: the full CLI takes these arguments from the start."""


class Said(Exception):
    """A problem after the point of no handover, worded as the full CLI words it; exit 1."""


def parse(
    args: list[str], known: dict[str, str], flags: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]] | None:
    """Options (``known`` take a value, ``flags`` do not) and the command after ``--``, or None
    when this is not the plain form."""
    flags = flags or {}
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if arg in flags:
            options[flags[arg]] = arg
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name not in known:
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 1
        options[known[name]] = value
        i += 1
    return None


def connect() -> Connection:
    """A connection to the API of the profile the full CLI would use."""
    from control.profiles import ProfileProblem, resolve

    try:
        chosen = resolve()
    except ProfileProblem:
        raise Handover from None
    from control import renewal
    from control.trust import TrustProblem

    if renewal.due(chosen):  # a single sign-on token about to expire: renew it as the full CLI would
        try:
            chosen = renewal.renew(chosen)
        except renewal.SessionEnded:
            raise Handover from None
    try:
        # The profile's pin or CA file, or OpenSSL's default paths (the system store on Linux).
        return Connection(chosen.url, chosen.token, trust=chosen.trust)
    except (ValueError, TrustProblem):  # a URL or a plain-HTTP refusal the full CLI explains
        raise Handover from None


def read(connection: Connection, method: str, path: str, body: Any = None) -> Any:
    """The JSON answer to a request that changes nothing when it fails (a read, or a request
    the API refused); anything but a 2xx answer is a :class:`Handover`."""
    payload = None if body is None else json.dumps(body).encode()
    try:
        status, data = connection.call(
            method, "/api/v1" + path, payload, content_type="application/json" if payload else None
        )
    except Unreachable:
        raise Handover from None
    if status >= 400:
        raise Handover
    return json.loads(data or b"null")
