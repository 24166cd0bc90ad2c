"""Several API processes: one port served by all of them, and every wake-up crossing between them.

The processes are real (``python -m compose.supervisor``) on loopback. The cross-process tests run
two single-process replicas on one data dir, so each test knows which process it talks to: on
SQLite the notices travel through the local bus in ``<data-dir>/state/bus/``, on PostgreSQL
through NOTIFY. ``yard up`` with ``api_workers`` starts the same kind of process, each on its own
``SO_REUSEPORT`` socket of the one port.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from control.client import ControlClient, DevyardError
from control.localbus import LocalBus
from control.logformat import raw_output
from control.secretbox import new_key
from runner.procfs import pid_alive
from tests.e2e.processes import AgentProcess
from tests.stack import wait_for_run
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


SECRET_KEYS = new_key()


def supervisor(data_dir: Path, database_url: str, *args: str) -> Process:
    """Start ``python -m compose.supervisor`` on a free port and wait until it answers."""
    # Replicas of one installation share their secret keys (a replica on PostgreSQL requires them).
    keys = {"DEVYARD_SECRET_KEYS": SECRET_KEYS}
    env = {**os.environ, "DEVYARD_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", **keys}
    log = open(data_dir.parent / f"server-{time.monotonic_ns()}.log", "ab")  # noqa: SIM115 - outlives this call
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    popen = subprocess.Popen([*command, "--port", "0", *args], cwd=ROOT, env=env, stdout=log, stderr=log)
    server_file = data_dir / "state" / "server.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert popen.poll() is None, f"server exited with {popen.returncode}; see {log.name}"
        try:
            info = json.loads(server_file.read_text())
            if info["pid"] == popen.pid and httpx.get(info["url"] + "/api/v1/health", timeout=2).status_code == 200:
                return Process(popen, info["url"])
        except (OSError, ValueError, KeyError, httpx.TransportError):
            pass
        time.sleep(0.05)
    popen.kill()
    raise AssertionError("server did not become healthy")


def admin_token(data_dir: Path, database_url: str) -> str:
    env = {**os.environ, "DEVYARD_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "compose.supervisor", "--data-dir", str(data_dir), "--admin-token", "admin"]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


@dataclass
class Pair:
    a: Process
    b: Process
    token: str
    data_dir: Path

    def client(self, which: Process, token: str | None = None) -> ControlClient:
        return ControlClient(which.url, token or self.token)


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    """Two single-process API replicas on one data dir and database."""
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, database_url)
    a = supervisor(data_dir, database_url, "--replica", "--workers", "1")
    try:
        b = supervisor(data_dir, database_url, "--replica", "--workers", "1")
        try:
            yield Pair(a, b, token, data_dir)
        finally:
            b.stop()
    finally:
        a.stop()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # each thread lists the children it started
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):  # a zombie not yet reaped by its parent counts as gone
            return True
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------- one port, several processes


def connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each process holds (from /proc)."""
    inodes: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state = int(fields[1].rsplit(":", 1)[1], 16), fields[3]
        if local_port == port and state == "01":  # ESTABLISHED
            inodes[fields[9]] = 0
    counts = dict.fromkeys(pids, 0)
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                counts[pid] += 1
    return counts


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_burst_of_connections_is_spread_over_the_api_processes(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    server = supervisor(data_dir, database_url, "--workers", "2")
    clients: list[httpx.Client] = []
    try:
        workers = children(server.popen.pid)
        workers = [p for p in workers if b"--api-process" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 1
        bus = data_dir / "state" / "bus"
        # The worker has built its app once its bus socket is there (it serves right after; a
        # connection arriving before then waits in the socket the primary opened for it).
        wait_until(lambda: len(list(bus.glob("*.sock"))) == 2, timeout=20, message="the worker to start its app")
        # 40 clients connecting at once (as a load generator or a fleet of agents does). On one
        # shared socket the first process to wake took most of them; each process has its own
        # SO_REUSEPORT socket now, and the kernel spreads connections by address hash.
        clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(40)]
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda client: client.get("/api/v1/health").status_code, clients))
        assert answers == [200] * 40
        port = int(server.url.rsplit(":", 1)[1])
        counts = connections_by_process([server.popen.pid, workers[0]], port)
        assert min(counts.values()) >= 8, f"connections per process: {counts}"  # binomial: P(< 8) ~ 1e-5
        assert len(list(bus.glob("*.sock"))) == 2
        for client in clients:
            client.close()
        server.popen.terminate()
        server.popen.wait(20)
        assert gone(workers[0], 5)
        assert list(bus.glob("*.sock")) == []
        assert not (data_dir / "state" / "server.json").exists()
    finally:
        for client in clients:
            client.close()
        server.stop()


