"""`yard doctor`: check each component a deployment needs and explain what is wrong.

The stores are checked by control.checks; the container engines here (only compose/ imports them)."""

from __future__ import annotations

import os
from pathlib import Path

from control.checks import Check, check_database, check_object_store
from control.settings import Settings


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
