"""Develop servers on the embedded stack: cold start, exec round trip, and 50 at once.

Against the real stack (``yard up --detach`` in a scratch data dir and config home, SQLite, the
in-process local agent), each figure with a peer measured in the same run:

1. cold start: ``yard dev start`` → healthy (the CLI returns only once the server is running),
   from a stopped server each time. Also the API-level time (``POST /devservers`` → ``running``
   seen by polling every 10 ms), and as peers a bare ``python -c pass`` and the develop server
   process alone (``python -m devserver`` spawned → its ready file written).
2. exec round trip: ``yard dev exec -- true`` wall time through the gateway (CLI process
   included), the same call from a warm SDK client in this process, and as peers the same exec
   sent straight to the develop server (with its secret, bypassing the gateway) and
   ``subprocess.run(["true"])``.
3. fifty develop servers running at once (one per project): start time of all 50, then the
   control plane's latency while they run (``GET /api/v1/devservers/{id}`` and ``GET /status``,
   sequential, 500 each), and the memory of each develop server process (RSS and PSS from
   /proc).

    .venv/bin/python bench/devservers.py            # the figures in docs/benchmarks.md (~2 min)
    .venv/bin/python bench/devservers.py --quick    # a smoke test

Progress goes to stderr, one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import percentile, summary  # noqa: E402
from control.client import ControlClient  # noqa: E402
from control.tlspin import pinned_context  # noqa: E402
from control.wire.frames import FrameDecoder  # noqa: E402

YARD = str(Path(sys.executable).parent / "yard")
TARGETS = {"cold_start_p50_s": 1.0, "exec_p50_ms": 60.0, "status_p99_ms_with_50": 100.0}
DOCKER_COLD_START_P50_S = 2.0  # issue [6/7]: develop server start → healthy in a container


def log(message: str) -> None:
    print(f"[bench/devservers] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, scratch: Path, substrate: str = "local", image: str = "devyard:test") -> None:
        self.scratch = scratch
        self.substrate = substrate
        self.data_dir = scratch / "data"
        self.env = {
            **os.environ,
            "HOME": str(scratch),
            "XDG_CONFIG_HOME": str(scratch / "config"),
            "XDG_DATA_HOME": str(scratch / "xdg-data"),
        }
        for key in ("DEVYARD_URL", "DEVYARD_TOKEN", "DEVYARD_PROJECT", "DEVYARD_PROFILE"):
            self.env.pop(key, None)
        if substrate == "docker":
            self.env.update(DEVYARD_SUBSTRATE="docker", DEVYARD_DOCKER_IMAGE=image)

    def yard(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([YARD, *args], env=self.env, capture_output=True, text=True, cwd=self.scratch)
        if check and result.returncode != 0:
            raise RuntimeError(f"yard {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def timed_yard(self, *args: str) -> float:
        started = time.perf_counter()
        self.yard(*args)
        return time.perf_counter() - started

    def up(self) -> None:
        self.yard("up", "--detach", "--data-dir", str(self.data_dir), "--port", "0")
        import tomllib

        config = tomllib.loads((self.scratch / "config" / "devyard" / "config.toml").read_text())
        profile = config["profiles"]["local"]
        self.url, self.token = profile["url"], profile["token"]

    def down(self) -> None:
        self.yard("down", "--data-dir", str(self.data_dir), check=False)

    def client(self) -> ControlClient:
        return ControlClient(self.url, self.token)

    def secret_and_endpoint(self, server_id: int) -> tuple[str, str, str | None]:
        """(endpoint, secret, certificate fingerprint) of a running develop server."""
        with sqlite3.connect(self.data_dir / "devyard.db") as db:
            columns = {c[1] for c in db.execute("PRAGMA table_info(dev_servers)")}
            pin = "tls_fingerprint" if "tls_fingerprint" in columns else "NULL"  # before migration 0014
            row = db.execute(f"SELECT endpoint, secret, {pin} FROM dev_servers WHERE id = ?", (server_id,)).fetchone()
        assert row is not None, f"develop server {server_id} is not in the database"
        secret = str(row[1])
        if secret.startswith("$fernet:"):  # sealed at rest (migration 0005): open it with the stack's key
            from control.secretbox import SecretBox, key_file_keys

            box = SecretBox(key_file_keys(self.data_dir / "state" / "secret.key"))
            secret = str(box.open(secret.removeprefix("$fernet:"))["v"])
        return str(row[0]), secret, row[2]


def exec_via(client: Any, url: str, headers: dict[str, str]) -> int | None:
    decoder = FrameDecoder()
    with client.stream("POST", url, json={"argv": ["true"]}, headers=headers) as response:
        for piece in response.iter_raw():
            for _ in decoder.feed(piece):
                pass
    return decoder.exit_code


def bench_cold_start(bench: Bench, runs: int) -> dict[str, Any]:
    cli, api = [], []
    with bench.client() as client:
        for i in range(runs):
            bench.yard("dev", "stop", "-p", "demo")
            cli.append(bench.timed_yard("dev", "start", "-p", "demo"))
            bench.yard("dev", "stop", "-p", "demo")
            started = time.perf_counter()
            server = client.start_devserver("demo")
            while server.state != "running":
                time.sleep(0.01)
                server = client.get_devserver(server.id)
            api.append(time.perf_counter() - started)
            log(f"cold start {i + 1}/{runs}: cli {cli[-1]:.3f} s, api {api[-1]:.3f} s")
    bare, alone = [], []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
        alone.append(devserver_alone(bench.scratch))
    return {
        "cli_s": summary(cli, 3),
        "api_s": summary(api, 3),
        "peer_python_pass_s": summary(bare, 3),
        "peer_devserver_process_to_ready_s": summary(alone, 3),
    }


def devserver_alone(scratch: Path) -> float:
    """The develop server process by itself: spawn → ready file."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    (folder / "secret").write_text("s" * 32)
    ready = folder / "ready.json"
    argv = [
        sys.executable,
        "-m",
        "devserver",
        "--workspace",
        str(folder / "ws"),
        "--secret-file",
        str(folder / "secret"),
    ]
    argv += ["--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready)]
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    while not ready.exists():
        if child.poll() is not None:
            raise RuntimeError("python -m devserver exited during start")
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    child.terminate()
    child.wait(10)
    return elapsed


def bench_exec(bench: Bench, runs: int) -> dict[str, Any]:
    import httpx

    cli = []
    for _ in range(runs):
        cli.append(bench.timed_yard("dev", "exec", "-p", "demo", "--", "true") * 1000)
    with bench.client() as client:
        server = client.list_devservers(project="demo")[0]
    endpoint, secret, fingerprint = bench.secret_and_endpoint(int(server.id))
    sdk, direct, spawn = [], [], []
    # The direct peer speaks to the develop server as the gateway does: TLS, its certificate pinned.
    with httpx.Client(timeout=30) as http, httpx.Client(timeout=30, verify=pinned_context(fingerprint) if fingerprint else True) as pinned:
        gateway_url = f"{bench.url}/api/v1/devservers/{server.id}/exec"
        user = {"Authorization": f"Bearer {bench.token}"}
        own = {"Authorization": f"Bearer {secret}"}
        for _ in range(5):
            exec_via(http, gateway_url, user)
            exec_via(pinned, f"{endpoint}/exec", own)
        for _ in range(runs * 4):
            started = time.perf_counter()
            assert exec_via(http, gateway_url, user) == 0
            sdk.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            assert exec_via(pinned, f"{endpoint}/exec", own) == 0
            direct.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            subprocess.run(["true"], check=True)
            spawn.append((time.perf_counter() - started) * 1000)
    return {
        "cli_ms": summary(cli),
        "sdk_through_gateway_ms": summary(sdk),
        "peer_direct_to_devserver_ms": summary(direct),
        "peer_subprocess_true_ms": summary(spawn),
        "gateway_overhead_p50_ms": round(percentile(sorted(sdk), 50) - percentile(sorted(direct), 50), 1),
    }


def memory_of(pid: int) -> tuple[float, float]:
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def bench_fifty(bench: Bench, count: int, probes: int) -> dict[str, Any]:
    with bench.client() as client:
        for i in range(count):
            client.create_project(f"p{i:02d}")
        started = time.perf_counter()
        ids = [client.start_devserver(f"p{i:02d}").id for i in range(count)]
        pending = set(ids)
        while pending:
            for server in client.list_devservers():
                if server.state == "running":
                    pending.discard(server.id)
                elif server.state == "failed":
                    raise RuntimeError(f"develop server {server.id} failed: {server.error}")
            time.sleep(0.05)
        all_started = time.perf_counter() - started
        log(f"{count} develop servers running after {all_started:.1f} s")
        time.sleep(2)  # let the starts settle before measuring responsiveness
        show, status = [], []
        for i in range(probes):
            t0 = time.perf_counter()
            client.get_devserver(ids[i % len(ids)])
            t1 = time.perf_counter()
            client.status()
            t2 = time.perf_counter()
            show.append((t1 - t0) * 1000)
            status.append((t2 - t1) * 1000)
        health = []
        for server_id in ids:
            t0 = time.perf_counter()
            assert client.devserver_call(server_id, "GET", "/health")["ok"]
            health.append((time.perf_counter() - t0) * 1000)
        folder = bench.data_dir / "devservers"
        pids = [int(json.loads((folder / str(i) / "ready.json").read_text())["pid"]) for i in ids]
        memory = [memory_of(pid) for pid in pids]
        for server_id in ids:
            client.stop_devserver(server_id)
    rss = [m[0] for m in memory]
    pss = [m[1] for m in memory]
    return {
        "servers": count,
        "all_running_after_s": round(all_started, 2),
        "show_devserver_ms": summary(show),
        "status_ms": summary(status),
        "gateway_health_each_ms": summary(health),
        "rss_mb_per_server": summary(rss),
        "pss_mb_per_server": summary(pss),
        "pss_mb_total": round(sum(pss), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke test")
    parser.add_argument("--substrate", choices=["local", "docker"], default="local", help="where servers run")
    parser.add_argument("--image", default="devyard:test", help="docker substrate: the image")
    args = parser.parse_args()
    runs = 3 if args.quick else 15
    count = 5 if args.quick else 50
    probes = 50 if args.quick else 500
    with tempfile.TemporaryDirectory(prefix="devyard-bench-dev-") as tmp:
        bench = Bench(Path(tmp), args.substrate, args.image)
        bench.up()
        try:
            bench.yard("projects", "add", "demo")
            bench.yard("dev", "start", "-p", "demo")
            metrics: dict[str, Any] = {"cold_start": bench_cold_start(bench, runs)}
            metrics["exec"] = bench_exec(bench, runs * 2)
            bench.yard("dev", "stop", "-p", "demo")
            if args.substrate == "local":  # per-process memory comes from /proc: local processes only
                metrics["fifty"] = bench_fifty(bench, count, probes)
        finally:
            bench.down()
    cold_target = TARGETS["cold_start_p50_s"] if args.substrate == "local" else DOCKER_COLD_START_P50_S
    met = {
        "cold_start_p50": metrics["cold_start"]["cli_s"]["p50"] <= cold_target,
        "exec_p50": metrics["exec"]["cli_ms"]["p50"] <= TARGETS["exec_p50_ms"],
    }
    if "fifty" in metrics:
        met["status_p99_with_50"] = (
            metrics["fifty"]["status_ms"]["p99"] <= TARGETS["status_p99_ms_with_50"]
            and metrics["fifty"]["show_devserver_ms"]["p99"] <= TARGETS["status_p99_ms_with_50"]
        )
    peer = {
        "python_pass_s": metrics["cold_start"]["peer_python_pass_s"],
        "devserver_process_to_ready_s": metrics["cold_start"]["peer_devserver_process_to_ready_s"],
        "exec_direct_ms": metrics["exec"]["peer_direct_to_devserver_ms"],
        "subprocess_true_ms": metrics["exec"]["peer_subprocess_true_ms"],
    }
    result = {
        "name": "devservers",
        "quick": args.quick,
        "targets": TARGETS,
        "met": met,
        "metrics": metrics,
        "peer": peer,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
