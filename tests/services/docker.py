"""A real Docker engine for tests, and the devyard image built offline (no registry is reachable).

The base image is Debian bookworm from ``debootstrap --variant=minbase`` with Python, imported
with ``docker import`` and kept by the engine between runs (about a minute the first time). The
devyard image on top copies this installation (compose/image.py) and is rebuilt only when the
code changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

BASE_TAG = "devyard-base:bookworm"
CHECKOUT = Path(__file__).resolve().parents[2]
# One tag per checkout: several checkouts of the repository (worktrees) share one engine, and
# a build from one must not replace the image another's tests are starting containers from.
TEST_TAG = f"devyard:test-{hashlib.sha256(str(CHECKOUT).encode()).hexdigest()[:10]}"
LOCK = Path(tempfile.gettempdir()) / "devyard-test-image.lock"
MIRROR = "http://deb.debian.org/debian"


class DockerSetupFailed(Exception):
    """Why the engine or the image is not usable; one sentence."""


def engine() -> Any:
    from compose.docker import DockerUnavailable, connect

    try:
        return connect()
    except DockerUnavailable as exc:
        raise DockerSetupFailed(str(exc)) from exc


def ensure_base(client: Any) -> str:
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_TAG)
        return BASE_TAG
    except ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        raise DockerSetupFailed(f"{BASE_TAG} is missing and debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="devyard-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs), MIRROR],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise DockerSetupFailed(f"debootstrap failed: {result.stderr.strip()[-300:]}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", BASE_TAG], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imported.returncode != 0:
            raise DockerSetupFailed(f"docker import failed: {imported.stderr.strip()}")
    return BASE_TAG


def ensure_test_image(client: Any) -> str:
    """The test image of this checkout, built if missing or stale. Builds are serialized across
    processes (test runs of other checkouts, parallel test workers): two ``docker import``s of
    the base or two builds racing on one tag would leave either one's half."""
    from compose.image import ImageProblem, build_image

    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = ensure_base(client)
        try:
            build_image(client, TEST_TAG, base)
        except ImageProblem as exc:
            raise DockerSetupFailed(str(exc)) from exc
    return TEST_TAG
