"""A PostgreSQL server of a test's own, listening on one given address (another host's view of
this one, in the multi-host test), from Debian's binaries in ``/usr/lib/postgresql/*/bin``.

The machine's packaged cluster listens on loopback only and is shared by every test; changing
what it listens on would change it for everything else. This one is made with ``initdb`` in a
fresh folder, runs as the ``postgres`` OS user (the server refuses root), allows password
(SCRAM) logins over TCP from any address, and is stopped by its PID and deleted afterwards.
Startup is about 1.5 s (``initdb --no-sync`` most of it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER = "devyard"
DATABASE = "devyard"
START_TIMEOUT_S = 30.0


class PostgresUnavailable(Exception):
    """No PostgreSQL binaries or no OS user to run them as; the message says which."""


def binaries() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``postgres``."""
    found = sorted(
        (
            p
            for p in Path("/usr/lib/postgresql").glob("*/bin")
            if (p / "initdb").is_file() and (p / "postgres").is_file()
        ),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable("no /usr/lib/postgresql/*/bin with initdb and postgres (Debian's postgresql)")
    return found[-1]


@contextlib.contextmanager
def postgres_server(host: str, password: str) -> Iterator[str]:
    """Run a fresh server on ``host`` (a free port) with a database ``devyard`` owned by the
    login role ``devyard``; yield its SQLAlchemy URL; stop and delete it on exit."""
    bin_dir = binaries()
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("no `postgres` OS user to run the server as") from None
    base = Path(tempfile.mkdtemp(prefix="devyard-pg-"))  # not under pytest's 0700 root-only folders
    process: subprocess.Popen[bytes] | None = None
    try:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        data = base / "data"
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=base,
            user=owner.pw_uid,
            group=owner.pw_gid,
            extra_groups=[],
        )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
        port = _free_port(host)
        with (base / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(base),
                    "-c",
                    f"listen_addresses={host}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
                start_new_session=True,
                user=owner.pw_uid,
                group=owner.pw_gid,
                extra_groups=[],
            )
        admin = f"postgresql+psycopg://{USER}:{password}@{host}:{port}/postgres"
        _wait_ready(process, admin, base / "server.log")
        _create_database(admin)
        yield f"postgresql+psycopg://{USER}:{password}@{host}:{port}/{DATABASE}"
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 2})
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"postgres exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception as exc:  # starting up: refused, or "the database system is starting up"
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept logins within {START_TIMEOUT_S} s: {exc}") from exc
            time.sleep(0.05)
    finally:
        engine.dispose()


def _create_database(admin_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{DATABASE}" OWNER "{USER}"'))
    finally:
        engine.dispose()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: end sessions, no waiting for clients) by PID, then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
