"""Several hosts on one machine: Linux network namespaces on a switch, made with ``ip`` (iproute2).

```
  root namespace (this test's own host: PostgreSQL, SeaweedFS)  .1
        |  veth "<prefix>-up"
  [switch]  a namespace holding only a bridge, one port per host
        |            |             |
      api .2 .3    agent .4     client .5        (10.<a>.<b>.0/24)
```
The bridge lives in a namespace of its own, not in the root one: there, every bridged packet
would pass the root namespace's firewall, and Docker's sets ``FORWARD`` to ``DROP``. Traffic
from a host to the root namespace arrives on its uplink as local input, which is not filtered.

Cutting a host's link (:meth:`Host.cut`) takes its switch port down, as pulling the cable at the
switch would: the host's own interface and routes stay, its packets vanish, TCP retransmits.

Names resolve through ``/etc/netns/<namespace>/hosts``, which ``ip netns exec`` mounts over
``/etc/hosts`` for what it starts: a name with two addresses is what round-robin DNS gives.

Everything is made under a prefix holding this process's PID and removed on exit, the processes
started in the hosts first (by PID: those the test started, then any left in the namespaces,
which can only be theirs). A namespace left by a test process that was SIGKILLed is removed by
the next one (its PID is gone).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

NETNS_ETC = Path("/etc/netns")
PREFIX = "dyt"
STOP_GRACE_S = 10.0


class NetnsUnavailable(Exception):
    """Namespaces cannot be made here (not root, no ``ip``); the message says why."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def check_available() -> None:
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root")
    if shutil.which("ip") is None:
        raise NetnsUnavailable("the `ip` command (Debian's iproute2) is not installed")


@dataclass
class Host:
    """A network namespace with one interface on the switch and the addresses given."""

    network: Network
    name: str
    addresses: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return f"{self.network.prefix}-{self.name}"

    @property
    def address(self) -> str:
        return self.addresses[0]

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], log: Path, stdout: int | IO[bytes] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in this host (stderr, and stdout unless given, into ``log``); it is
        stopped when the network is taken down, if not before."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.command(argv),  # `ip netns exec` execs the command: the PID is the command's
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out if stdout is None else stdout,
                stderr=out,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(argv), env=dict(env), capture_output=True, timeout=timeout, input=input)

    def cut(self) -> None:
        """Unplug this host: its switch port goes down."""
        ip("-n", self.network.switch, "link", "set", self.name, "down")

    def restore(self) -> None:
        ip("-n", self.network.switch, "link", "set", self.name, "up")

    def established(self, port: int) -> list[tuple[str, str]]:
        """``(local, peer)`` addresses of TCP connections established to ``port`` in this host."""
        out = subprocess.run(
            self.command(["ss", "-Htn", "state", "established", f"( sport = :{port} )"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        pairs = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4:
                pairs.append((parts[-2].rpartition(":")[0], parts[-1].rpartition(":")[0]))
        return pairs


@dataclass
class Network:
    prefix: str
    subnet: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the switch: services of "this" host listen here."""
        return str(self.subnet.network_address + 1)

    def add_host(self, name: str, count: int = 1) -> Host:
        """A namespace plugged into the switch with ``count`` addresses. ``name`` is also its
        switch port's name: a word `ip` does not take for a keyword ("a", "up" are)."""
        start = 2 + sum(len(h.addresses) for h in self.hosts.values())
        addresses = [str(self.subnet.network_address + start + i) for i in range(count)]
        host = Host(self, name, addresses)
        self.hosts[name] = host
        ip("netns", "add", host.namespace)
        ip("-n", self.switch, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        ip("-n", self.switch, "link", "set", name, "master", "br0", "up")
        for address in addresses:
            ip("-n", host.namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        self._write_hosts(host)
        return host

    def add_name(self, name: str, addresses: list[str]) -> None:
        """Make ``name`` resolve to ``addresses`` (in this order) in every host."""
        self.names[name] = addresses
        for host in self.hosts.values():
            self._write_hosts(host)

    def _write_hosts(self, host: Host) -> None:
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{address} {name}" for name, addresses in self.names.items() for address in addresses]
        folder = NETNS_ETC / host.namespace
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hosts").write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def network() -> Iterator[Network]:
    """A switch namespace with an uplink to the root namespace; hosts are added to it. Every
    namespace, link, ``/etc/netns`` folder and process is removed on exit, whatever happened."""
    check_available()
    remove_stale()
    net = Network(f"{PREFIX}{os.getpid()}", _free_subnet())
    made_etc = not NETNS_ETC.exists()
    try:
        ip("netns", "add", net.switch)
        ip("-n", net.switch, "link", "set", "lo", "up")
        ip("-n", net.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", net.switch, "link", "set", "br0", "up")
        uplink = f"{net.prefix}-up"
        ip("link", "add", uplink, "type", "veth", "peer", "name", "uplink", "netns", net.switch)
        ip("-n", net.switch, "link", "set", "uplink", "master", "br0", "up")
        ip("addr", "add", f"{net.gateway}/{net.subnet.prefixlen}", "dev", uplink)
        ip("link", "set", uplink, "up")
        yield net
    finally:
        _take_down(net)
        if made_etc:  # only if this made it and nothing else is in it now
            with contextlib.suppress(OSError):
                NETNS_ETC.rmdir()


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no interface of the root namespace is on."""
    used = [ipaddress.ip_interface(a).network for a in re.findall(r"inet (\S+)", ip("-o", "-4", "addr").stdout)]
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetnsUnavailable("no free 10.x.y.0/24 subnet for the test network")


def _take_down(net: Network) -> None:
    for host in net.hosts.values():
        for process in host.processes:
            stop(process)
    namespaces = [h.namespace for h in net.hosts.values()] + [net.switch]
    for namespace in namespaces:
        _stop_leftovers(namespace)
        ip("netns", "del", namespace, check=False)
        shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
    ip("link", "del", f"{net.prefix}-up", check=False)  # gone with the switch already, normally


def stop(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process by PID, SIGKILL after ``grace_s``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


def _stop_leftovers(namespace: str) -> None:
    """Processes still in ``namespace`` (run workers and develop servers outlive the agent that
    started them, by design): all were started by this test. TERM, then KILL, by PID."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids(namespace)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while _pids(namespace) and time.monotonic() < deadline:
            time.sleep(0.05)


def _pids(namespace: str) -> list[int]:
    result = ip("netns", "pids", namespace, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def remove_stale() -> None:
    """Namespaces (and their /etc/netns folders) of test processes that no longer exist."""
    listed = ip("netns", "list", check=False).stdout
    for name in {line.split()[0] for line in listed.splitlines() if line.strip()}:
        match = re.fullmatch(rf"{PREFIX}(\d+)-\w+", name)
        if match is None or _alive(int(match.group(1))):
            continue
        ip("netns", "del", name, check=False)
        shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
