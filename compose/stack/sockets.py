"""The API's listening sockets: bound by the server itself, so "port in use" is one sentence
before anything starts, and port 0 picks a free one."""

from __future__ import annotations

import errno
import socket

from compose.stack.problem import UpProblem


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind the API socket, turning "address in use" into one clear sentence.

    ``reuse_port``: bind with ``SO_REUSEPORT`` so that :func:`sibling_socket` can give every API
    process a listening socket of its own on the same port (see
    :class:`~compose.stack.api_processes.ApiProcesses`).
    """
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        # SO_REUSEPORT would let this bind succeed next to another server of the same user on
        # the same port, silently sharing it: probe with a plain socket first, which fails if
        # anything holds the port (and picks the port when 0 was asked for).
        probe = bind_socket(host, port)
        port = probe.getsockname()[1]
        probe.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it small responses can wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UpProblem(
                f"Port {port} on {host} is already in use; pass --port with a free port or stop the other process."
            ) from exc
        raise UpProblem(f"Cannot listen on {host}:{port} ({exc.strerror}); pass --host/--port.") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def sibling_socket(sock: socket.socket) -> socket.socket:
    """Another listening socket on ``sock``'s address, if ``sock`` was bound with ``SO_REUSEPORT``;
    otherwise ``sock`` itself (the processes then share one accept queue)."""
    if not hasattr(socket, "SO_REUSEPORT") or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        return sock
    host, port = sock.getsockname()[:2]
    sibling = socket.socket(sock.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sibling.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sibling.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sibling.bind((host, port))
    except OSError:
        sibling.close()
        return sock
    sibling.listen(2048)
    sibling.set_inheritable(True)
    return sibling


def client_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL a client on this machine uses to reach a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
