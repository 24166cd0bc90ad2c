"""The Kubernetes launcher. No cluster is reachable where this was built, so:

- every manifest it creates is validated against the real Kubernetes schemas (kubernetes-validate,
  strict: unknown fields fail);
- its calls are checked against ``RecordingCluster``, a stand-in for the API server that records
  what was created and lets the test set what the cluster reports — a mock at the one boundary
  that cannot be reached here, and only that;
- ``test_live_*`` runs against a real cluster only when ``KUBECONFIG`` is set.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client.exceptions import ApiException

from compose.k8s_manifests import ClusterConfig, dns_name
from compose.kubernetes import KubernetesLauncher
from compose.launcher import LaunchError, LaunchSpec, LaunchState

VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
ROOT = Path("/devyard")


def run_spec(run_id: int = 12, **resources: Any) -> LaunchSpec:
    return LaunchSpec(
        name=f"devyard-run-{run_id}",
        argv=[sys.executable, "-m", "runner.worker", "--spec", f"/devyard/spool/{run_id}/spec.json"],
        env={"DEVYARD_WORKER_URL": "http://devyard-api.devyard.svc:8421", "PATH": "/host/bin", "A": "1"},
        cwd=ROOT / "volume" / "runs" / str(run_id),
        labels={"devyard.run": str(run_id)},
        resources=resources,
        paths=(ROOT / "volume" / "runs" / str(run_id), ROOT / "spool" / str(run_id)),
    )


def devserver_spec() -> LaunchSpec:
    return LaunchSpec(
        name="devyard-devserver-3",
        argv=[sys.executable, "-m", "devserver", "--workspace", "/devyard/volume/workspaces/alice/shop"],
        env={},
        cwd=ROOT / "volume" / "workspaces" / "alice" / "shop",
        labels={"devyard.devserver": "3"},
        log_path=ROOT / "devservers" / "3" / "server.log",
        paths=(ROOT / "volume" / "workspaces" / "alice" / "shop", ROOT / "devservers" / "3"),
    )


def launcher(cluster: RecordingCluster | None = None, **config: Any) -> KubernetesLauncher:
    cluster = cluster or RecordingCluster()
    return KubernetesLauncher(cluster, cluster, ClusterConfig(data_root=ROOT, **config))


@pytest.mark.parametrize("version", VERSIONS)
def test_run_jobs_validate_and_say_what_devyard_needs(version: str) -> None:
    spec = run_spec(
        memory_mb=512,
        cpus=1.5,
        node_selector={"pool": "runs"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "runs", "effect": "NoSchedule"}],
    )
    [job] = launcher(service_account="devyard-runs").manifests(spec, "devyard-run-12-1")
    kubernetes_validate.validate(job, version, strict=True)
    assert job["spec"]["backoffLimit"] == 0  # retries are devyard's
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][0] == "/opt/devyard/venv/bin/python"  # the image's Python, not ours
    assert {"name": "PATH", "value": "/host/bin"} not in container["env"]
    assert container["resources"] == {
        "limits": {"memory": "512Mi", "cpu": "1.5"},
        "requests": {"memory": "512Mi", "cpu": "1.5"},
    }
    assert pod["nodeSelector"] == {"pool": "runs"} and pod["tolerations"][0]["key"] == "dedicated"
    assert pod["serviceAccountName"] == "devyard-runs" and pod["restartPolicy"] == "Never"
    mounts = {m["mountPath"]: m["subPath"] for m in container["volumeMounts"]}
    assert mounts == {"/devyard/spool/12": "spool/12", "/devyard/volume/runs/12": "volume/runs/12"}
    assert pod["volumes"] == [{"name": "volume", "persistentVolumeClaim": {"claimName": "devyard-volume"}}]
    assert job["metadata"]["labels"]["devyard.dev/run"] == "12"


@pytest.mark.parametrize("version", VERSIONS)
def test_develop_servers_are_a_pod_and_a_service_over_their_own_workspace(version: str) -> None:
    service, pod = launcher().manifests(devserver_spec(), "devyard-devserver-3-1")
    for manifest in (service, pod):
        kubernetes_validate.validate(manifest, version, strict=True)
    assert service["spec"]["selector"] == {"devyard.dev/pod": "devyard-devserver-3-1"}
    assert pod["metadata"]["labels"]["devyard.dev/pod"] == "devyard-devserver-3-1"
    container = pod["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8000, "name": "http"}]
    subpaths = sorted(m["subPath"] for m in container["volumeMounts"])
    assert subpaths == ["devservers/3", "volume/workspaces/alice/shop"]  # never the whole volume


def test_paths_outside_the_data_dir_are_refused() -> None:
    spec = run_spec()
    bad = LaunchSpec(**{**spec.__dict__, "paths": (Path("/etc"),)})
    with pytest.raises(ValueError, match="not below the agent's data dir"):
        launcher().manifests(bad, "x")


def test_names_are_dns_labels() -> None:
    assert dns_name("devyard-run-12-99") == "devyard-run-12-99"
    assert dns_name("Dev_Server 3!!") == "dev-server-3"
    assert len(dns_name("x" * 100)) == 63


class RecordingCluster:
    """Stand-in for CoreV1Api + BatchV1Api: records creations and deletions, reports set states."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[tuple[str, str, int | None]] = []
        self.job_status: dict[str, Any] = {}
        self.pod_status: dict[str, Any] = {}
        self.refuse_kind: str | None = None

    def _create(self, kind: str, manifest: dict[str, Any]) -> None:
        if kind == self.refuse_kind:
            raise ApiException(status=403, reason="Forbidden")
        self.objects[(kind, manifest["metadata"]["name"])] = manifest

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> None:
        self._create("Job", body)

    def create_namespaced_service(self, namespace: str, body: dict[str, Any]) -> None:
        self._create("Service", body)

    def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
        self._create("Pod", body)

    def read_namespaced_job_status(self, name: str, namespace: str) -> Any:
        if ("Job", name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(status=SimpleNamespace(**{"succeeded": 0, "failed": 0, **self.job_status}))

    def read_namespaced_pod(self, name: str, namespace: str) -> Any:
        if ("Pod", name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return self._pod(self.pod_status)

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> Any:
        return SimpleNamespace(items=[self._pod(self.pod_status)])

    @staticmethod
    def _pod(status: dict[str, Any]) -> Any:
        terminated = status.get("terminated")
        state = SimpleNamespace(terminated=SimpleNamespace(**terminated) if terminated else None)
        return SimpleNamespace(
            status=SimpleNamespace(
                phase=status.get("phase", "Running"), container_statuses=[SimpleNamespace(state=state)]
            )
        )

    def _remove(self, kind: str, name: str, grace: int | None) -> None:
        self.deleted.append((kind, name, grace))
        self.objects.pop((kind, name), None)

    def delete_namespaced_job(self, name: str, namespace: str, **options: Any) -> None:
        self._remove("Job", name, options.get("grace_period_seconds"))

    def delete_namespaced_pod(self, name: str, namespace: str, **options: Any) -> None:
        self._remove("Pod", name, options.get("grace_period_seconds"))

    def delete_namespaced_service(self, name: str, namespace: str, **options: Any) -> None:
        self._remove("Service", name, None)

    def delete_collection_namespaced_pod(self, namespace: str, label_selector: str, **options: Any) -> None:
        self.deleted.append(("Pods", label_selector, options.get("grace_period_seconds")))


def test_a_run_job_lifecycle_against_the_stand_in() -> None:
    cluster = RecordingCluster()
    k8s = launcher(cluster)
    handle = k8s.start(run_spec())
    kind, namespace, name = handle.split("/")
    assert (kind, namespace) == ("job", "devyard") and ("Job", name) in cluster.objects
    assert k8s.status(handle).state is LaunchState.running
    # Cancel: SIGTERM becomes deleting the Job's pods with a grace period.
    assert k8s.signal(handle, signal.SIGTERM) is True
    assert cluster.deleted[-1] == ("Pods", f"job-name={name}", 30)
    assert k8s.signal(handle, signal.SIGUSR1) is False
    cluster.job_status = {"failed": 1}
    cluster.pod_status = {"phase": "Failed", "terminated": {"exit_code": 137, "reason": "OOMKilled"}}
    status = k8s.status(handle)
    assert (status.state, status.exit_code, status.reason) == (LaunchState.exited, 137, "OOMKilled")
    k8s.stop(handle, grace_s=0)
    assert ("Job", name, 0) in cluster.deleted
    assert k8s.status(handle).state is LaunchState.unknown


def test_a_develop_server_pod_and_service_and_their_endpoint() -> None:
    cluster = RecordingCluster()
    k8s = launcher(cluster)
    handle = k8s.start(devserver_spec())
    _, _, name = handle.split("/")
    assert {kind for kind, _ in cluster.objects} == {"Pod", "Service"}
    assert k8s.endpoint(handle, 0) == f"https://{name}.devyard.svc:8000"
    cluster.pod_status = {"phase": "Failed", "terminated": {"exit_code": 1, "reason": "Error"}}
    assert k8s.status(handle).exit_code == 1
    k8s.stop(handle, grace_s=0)
    assert ("Pod", name, 0) in cluster.deleted and ("Service", name, None) in cluster.deleted


def test_a_refused_creation_leaves_nothing_half_made() -> None:
    cluster = RecordingCluster()
    cluster.refuse_kind = "Pod"
    with pytest.raises(LaunchError, match="Kubernetes refused to start devyard-devserver-3"):
        launcher(cluster).start(devserver_spec())
    assert cluster.objects == {} and cluster.deleted[0][0] == "Service"


def test_no_cluster_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from compose.substrates import make_launcher
    from control.settings import load_settings

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LaunchError) as refused:
        make_launcher("kubernetes", load_settings(tmp_path))
    assert str(refused.value).startswith("No Kubernetes cluster is configured")


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="live Kubernetes tests need KUBECONFIG")
def test_live_a_run_job_completes(tmp_path: Path) -> None:
    from kubernetes import client, config

    config.load_kube_config()  # type: ignore[no-untyped-call]
    k8s = KubernetesLauncher(client.CoreV1Api(), client.BatchV1Api(), ClusterConfig(data_root=ROOT))
    spec = LaunchSpec(name="devyard-live-check", argv=["sh", "-c", "exit 0"], env={}, cwd=ROOT / "volume")
    handle = k8s.start(spec)
    try:
        import time

        deadline = time.monotonic() + 120
        while k8s.status(handle).state is LaunchState.running:
            assert time.monotonic() < deadline
            time.sleep(1)
        assert k8s.status(handle).exit_code == 0
    finally:
        k8s.stop(handle, grace_s=0)
