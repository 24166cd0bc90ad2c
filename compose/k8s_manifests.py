"""Kubernetes objects for devyard work, as plain dicts (validated against the real schemas in tests).

Runs are Jobs with ``backoffLimit: 0`` (retries belong to devyard, not to the Job controller);
develop servers are Pods with ``restartPolicy: Never`` (the agent restarts them with back-off and
reports it) plus a Service giving them a stable name. Everything mounts the shared volume, a
ReadWriteMany PersistentVolumeClaim, with one ``subPath`` per folder the work needs (the run
folder or the user's workspace, the spool, state files), at the same path as in the agent's pod,
so paths in argv mean the same everywhere. A develop server sees only its own workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEVSERVER_PORT = 8000
MAX_NAME = 63


@dataclass(frozen=True)
class ClusterConfig:
    namespace: str = "devyard"
    volume_claim: str = "devyard-volume"
    # Where the agent's pod mounts the claim: its data dir. Every mounted path is below it.
    data_root: Path = Path("/devyard")
    image: str = "devyard:latest"
    python: str = "/opt/devyard/venv/bin/python"
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def dns_name(name: str) -> str:
    """A valid DNS-1123 label from a launch name (lowercase, '-', at most 63 characters)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return cleaned[:MAX_NAME].rstrip("-") or "devyard"


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if resources.get("memory_mb"):
        limits["memory"] = requests["memory"] = f"{int(resources['memory_mb'])}Mi"
    if resources.get("cpus"):
        limits["cpu"] = str(resources["cpus"])
        requests["cpu"] = str(resources.get("cpu_request", resources["cpus"]))
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def _mounts(config: ClusterConfig, paths: list[Path]) -> list[dict[str, Any]]:
    mounts = []
    for path in sorted(set(paths)):
        try:
            sub = path.relative_to(config.data_root)
        except ValueError:
            raise ValueError(f"{path} is not below the agent's data dir {config.data_root}") from None
        mounts.append({"name": "volume", "mountPath": str(path), "subPath": str(sub)})
    return mounts


def pod_spec(
    config: ClusterConfig,
    *,
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    paths: list[Path],
    resources: dict[str, Any],
    image: str | None,
    ports: list[int] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image or config.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "workingDir": str(cwd),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "volumeMounts": _mounts(config, [*paths, cwd]),
    }
    if ports:
        container["ports"] = [{"containerPort": p, "name": "http"} for p in ports]
    limits = _resources(resources)
    if limits:
        container["resources"] = limits
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "volume", "persistentVolumeClaim": {"claimName": config.volume_claim}}],
        "automountServiceAccountToken": False,
    }
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in config.image_pull_secrets]
    if resources.get("node_selector"):
        spec["nodeSelector"] = {str(k): str(v) for k, v in dict(resources["node_selector"]).items()}
    if resources.get("tolerations"):
        spec["tolerations"] = [dict(t) for t in resources["tolerations"]]
    return spec


def _metadata(config: ClusterConfig, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": config.namespace,
        "labels": {"app.kubernetes.io/managed-by": "devyard", **config.labels, **_label_values(labels)},
    }


def _label_values(labels: dict[str, str]) -> dict[str, str]:
    """devyard's labels (``devyard.run`` ...) as valid Kubernetes label keys."""
    return {f"devyard.dev/{k.removeprefix('devyard.') or 'managed'}": dns_name(v) for k, v in labels.items()}


def run_job(config: ClusterConfig, name: str, labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    metadata = _metadata(config, name, labels)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": metadata["labels"]}, "spec": pod},
        },
    }


def devserver_pod(config: ClusterConfig, name: str, labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    metadata = _metadata(config, name, labels)
    metadata["labels"]["devyard.dev/pod"] = name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod}


def devserver_service(config: ClusterConfig, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(config, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": {"devyard.dev/pod": name},
            "ports": [{"name": "http", "port": DEVSERVER_PORT, "targetPort": DEVSERVER_PORT}],
        },
    }
