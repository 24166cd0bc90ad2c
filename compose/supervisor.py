"""``python -m compose.supervisor``: the server process of the embedded stack.

`yard up --detach` starts it, a cluster runs it as an API replica (``--replica``), and a server
starts its extra API processes through it (``--api-process``). This module only reads the
arguments; the parts live in :mod:`compose.stack`.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import Any

from control.settings import Settings, load_settings


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="compose.supervisor")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--replica", action="store_true", help="API only (no agent, no scheduler, no local profile): a cluster replica"
    )
    parser.add_argument(
        "--admin-token", metavar="NAME", help="print a new admin token for NAME (created if needed), then exit"
    )
    parser.add_argument("--workers", type=int, help="API processes sharing the port (default: settings)")
    parser.add_argument("--tls-cert", help="PEM certificate to serve TLS with (default: settings)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert (default: settings)")
    parser.add_argument("--insecure-http", action="store_true", default=None, help="plain HTTP on a non-loopback host")
    parser.add_argument("--api-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--socket-fd", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per agent long-poll would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic announces each of its plugins at INFO on every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.api_process:
        from compose.stack.api_processes import serve_api_process

        # Started by ApiProcesses: settings on the first line of stdin, the socket inherited.
        settings = Settings.model_validate_json(sys.stdin.buffer.readline())
        serve_api_process(settings, socket.socket(fileno=args.socket_fd))
        return 0
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "api_workers": args.workers}
    overrides.update(tls_cert=args.tls_cert, tls_key=args.tls_key, insecure_http=args.insecure_http)
    if args.replica:
        overrides.update(agent=False, scheduler=False)
    settings = load_settings(args.data_dir, **overrides)
    if args.replica:
        from control.secretbox import SecretKeyProblem, require_shared_keys

        try:
            require_shared_keys(settings)
        except SecretKeyProblem as exc:
            print(exc, file=sys.stderr)
            return 2
    if args.replica and settings.api_workers is None:
        # A cluster scales by replicas; one process each unless api_workers says otherwise.
        settings = settings.model_copy(update={"api_workers": 1})
    from compose.stack.server import prepare, serve

    prepare(settings)
    if args.admin_token:
        from control.bootstrap import new_admin_token

        print(new_admin_token(settings, args.admin_token))
        return 0
    serve(settings, local_profile=not args.replica)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
