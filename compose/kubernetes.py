"""The Kubernetes launcher: runs as Jobs, develop servers as Pods with a Service.

The manifests come from :mod:`compose.k8s_manifests`; this module only talks to the API server
(the official ``kubernetes`` client, in-cluster config or a kubeconfig). Handles are
``job/<namespace>/<name>`` or ``pod/<namespace>/<name>``, readable again after an agent restart.
Kubernetes cannot deliver arbitrary signals: SIGTERM and SIGINT become a pod deletion with the
grace period (the container gets SIGTERM, then SIGKILL), SIGKILL a deletion without one.

No cluster is reachable on the machines this was built on: the manifests are validated against
the real schemas in tests, the call sequence is tested against a recording stand-in of the
client, and the live tests in tests/compose/test_kubernetes.py run only with ``KUBECONFIG`` set.
"""

from __future__ import annotations

import signal as signals
import sys
import time
from pathlib import Path
from typing import Any

from compose.k8s_manifests import (
    DEVSERVER_PORT,
    ClusterConfig,
    devserver_pod,
    devserver_service,
    dns_name,
    pod_spec,
    run_job,
)
from compose.launcher import LaunchError, LaunchSpec, LaunchState, LaunchStatus


def load_client_config() -> None:
    """In-cluster service account first, then the kubeconfig; LaunchError when neither works."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except ConfigException:
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except (ConfigException, OSError, TypeError) as exc:
            raise LaunchError(
                "No Kubernetes cluster is configured: run the agent in a pod (in-cluster config) or set KUBECONFIG."
            ) from exc


class KubernetesLauncher:
    substrate = "kubernetes"
    bind_host = "0.0.0.0"  # the Service reaches the pod on the cluster network
    devserver_port = DEVSERVER_PORT

    def __init__(self, core: Any, batch: Any, config: ClusterConfig) -> None:
        self.core = core
        self.batch = batch
        self.config = config

    @classmethod
    def from_settings(cls, settings: Any) -> KubernetesLauncher:
        load_client_config()
        from kubernetes import client

        config = ClusterConfig(
            namespace=settings.kubernetes_namespace,
            volume_claim=settings.kubernetes_volume_claim,
            data_root=Path(settings.data_dir),
            image=settings.docker_image,
            python=settings.docker_python,
            service_account=settings.kubernetes_service_account,
        )
        return cls(client.CoreV1Api(), client.BatchV1Api(), config)

    # ------------------------------------------------------------------ start

    def manifests(self, spec: LaunchSpec, name: str) -> list[dict[str, Any]]:
        """The objects a launch creates (also what tests validate)."""
        argv = [self.config.python if arg == sys.executable else arg for arg in spec.argv[:1]] + spec.argv[1:]
        env = {k: v for k, v in spec.env.items() if k not in ("PATH", "HOME", "PYTHONPATH")}
        paths = list(spec.paths)
        if spec.log_path is not None:
            env["DEVYARD_LAUNCH_LOG"] = str(spec.log_path)
            argv = ["sh", "-c", 'exec "$0" "$@" >>"$DEVYARD_LAUNCH_LOG" 2>&1', *argv]
            paths.append(spec.log_path.parent)
        devserver = "devyard.devserver" in spec.labels
        pod = pod_spec(
            self.config,
            command=argv,
            env=env,
            cwd=spec.cwd,
            paths=paths,
            resources=spec.resources,
            image=spec.image,
            ports=[DEVSERVER_PORT] if devserver else None,
        )
        if devserver:
            return [
                devserver_service(self.config, name, spec.labels),
                devserver_pod(self.config, name, spec.labels, pod),
            ]
        return [run_job(self.config, name, spec.labels, pod)]

    def start(self, spec: LaunchSpec) -> str:
        from kubernetes.client.exceptions import ApiException

        name = dns_name(f"{spec.name}-{int(time.time() * 1000) % 10**8}")
        namespace = self.config.namespace
        created: list[dict[str, Any]] = []
        try:
            for manifest in self.manifests(spec, name):
                if manifest["kind"] == "Job":
                    self.batch.create_namespaced_job(namespace, manifest)
                elif manifest["kind"] == "Service":
                    self.core.create_namespaced_service(namespace, manifest)
                else:
                    self.core.create_namespaced_pod(namespace, manifest)
                created.append(manifest)
        except ApiException as exc:
            for manifest in created:  # no half-launched work left behind
                self._delete(manifest["kind"], name, grace_s=0)
            raise LaunchError(f"Kubernetes refused to start {name}: {exc.reason} ({exc.status}).") from exc
        kind = "job" if created[-1]["kind"] == "Job" else "pod"
        return f"{kind}/{namespace}/{name}"

    def endpoint(self, handle: str, port: int) -> str:
        _kind, namespace, name = handle.split("/", 2)
        return f"https://{name}.{namespace}.svc:{DEVSERVER_PORT}"

    # ------------------------------------------------------------------ control

    def status(self, handle: str) -> LaunchStatus:
        from kubernetes.client.exceptions import ApiException

        kind, namespace, name = handle.split("/", 2)
        try:
            if kind == "job":
                job = self.batch.read_namespaced_job_status(name, namespace)
                if (job.status.succeeded or 0) > 0:
                    return LaunchStatus(LaunchState.exited, 0)
                if (job.status.failed or 0) == 0:
                    return LaunchStatus(LaunchState.running)
                pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
                return self._ended(pods[0] if pods else None)
            pod = self.core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return LaunchStatus(LaunchState.unknown)
            return LaunchStatus(LaunchState.running, reason="API server unreachable")
        if pod.status.phase in ("Pending", "Running", "Unknown"):
            return LaunchStatus(LaunchState.running)
        return self._ended(pod)

    @staticmethod
    def _ended(pod: Any) -> LaunchStatus:
        statuses = (pod.status.container_statuses or []) if pod is not None else []
        terminated = statuses[0].state.terminated if statuses and statuses[0].state else None
        if terminated is None:
            return LaunchStatus(LaunchState.exited, None)
        return LaunchStatus(LaunchState.exited, terminated.exit_code, terminated.reason)

    def signal(self, handle: str, signum: int) -> bool:
        if signum not in (signals.SIGTERM, signals.SIGINT, signals.SIGKILL):
            return False
        kind, _namespace, name = handle.split("/", 2)
        grace = 0 if signum == signals.SIGKILL else 30
        return self._delete_pods(kind, name, grace)

    def stop(self, handle: str, grace_s: float = 10.0) -> None:
        kind, _namespace, name = handle.split("/", 2)
        if kind == "job":
            self._delete("Job", name, grace_s)
        else:
            self._delete("Pod", name, grace_s)
            self._delete("Service", name, 0)
        deadline = time.monotonic() + grace_s + 10
        while time.monotonic() < deadline and self.status(handle).state is LaunchState.running:
            time.sleep(0.5)

    def _delete_pods(self, kind: str, name: str, grace: int) -> bool:
        from kubernetes.client.exceptions import ApiException

        namespace = self.config.namespace
        try:
            if kind == "pod":
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace)
            else:
                self.core.delete_collection_namespaced_pod(
                    namespace, label_selector=f"job-name={name}", grace_period_seconds=grace
                )
        except ApiException:
            return False
        return True

    def _delete(self, kind: str, name: str, grace_s: float) -> None:
        from kubernetes.client.exceptions import ApiException

        namespace = self.config.namespace
        grace = max(0, round(grace_s))
        try:
            if kind == "Job":
                self.batch.delete_namespaced_job(
                    name, namespace, grace_period_seconds=grace, propagation_policy="Foreground"
                )
            elif kind == "Service":
                self.core.delete_namespaced_service(name, namespace)
            else:
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace)
        except ApiException as exc:
            if exc.status != 404:
                raise LaunchError(f"Kubernetes refused to delete {kind} {name}: {exc.reason}.") from exc
