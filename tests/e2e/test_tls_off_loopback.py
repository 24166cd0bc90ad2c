"""`yard up` on an address other machines can reach, for real: inside a network namespace of its
own (``unshare -n``, root only, as in CI) with an address on a veth interface, since every
127.0.0.0/8 address is loopback and could not show the difference.

Off loopback and without a certificate the server makes a self-signed one (key 0600), prints its
fingerprint, serves TLS only, and a client refuses to send a token to it over plain HTTP; plain
HTTP there needs --insecure-http on both sides."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import unavailable

ADDRESS = "10.77.0.1"

# Runs inside the namespace; prints one JSON object of what it saw.
INSIDE = textwrap.dedent(
    """
    import json, os, re, socket, stat, subprocess, sys, tomllib
    from pathlib import Path

    import httpx

    from control.tlspin import peer_certificate
    from control.trust import fingerprint_of

    base, address = Path(sys.argv[1]), sys.argv[2]
    for command in (
        "ip link set lo up",
        "ip link add v0 type veth peer name v1",
        f"ip addr add {address}/24 dev v0",
        "ip link set v0 up",
        "ip link set v1 up",
    ):
        subprocess.run(command.split(), check=True)
    yard = str(Path(sys.executable).parent / "yard")

    def free_port():
        with socket.socket() as probe:
            probe.bind((address, 0))
            return probe.getsockname()[1]

    # Two stacks started at once, each with its own profiles: TLS by default, and --insecure-http.
    stacks = {
        "tls": {"port": free_port(), "flags": []},
        "plain": {"port": free_port(), "flags": ["--insecure-http"]},
    }
    for name, stack in stacks.items():
        stack["data"] = base / f"{name}-data"
        stack["env"] = {**os.environ, "XDG_CONFIG_HOME": str(base / f"{name}-config"), "NO_COLOR": "1", "COLUMNS": "400"}

    def run(stack, *args):
        done = subprocess.run([yard, *args], capture_output=True, text=True, env=stack["env"], timeout=90)
        return {"code": done.returncode, "out": done.stdout, "err": done.stderr}

    def token(stack):
        config = Path(stack["env"]["XDG_CONFIG_HOME"]) / "devyard" / "config.toml"
        return tomllib.loads(config.read_text())["profiles"]["local"]["token"]

    def plain_get(url):
        try:
            return httpx.get(url + "/api/v1/health", timeout=5).status_code
        except httpx.TransportError as exc:
            return type(exc).__name__

    seen = {}
    starting = {
        name: subprocess.Popen(
            [yard, "up", "--data-dir", str(stack["data"]), "--host", address, "--port", str(stack["port"]), "--detach",
             *stack["flags"]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stack["env"],
        )
        for name, stack in stacks.items()
    }
    for name, process in starting.items():
        out, err = process.communicate(timeout=120)
        seen[f"{name}_up"] = {"code": process.returncode, "out": out, "err": err}
    try:
        tls, plain = stacks["tls"], stacks["plain"]
        printed = re.search(r"fingerprint (SHA256:[0-9A-F:]+)", seen["tls_up"]["out"])
        seen["printed"] = printed.group(1) if printed else None
        seen["served"] = fingerprint_of(peer_certificate(address, tls["port"]))
        seen["key_mode"] = oct(stat.S_IMODE((tls["data"] / "tls" / "self-signed.key").stat().st_mode))
        seen["plain_to_tls_port"] = plain_get(f"http://{address}:{tls['port']}")
        url = f"https://{address}:{tls['port']}"
        seen["login_pinned"] = run(tls, "login", url, "--token", token(tls), "--fingerprint", seen["served"])
        seen["login_plain"] = run(tls, "login", f"http://{address}:{tls['port']}", "--token", token(tls), "--profile", "p")
        seen["insecure_tls_folder"] = (plain["data"] / "tls").exists()
        seen["insecure_plain"] = plain_get(f"http://{address}:{plain['port']}")
        url = f"http://{address}:{plain['port']}"
        seen["insecure_refused"] = run(plain, "login", url, "--token", token(plain), "--profile", "q")
        seen["insecure_login"] = run(plain, "login", url, "--token", token(plain), "--insecure-http", "--profile", "q")
    finally:
        for name, stack in stacks.items():
            seen[f"{name}_down"] = run(stack, "down", "--data-dir", str(stack["data"]))
    print(json.dumps(seen))
    """
)


def test_off_loopback_the_api_serves_a_self_signed_certificate_and_plain_http_must_be_asked_for(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        unavailable("netns", "needs root, unshare and ip (iproute2)")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        unavailable("netns", f"unshare -n failed: {probe.stderr.decode().strip()}")
    script = tmp_path / "inside.py"
    script.write_text(INSIDE)
    done = subprocess.run(
        ["unshare", "-n", "--", sys.executable, str(script), str(tmp_path), ADDRESS],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tls_up"]["code"] == 0, seen["tls_up"]
    assert f"devyard is up at https://{ADDRESS}:" in seen["tls_up"]["out"]
    assert "self-signed certificate" in seen["tls_up"]["out"]
    assert seen["printed"] == seen["served"]
    assert seen["key_mode"] == "0o600"
    assert seen["plain_to_tls_port"] != 200  # TLS only: a plain request gets no answer
    assert seen["login_pinned"]["code"] == 0, seen["login_pinned"]
    assert seen["login_plain"]["code"] == 1
    assert f"Refusing to send a token over plain HTTP to {ADDRESS}" in seen["login_plain"]["err"]
    assert seen["plain_up"]["code"] == 0, seen["plain_up"]
    assert f"plain HTTP on {ADDRESS}" in seen["plain_up"]["err"]  # the warning
    assert seen["insecure_tls_folder"] is False
    assert seen["insecure_plain"] == 200
    assert seen["insecure_refused"]["code"] == 1 and "--insecure-http" in seen["insecure_refused"]["err"]
    assert seen["insecure_login"]["code"] == 0, seen["insecure_login"]
    assert seen["tls_down"]["code"] == 0 and seen["plain_down"]["code"] == 0
