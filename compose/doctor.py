"""`yard doctor`: check each component a deployment needs and explain what is wrong."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from control.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _creatable(path: Path) -> str | None:
    """Why ``path`` could not be created later (None if it could); creates nothing."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


def _not_there_yet(name: str, what: str, path: Path) -> Check:
    """A check of something `yard up` creates: doctor only looks, so it says whether it could."""
    problem = _creatable(path)
    if problem is not None:
        return Check(name, False, f"The {what} {path} does not exist and cannot be created: {problem}.", True)
    return Check(name, True, f"The {what} {path} does not exist yet; `yard up` creates it.", True)


def check_database(settings: Settings) -> Check:
    from control.datadir import sqlite_files
    from control.db.engine import DatabaseProblem, check_connection, make_engine, redact
    from control.db.migrate import current_revision, head_revision

    url = settings.effective_database_url
    database_file = next(iter(sqlite_files(url)), None)
    if database_file is not None and not database_file.exists():
        return _not_there_yet("database", "SQLite database", database_file)
    try:
        engine = make_engine(url, pool=False)
        check_connection(engine)
        current, head = current_revision(engine), head_revision()
        engine.dispose()
    except DatabaseProblem as exc:
        return Check("database", False, str(exc), True)
    if current != head:
        state = "not initialised" if current is None else f"at revision {current}"
        return Check(
            "database", True, f"{redact(url)} reachable, schema {state} (head {head}); `yard up` migrates it.", True
        )
    return Check("database", True, f"{redact(url)} reachable, schema at head {head}.", True)


def check_object_store(settings: Settings) -> Check:
    from control.objectstore import ObjectNotFound, ObjectStore, ObjectStoreProblem

    url = settings.effective_object_store_url
    if url.startswith("file://"):
        folder = Path(unquote(urlparse(url).path))
        if not folder.exists():
            return _not_there_yet("object store", "object store folder", folder)
    try:
        ObjectStore.from_url(url, s3_endpoint=settings.s3_endpoint, s3_region=settings.s3_region).check()
    except (ObjectStoreProblem, ObjectNotFound) as exc:
        return Check("object store", False, str(exc), True)
    return Check("object store", True, f"{url} accepts writes, reads and deletes.", True)


def check_docker(settings: Settings) -> Check:
    required = settings.substrate == "docker"
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return Check("docker engine", False, "The docker Python package is not installed.", required)
    try:
        client = docker.from_env(timeout=3)
        version = client.version().get("Version", "?")
        client.close()
    except DockerException as exc:
        hint = "start dockerd" if required else "only needed for DEVYARD_SUBSTRATE=docker"
        first = str(exc).splitlines()[0][:200]
        return Check("docker engine", False, f"Not reachable ({first}); {hint}.", required)
    return Check("docker engine", True, f"Docker Engine {version} reachable.", required)


def check_kubeconfig(settings: Settings) -> Check:
    required = settings.substrate == "kubernetes"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return Check("kubernetes", True, "Running in a cluster; in-cluster config will be used.", required)
    paths = [Path(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths = paths or [Path.home() / ".kube" / "config"]
    found = [p for p in paths if p.is_file()]
    if not found:
        hint = "set KUBECONFIG" if required else "only needed for DEVYARD_SUBSTRATE=kubernetes"
        return Check("kubernetes", False, f"No kubeconfig at {', '.join(map(str, paths))}; {hint}.", required)
    try:
        from kubernetes import config as kube_config

        contexts, active = kube_config.list_kube_config_contexts(config_file=str(found[0]))  # type: ignore[no-untyped-call]
    except Exception as exc:  # the kubernetes loader raises many types for bad files
        return Check("kubernetes", False, f"{found[0]} cannot be read: {str(exc)[:200]}.", required)
    name = active.get("name", "?") if active else "none"
    return Check("kubernetes", True, f"{found[0]}: {len(contexts)} context(s), current '{name}'.", required)


def run_checks(settings: Settings) -> list[Check]:
    return [check_database(settings), check_object_store(settings), check_docker(settings), check_kubeconfig(settings)]
