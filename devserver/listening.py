"""What listens inside this develop server: TCP sockets in LISTEN state owned by its processes.

The kernel's socket tables (``/proc/net/tcp`` and ``tcp6``) say which socket inodes listen on
which address and port; the ``fd`` folders of processes say who holds them. Only this server's
processes count: its descendants, and processes that carry its marker variable in their
environment (a `nohup cmd &` outlives the shell that started it and is re-parented to init, but
keeps the environment it was given). So on the local substrate, where the network is the host's,
the laptop's other programs are not listed, and the server's own port never is.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

MARKER = "DEVYARD_DEVSERVER_PID"
"""Set in every command's environment (see ServerState.child_environment) to this server's pid."""

LISTEN = "0A"
COMMAND_CHARS = 200


def _listening_inodes() -> dict[int, tuple[str, int]]:
    """Socket inode -> (address, port) for every listening TCP socket in this network namespace."""
    found: dict[int, tuple[str, int]] = {}
    for table, decode in (("/proc/net/tcp", _ipv4), ("/proc/net/tcp6", _ipv6)):
        try:
            with open(table) as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) < 10 or fields[3] != LISTEN:
                        continue
                    address, port = fields[1].rsplit(":", 1)
                    found[int(fields[9])] = (decode(address), int(port, 16))
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
    return found


def _ipv4(hex_address: str) -> str:
    return ".".join(str(b) for b in bytes.fromhex(hex_address)[::-1])


def _ipv6(hex_address: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # Four host-order 32-bit words.
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(packed))


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks after boot) of ``pid``, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    rest = text[text.rfind(b")") + 2 :].split()  # the command name may hold spaces and parens
    return int(rest[1]), int(rest[19])


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return marker in environ.read().split(b"\0")
    except OSError:  # another user's process, or gone
        return False


def own_processes(server_pid: int) -> dict[int, int]:
    """This server's processes (itself excluded): pid -> start time in ticks after boot."""
    parents: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                parents[int(name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in parents.items():
        children.setdefault(ppid, []).append(pid)
    own: set[int] = set()
    todo = list(children.get(server_pid, []))
    while todo:
        pid = todo.pop()
        if pid not in own:
            own.add(pid)
            todo.extend(children.get(pid, []))
    marker = f"{MARKER}={server_pid}".encode()
    uid = os.getuid()
    for pid in parents:
        if pid in own or pid == server_pid:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        if _has_marker(pid, marker):
            own.add(pid)
    return {pid: parents[pid][1] for pid in own}


def _boot_time() -> float:
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def _command(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return None
    text = " ".join(word.decode("utf-8", "replace") for word in words)
    return text if len(text) <= COMMAND_CHARS else text[: COMMAND_CHARS - 1] + "…"


def listening_ports(server_pid: int | None = None) -> list[dict[str, object]]:
    """What this server's processes listen on, by port (the JSON of ``ListeningPort``)."""
    server_pid = server_pid or os.getpid()
    sockets = _listening_inodes()
    if not sockets:
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    booted = _boot_time()
    seen: dict[int, dict[str, object]] = {}
    for pid, started in sorted(own_processes(server_pid).items()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if not link.startswith("socket:["):
                continue
            inode = int(link[8:-1])
            if inode in sockets and inode not in seen:
                address, port = sockets[inode]
                since = datetime.fromtimestamp(booted + started / ticks, UTC)
                seen[inode] = {
                    "port": port,
                    "address": address,
                    "pid": pid,
                    "process": _command(pid),
                    "since": since.isoformat(timespec="seconds").replace("+00:00", "Z"),
                }
    return [seen[inode] for inode in sorted(seen, key=lambda inode: (sockets[inode][1], sockets[inode][0]))]
