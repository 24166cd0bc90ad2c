"""Port forwarding: `yard dev forward` against `ssh -L`, to the same servers in a develop server.

On the embedded stack (``yard up --detach`` in a scratch data dir, SQLite, the local agent), a
develop server runs two target programs started through ``yard dev exec``: a bulk source (on
each connection it reads a byte count and sends that many bytes) and a tiny HTTP responder
(keep-alive, a 2-byte body). They are reached three ways in the same run:

- directly on loopback (the floor: what the machine itself costs);
- through ``yard dev forward`` (client → API → develop server → port: three Python relays);
- through ``ssh -N -L`` to an ``sshd`` the bench starts on a free loopback port with its own
  config, host key and client key (Debian's openssh-server; skipped with a message when
  ``/usr/sbin/sshd`` is missing).

Figures: bulk throughput of GIB bytes (median of three transfers each), and small HTTP requests
(sequential, one kept-alive connection; also one new connection per request): latency p50 and
the latency each way *adds* over the direct path (p50 of via minus p50 of direct).

    .venv/bin/python bench/forward.py            # 1 GiB, 2000 requests: docs/benchmarks.md
    .venv/bin/python bench/forward.py --quick    # 64 MiB, 200 requests (a smoke test)

Progress goes to stderr, one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import summary  # noqa: E402
from control.client import ControlClient  # noqa: E402
from control.wire.frames import FrameDecoder  # noqa: E402

YARD = str(Path(sys.executable).parent / "yard")
SSHD = "/usr/sbin/sshd"
TARGETS = {"bulk_ratio_to_ssh": 1.0, "http_added_p50_ms_max": 2.0}

# The two programs run inside the develop server (standard library only).
BULK_SOURCE = r"""
import os, socket, sys, threading
block = os.urandom(1 << 20)
server = socket.create_server(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(server.getsockname()[1]))
def serve(conn):
    with conn:
        want = int(conn.makefile("rb").readline())
        view = memoryview(block)
        while want > 0:
            sent = conn.send(view[: min(len(block), want)])
            want -= sent
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
HTTP_RESPONDER = r"""
import asyncio, sys
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    open(sys.argv[1], "w").write(str(server.sockets[0].getsockname()[1]))
    await server.serve_forever()
asyncio.run(main())
"""
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n"


def log(message: str) -> None:
    print(f"[bench/forward] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not happen within {timeout} s")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# ------------------------------------------------------------------ the stack and its targets


