"""Build the devyard image for the Docker substrate from what is installed here, offline.

The image is a base with Python 3.11 (``python:3.11-slim`` where a registry is reachable, or a
local ``debootstrap`` + ``docker import`` image where none is), a venv at ``/opt/devyard/venv``
holding a copy of this installation's site-packages (development tools left out), and devyard's
own packages. Nothing is downloaded while building, so it works on machines that reach no
registry and no package index. Wheels here are cp311 manylinux builds, which run on any glibc
base with Python 3.11.

The tag's content label is a hash of the packages and the source, so an unchanged installation
reuses the image it built before.
"""

from __future__ import annotations

import hashlib
import io
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGES = ("control", "runner", "devserver", "sync", "compose", "tui")
# Development tools and test-only packages: not needed to run devyard, and large.
SKIP = (
    "mypy", "mypyc", "ruff", "seaweedfs", "_pytest", "pytest", "kubernetes_validate", "syrupy",
    "pip", "setuptools", "__editable__", "devyard-", "py.", "pluggy", "iniconfig",
)  # fmt: skip
CONTENT_LABEL = "devyard.content"
DOCKERFILE = """\
FROM {base}
RUN python3 -c "import sys; assert sys.version_info[:2] == (3, 11), 'the base image needs Python 3.11'" \\
 && python3 -m venv /opt/devyard/venv
COPY site-packages/ /opt/devyard/venv/lib/python3.11/site-packages/
COPY src/ /opt/devyard/src/
ENV PYTHONPATH=/opt/devyard/src \\
    PATH=/opt/devyard/venv/bin:/usr/local/bin:/usr/bin:/bin \\
    PYTHONDONTWRITEBYTECODE=1
LABEL {label}="{content}"
"""


class ImageProblem(Exception):
    """The image could not be built; one sentence for the user."""


def _source_root() -> Path:
    import control

    return Path(control.__file__).resolve().parent.parent


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _files() -> Iterator[tuple[str, Path]]:
    """(path in the build context, file) for everything the image holds."""
    site = _site_packages()
    for entry in sorted(site.iterdir()):
        if entry.name.startswith(SKIP) or entry.name in PACKAGES or entry.suffix == ".pth":
            continue
        paths = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
        for path in paths:
            if "__pycache__" not in path.parts:
                yield f"site-packages/{path.relative_to(site)}", path
    root = _source_root()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield f"src/{path.relative_to(root)}", path


def content_hash() -> str:
    """Changes when any packaged file changes (by path, size and mtime; cheap to compute)."""
    digest = hashlib.sha256()
    for name, path in _files():
        stat = path.stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _context(base: str, content: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dockerfile = DOCKERFILE.format(base=base, label=CONTENT_LABEL, content=content).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for name, path in _files():
            tar.add(path, arcname=name, recursive=False)
    buffer.seek(0)
    return buffer


def build_image(client: Any, tag: str, base: str) -> tuple[str, bool]:
    """Build (or reuse) ``tag`` from ``base``; returns (image id, built)."""
    from docker.errors import APIError, BuildError, ImageNotFound

    content = content_hash()
    try:
        existing = client.images.get(tag)
        if existing.labels.get(CONTENT_LABEL) == content:
            return str(existing.id), False
    except ImageNotFound:
        pass
    try:
        client.images.get(base)
    except ImageNotFound:
        raise ImageProblem(
            f"The base image {base} is not on this host; pull it, or build one offline "
            "(debootstrap --variant=minbase --include=python3,python3-venv bookworm DIR && "
            "tar -C DIR -c . | docker import - NAME) and pass --base NAME."
        ) from None
    try:
        image, _ = client.images.build(
            fileobj=_context(base, content), custom_context=True, tag=tag, rm=True, forcerm=True, pull=False
        )
    except (BuildError, APIError) as exc:
        raise ImageProblem(f"Building {tag} failed: {exc}") from exc
    return str(image.id), True