def test_a_second_server_on_a_taken_port_is_refused(tmp_path: Path) -> None:
    """SO_REUSEPORT must not let a second server share a port that another one listens on."""
    from compose.stack.problem import UpProblem
    from compose.stack.sockets import bind_socket

    first = bind_socket("127.0.0.1", 0, reuse_port=True)
    try:
        port = first.getsockname()[1]
        with pytest.raises(UpProblem, match="already in use"):
            bind_socket("127.0.0.1", port, reuse_port=True)
        with pytest.raises(UpProblem, match="already in use"):
            bind_socket("127.0.0.1", port)
    finally:
        first.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_workers_exit_and_free_the_port_when_the_primary_is_killed(tmp_path: Path, database_url: str) -> None:
    server = supervisor(tmp_path / "data", database_url, "--workers", "3")
    try:
        workers = children(server.popen.pid)
        workers = [p for p in workers if b"--api-process" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        server.popen.kill()
        server.popen.wait(10)
        assert all(gone(pid, 5) for pid in workers)
        port = int(server.url.rsplit(":", 1)[1])
        with socket.socket() as probe:  # `yard up` on the same port works again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_crashed_worker_is_replaced(tmp_path: Path, database_url: str) -> None:
    server = supervisor(tmp_path / "data", database_url, "--workers", "2")

    def workers() -> list[int]:
        pids = children(server.popen.pid)
        return [p for p in pids if b"--api-process" in Path(f"/proc/{p}/cmdline").read_bytes()]

    try:
        (first,) = workers()
        os.kill(first, signal.SIGKILL)
        replacement = wait_until(lambda: [p for p in workers() if p != first], timeout=10, message="a new worker")
        assert len(replacement) == 1
    finally:
        server.stop()


# ---------------------------------------------------------------- wake-ups across processes


def test_an_agent_polling_one_process_gets_work_created_through_another(pair: Pair) -> None:
    with pair.client(pair.a) as admin:
        admin.create_project("demo")
        agent_token = admin.create_user("poller", role="agent").token
    with pair.client(pair.a, agent_token) as agent, pair.client(pair.b) as creator:
        agent_id = agent.register_agent("poller").id
        for _ in range(3):
            claimed: list[float] = []

            def poll(claimed: list[float] = claimed) -> None:
                items = agent.claim_work(agent_id, wait_s=20).items
                claimed.append(time.monotonic() if items else float("inf"))

            thread = threading.Thread(target=poll, daemon=True)
            thread.start()
            # Not a race: the claim is prompt whether or not the poll is parked yet (a poll that
            # arrives after the run finds it at once). The pause makes the parked poll, woken by
            # B's notice, the case tested; the server shows no sign of parking to wait on.
            time.sleep(0.5)
            created = time.monotonic()
            creator.create_run("demo", ["true"])
            thread.join(25)
            # A's own re-check runs every 2 s; a wake-up from B comes at once.
            assert claimed and claimed[0] - created < 0.5


def test_a_log_follower_on_one_process_sees_chunks_stored_through_another(pair: Pair, tmp_path: Path) -> None:
    with pair.client(pair.a) as admin:
        admin.create_project("demo")
        agent_token = admin.create_user("runner", role="agent").token
        assert agent_token is not None
    # The agent and its run workers talk to B only; the follower reads from A.
    agent = AgentProcess(pair.b.url, agent_token, tmp_path / "agent", "runner")
    try:
        with pair.client(pair.b) as client_b:
            script = "import time\nfor i in range(10):\n    print(repr(time.time()), flush=True)\n    time.sleep(0.2)"
            run = client_b.create_run("demo", [sys.executable, "-c", script])
        lags: list[float] = []
        with pair.client(pair.a) as client_a:
            for event in client_a.follow_logs(run.id):
                if event.event == "chunk":
                    printed = raw_output(base64.b64decode(event.json()["data"])).split()
                    lags += [time.time() - float(line) for line in printed]
                elif event.event == "end":
                    break
            final = wait_for_run(client_a, run.id)
    finally:
        agent.stop()
    assert final.state == "succeeded"
    assert len(lags) == 10
    # Each line reaches the follower on A soon after it was printed, not at the 15 s keepalive.
    assert max(lags) < 1.5


def test_events_published_by_one_process_reach_subscribers_of_another(pair: Pair) -> None:
    seen: list[str] = []
    connected = threading.Event()
    headers = {"Authorization": f"Bearer {pair.token}"}

    def follow() -> None:
        # Read the stream raw: its first line, ": connected", is sent once the subscription is
        # registered (the client's event iterator drops comments).
        with (
            httpx.Client(timeout=30) as http,
            http.stream("GET", pair.a.url + "/api/v1/events", params={"types": "project"}, headers=headers) as stream,
        ):
            for line in stream.iter_lines():
                if line == ": connected":
                    connected.set()
                elif line.startswith("data: "):
                    seen.append(json.loads(line[6:])["data"]["name"])
                    if len(seen) == 2:
                        return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert connected.wait(10), "the stream on A did not start"
    with pair.client(pair.b) as client_b:
        client_b.create_project("first-on-b")
        client_b.create_project("second-on-b")
    thread.join(10)
    assert seen == ["first-on-b", "second-on-b"]


def test_a_token_revoked_through_one_process_is_refused_by_another_at_once(pair: Pair) -> None:
    with pair.client(pair.a) as admin:
        created = admin.create_user("leaver", role="developer")
    token = created.token
    with pair.client(pair.a, token) as leaver:
        assert leaver.me().name == "leaver"  # A now holds the token in its 2-second cache
        with pair.client(pair.b) as admin_b:
            token_id = next(t.id for t in admin_b.list_tokens(user="leaver").items)
            admin_b.revoke_token(token_id)
        with pytest.raises(DevyardError):
            leaver.me()


# ---------------------------------------------------------------- the local bus itself


def test_the_bus_removes_sockets_left_by_dead_processes(tmp_path: Path) -> None:
    folder = tmp_path / "bus"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = folder / f"{int(dead.stdout)}-0000.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(leftover))  # the file stays after the socket closes, as after kill -9
    # A live pid whose socket is not bound any more (pid reuse) is found by the first send.
    reused = folder / f"{os.getpid()}-ffff.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(reused))
    bus = LocalBus(folder, on_keys=lambda keys: None)
    try:
        assert not leftover.exists()
        bus.send_keys(["work"])
        assert not reused.exists()
        assert [p.name for p in folder.iterdir()] == [bus.name]
    finally:
        bus.close()


def test_a_burst_of_notices_arrives_whole_over_a_long_folder_path(tmp_path: Path) -> None:
    folder = tmp_path / ("x" * 60) / ("y" * 60) / "bus"  # longer than a Unix socket path may be
    received: list[str] = []
    done = threading.Event()

    def on_keys(keys: list[str]) -> None:
        received.extend(keys)
        if len(received) >= 2000:
            done.set()

    listener = LocalBus(folder, on_keys=on_keys)
    sender = LocalBus(folder, on_keys=lambda keys: None)
    try:
        for i in range(2000):  # far more than a datagram queue holds (10 by default)
            sender.send_keys([f"run:{i}"])
        assert done.wait(10)
        assert received == [f"run:{i}" for i in range(2000)]
    finally:
        sender.close()
        listener.close()