class Stack:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.data_dir = scratch / "data"
        self.env = {
            **os.environ,
            "HOME": str(scratch),
            "XDG_CONFIG_HOME": str(scratch / "config"),
            "XDG_DATA_HOME": str(scratch / "xdg-data"),
        }
        for key in ("DEVYARD_URL", "DEVYARD_TOKEN", "DEVYARD_PROJECT", "DEVYARD_PROFILE"):
            self.env.pop(key, None)

    def yard(self, *args: str) -> str:
        result = subprocess.run([YARD, *args], env=self.env, capture_output=True, text=True, cwd=self.scratch)
        if result.returncode != 0:
            raise RuntimeError(f"yard {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def up(self) -> None:
        import tomllib

        self.yard("up", "--detach", "--data-dir", str(self.data_dir), "--port", "0")
        config = tomllib.loads((self.scratch / "config" / "devyard" / "config.toml").read_text())
        profile = config["profiles"]["local"]
        self.url, self.token = profile["url"], profile["token"]
        self.yard("projects", "add", "bench")
        self.server_id = json.loads(self.yard("dev", "start", "-p", "bench", "--json"))["id"]

    def server_pid(self) -> int:
        """The `yard up` server process (its tree holds the API, the agent, the develop server)."""
        return int(json.loads((self.data_dir / "state" / "server.json").read_text())["pid"])

    def down(self) -> None:
        subprocess.run([YARD, "down", "--data-dir", str(self.data_dir)], env=self.env, capture_output=True)

    def start_target(self, name: str, source: str) -> tuple[int, int]:
        """Start ``source`` in the develop server (in the background); its port and pid."""
        script = self.scratch / f"{name}.py"
        script.write_text(source)
        port_file = self.scratch / f"{name}.port"
        command = f"echo $$ > {self.scratch}/{name}.pid; exec {sys.executable} {script} {port_file}"
        decoder = FrameDecoder()
        with ControlClient(self.url, self.token) as client:
            body = {"argv": ["sh", "-c", f"nohup sh -c '{command}' >/dev/null 2>&1 &"]}
            for piece in client.devserver_stream(self.server_id, "POST", "/exec", json=body):
                list(decoder.feed(piece))
        port = int(wait_for(lambda: port_file.exists() and port_file.read_text(), 20, f"{name} to listen"))
        pid = int((self.scratch / f"{name}.pid").read_text())
        return port, pid


@contextmanager
def yard_forward(stack: Stack, remotes: list[int]) -> Iterator[tuple[dict[int, int], int]]:
    """`yard dev forward 0:R ...` running; remote port -> local port, and its pid."""
    child = subprocess.Popen(
        [YARD, "dev", "forward", "-p", "bench", *[f"0:{r}" for r in remotes]],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=stack.scratch,
    )
    assert child.stdout is not None
    ports: dict[int, int] = {}
    try:
        while len(ports) < len(remotes):
            line = child.stdout.readline()
            if not line:
                raise RuntimeError("yard dev forward ended early")
            if line.startswith("Forwarding 127.0.0.1:"):
                local = int(line.split("127.0.0.1:")[1].split()[0])
                remote = int(line.split("-> port ")[1].split()[0])
                ports[remote] = local
        yield ports, child.pid
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def ssh_forward(scratch: Path, remotes: list[int]) -> Iterator[tuple[dict[int, int], list[int]] | None]:
    """``ssh -N -L`` through a private sshd on loopback: remote -> local ports and the pids of
    ssh and sshd; None when sshd is not installed."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        log(f"{SSHD} or ssh is missing (apt-get install openssh-server): the ssh -L peer is skipped")
        yield None
        return
    home = scratch / "ssh"
    home.mkdir(mode=0o700)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True)
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    os.chmod(home / "authorized_keys", 0o600)
    port = free_port()
    config = home / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {home / 'host_key'}",
                f"AuthorizedKeysFile {home / 'authorized_keys'}",
                f"PidFile {home / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "AllowTcpForwarding yes",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # the privilege-separation directory sshd insists on
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(home / "sshd.log", "wb"))  # noqa: SIM115
    locals_ = {remote: free_port() for remote in remotes}
    client = None
    try:
        wait_for(lambda: listening(port), 10, "sshd to listen")
        forwards = [arg for r, loc in locals_.items() for arg in ("-L", f"127.0.0.1:{loc}:127.0.0.1:{r}")]
        user = os.environ.get("USER") or "root"
        client = subprocess.Popen(
            [
                "ssh",
                "-N",
                "-p",
                str(port),
                "-i",
                str(home / "client_key"),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={home / 'known_hosts'}",
                "-o",
                "BatchMode=yes",
                "-o",
                "ExitOnForwardFailure=yes",
                *forwards,
                f"{user}@127.0.0.1",
            ],
            stderr=open(home / "ssh.log", "wb"),  # noqa: SIM115
        )
        wait_for(lambda: all(listening(local) for local in locals_.values()), 15, "ssh -L to listen")
        yield locals_, [client.pid, sshd.pid]
    finally:
        for process in (client, sshd):
            if process is not None:
                process.terminate()
                process.wait(10)


# ------------------------------------------------------------------ CPU used (robust to load)


def tree(root: int) -> list[int]:
    """``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_s(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``roots`` and their descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in {p for root in roots for p in tree(root)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


# ------------------------------------------------------------------ measurements


def bulk_mib_s(port: int, size: int) -> float:
    """Read ``size`` bytes from the bulk source through ``port``; MiB/s."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        started = time.perf_counter()
        conn.sendall(f"{size}\n".encode())
        buffer = bytearray(1 << 20)
        got = 0
        while got < size:
            n = conn.recv_into(buffer)
            if not n:
                raise RuntimeError(f"the stream ended after {got} of {size} bytes")
            got += n
        elapsed = time.perf_counter() - started
    return size / elapsed / (1 << 20)


def http_latencies_ms(port: int, requests: int, reuse: bool) -> list[float]:
    """Sequential tiny GETs; one kept-alive connection (``reuse``) or a new one per request."""
    out: list[float] = []
    conn: socket.socket | None = None
    try:
        for _ in range(requests):
            started = time.perf_counter()
            if conn is None:
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(REQUEST)
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                chunk = conn.recv(4096)
                if not chunk:
                    raise RuntimeError("the HTTP connection closed")
                answer += chunk
            out.append((time.perf_counter() - started) * 1000)
            if not reuse:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    return out


def measure(
    name: str, ports: dict[str, int], size: int, requests: int, repeats: int, relays: list[int]
) -> dict[str, Any]:
    """Bulk and HTTP figures through ``ports``; ``relays``: the processes (trees) that carry the
    bytes on the way, whose CPU time per GiB and per request is counted."""
    log(f"{name}: bulk {size >> 20} MiB x {repeats}")
    before = cpu_s(relays)
    rates = [bulk_mib_s(ports["bulk"], size) for _ in range(repeats)]
    bulk_cpu = cpu_s(relays) - before
    log(f"{name}: {', '.join(f'{r:.0f}' for r in rates)} MiB/s; {requests} HTTP requests")
    http_latencies_ms(ports["http"], 50, reuse=True)  # warm up
    before = cpu_s(relays)
    kept = http_latencies_ms(ports["http"], requests, reuse=True)
    http_cpu = cpu_s(relays) - before
    fresh = http_latencies_ms(ports["http"], max(20, requests // 10), reuse=False)
    return {
        "bulk_mib_s": {"runs": [round(r, 1) for r in rates], "median": round(statistics.median(rates), 1)},
        "relay_cpu_s_per_gib": round(bulk_cpu / (repeats * size / (1 << 30)), 2) if relays else 0.0,
        "http_keepalive_ms": summary(kept, 3),
        "relay_cpu_us_per_request": round(http_cpu / requests * 1e6, 1) if relays else 0.0,
        "http_new_connection_ms": summary(fresh, 3),
    }


def added(via: dict[str, Any], direct: dict[str, Any], key: str) -> float:
    return round(float(via[key]["p50"]) - float(direct[key]["p50"]), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 MiB and 200 requests: a smoke test")
    args = parser.parse_args()
    size = (64 if args.quick else 1024) << 20
    requests = 200 if args.quick else 2000
    repeats = 1 if args.quick else 3
    scratch = Path(tempfile.mkdtemp(prefix="bench-forward-"))
    stack = Stack(scratch)
    pids: list[int] = []
    try:
        stack.up()
        bulk, bulk_pid = stack.start_target("bulk", BULK_SOURCE)
        http, http_pid = stack.start_target("http", HTTP_RESPONDER)
        pids += [bulk_pid, http_pid]
        load = os.getloadavg()
        results: dict[str, Any] = {
            "direct": measure("direct", {"bulk": bulk, "http": http}, size, requests, repeats, [])
        }
        with yard_forward(stack, [bulk, http]) as (ports, forward_pid):
            # The relays: `yard dev forward`, and the server's tree (API, agent, develop server).
            relays = [forward_pid, stack.server_pid()]
            results["yard"] = measure(
                "yard dev forward", {"bulk": ports[bulk], "http": ports[http]}, size, requests, repeats, relays
            )
        with ssh_forward(scratch, [bulk, http]) as ssh:
            if ssh is not None:
                ssh_ports, ssh_pids = ssh
                results["ssh"] = measure(
                    "ssh -L", {"bulk": ssh_ports[bulk], "http": ssh_ports[http]}, size, requests, repeats, ssh_pids
                )
        direct, yard = results["direct"], results["yard"]
        metrics: dict[str, Any] = {
            "bytes": size,
            "yard_bulk_mib_s": yard["bulk_mib_s"]["median"],
            "yard_http_added_p50_ms": added(yard, direct, "http_keepalive_ms"),
            "yard_relay_cpu_us_per_request": yard["relay_cpu_us_per_request"],
            "yard_relay_cpu_s_per_gib": yard["relay_cpu_s_per_gib"],
            "yard_http_new_connection_added_p50_ms": added(yard, direct, "http_new_connection_ms"),
            "direct": direct,
            "yard": yard,
            "loadavg_at_start": [round(x, 2) for x in load],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
        }
        peer: dict[str, Any] = {}
        if "ssh" in results:
            ssh = results["ssh"]
            peer = {
                "ssh_bulk_mib_s": ssh["bulk_mib_s"]["median"],
                "ssh_http_added_p50_ms": added(ssh, direct, "http_keepalive_ms"),
                "ssh_relay_cpu_us_per_request": ssh["relay_cpu_us_per_request"],
                "ssh_relay_cpu_s_per_gib": ssh["relay_cpu_s_per_gib"],
                "ssh_http_new_connection_added_p50_ms": added(ssh, direct, "http_new_connection_ms"),
                "ssh": ssh,
            }
            metrics["bulk_ratio_to_ssh"] = round(yard["bulk_mib_s"]["median"] / ssh["bulk_mib_s"]["median"], 2)
        else:
            peer = {"skipped": f"{SSHD} is not installed (apt-get install openssh-server)"}
        print(json.dumps({"name": "forward", "metrics": metrics, "peer": peer, "targets": TARGETS}, indent=2))
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stack.down()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
