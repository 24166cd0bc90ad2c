"""The user's terminal wired to a PTY on the develop server over a WebSocket (`yard dev shell`).

Raw mode while connected (restored on every way out), stdin bytes go up as binary messages,
output comes down as binary messages, a window resize is sent as a JSON text message. The
server ends with ``{"type": "exit", "code": N}``; a connection that drops without it means the
control API or the develop server went away, and the user is told so.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import ssl
import sys
import threading
from typing import Any

STDIN_CHUNK = 64 * 1024


class ShellLost(Exception):
    """The connection ended before the shell did; one sentence for the user."""


def _size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.columns, size.lines


def open_shell(url: str, headers: dict[str, str], ssl_context: ssl.SSLContext | None = None) -> int:
    """Run an interactive session until the remote shell exits; returns its exit code.
    ``ssl_context``: for a ``wss://`` URL, the API client's (its pin or CA file)."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
    from websockets.sync.client import connect

    cols, rows = _size()
    try:
        tls: dict[str, Any] = {"ssl": ssl_context} if url.startswith("wss://") and ssl_context else {}
        ws = connect(
            f"{url}?cols={cols}&rows={rows}", additional_headers=headers, max_size=None, open_timeout=10, **tls
        )
    except InvalidStatus as exc:
        raise ShellLost(_refusal(exc.response.status_code, exc.response.body)) from exc
    except (OSError, TimeoutError, InvalidURI) as exc:
        from control.reach import certificate_refused

        refused = certificate_refused(exc)
        if refused is not None:
            raise ShellLost(f"Refusing the devyard API for a shell: {refused}.") from exc
        raise ShellLost(f"Cannot reach the devyard API for a shell ({exc}).") from exc
    result: dict[str, Any] = {}
    done = threading.Event()

    def downstream() -> None:
        out = sys.stdout.buffer
        try:
            for message in ws:
                if isinstance(message, bytes):
                    out.write(message)
                    out.flush()
                else:
                    event = json.loads(message)
                    if event.get("type") == "exit":
                        result["code"] = int(event.get("code", 0))
        except ConnectionClosed:
            pass
        finally:
            done.set()

    stdin = sys.stdin.fileno()
    tty_state = None
    if os.isatty(stdin):
        import termios
        import tty

        tty_state = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    resized = threading.Event()
    previous = signal.signal(signal.SIGWINCH, lambda *_: resized.set()) if tty_state is not None else None
    reader = threading.Thread(target=downstream, name="shell-output", daemon=True)
    reader.start()
    stdin_open = True
    try:
        while not done.is_set():
            if resized.is_set():
                resized.clear()
                cols, rows = _size()
                with contextlib.suppress(ConnectionClosed):
                    ws.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))
            if not stdin_open:
                done.wait(0.1)
                continue
            ready, _, _ = select.select([stdin], [], [], 0.1)
            if ready:
                data = os.read(stdin, STDIN_CHUNK)
                if not data:
                    stdin_open = False  # piped input ended; the shell decides when to exit
                    continue
                with contextlib.suppress(ConnectionClosed):
                    ws.send(data)
    finally:
        if tty_state is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, tty_state)
            signal.signal(signal.SIGWINCH, previous)
        ws.close()
        reader.join(2)
    if "code" not in result:
        raise ShellLost(
            "\r\nThe connection to the develop server was lost, so this shell has ended"
            " (the develop server keeps running; `yard dev shell` opens a new one)."
        )
    return int(result["code"])


def _refusal(status: int, body: bytes | bytearray | None) -> str:
    try:
        message = json.loads(body or b"{}")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"The devyard API refused the shell ({status})."
    return str(message)
