"""`yard deploy render`: the files it writes, and Kubernetes manifests valid against the real schemas."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from compose.deploy import DeployOptions, RenderProblem, compose_file, kubernetes_manifests
from tests.tui.test_cli import assert_one_sentence_error, yard

OPTIONS = DeployOptions(
    database_url="postgresql://devyard:pw@db.example:5432/devyard",
    object_store_url="s3://devyard-bucket/prod",
    s3_endpoint="http://minio.example:9000",
    image="registry.example/devyard:0.1.0",
    replicas=3,
    storage_class="nfs-rwx",
)


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
def test_every_kubernetes_manifest_validates(version: str) -> None:
    manifests = kubernetes_manifests(OPTIONS)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)
    kinds = [m["kind"] for m in manifests]
    assert kinds.count("Deployment") == 3 and "PersistentVolumeClaim" in kinds and "Service" in kinds
    assert {"Secret", "ConfigMap", "Role", "RoleBinding", "ServiceAccount", "Namespace"} <= set(kinds)


def test_the_api_is_replicated_with_health_probes_and_the_volume_is_rwx() -> None:
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in kubernetes_manifests(OPTIONS)}
    api = by_name[("Deployment", "devyard-api")]
    assert api["spec"]["replicas"] == 3
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": 8421}
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert "--replica" in container["command"] and container["image"] == "registry.example/devyard:0.1.0"
    pvc = by_name[("PersistentVolumeClaim", "devyard-volume")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"] == "nfs-rwx"
    secret = by_name[("Secret", "devyard-secrets")]
    assert secret["stringData"]["DEVYARD_DATABASE_URL"] == OPTIONS.database_url
    settings = by_name[("ConfigMap", "devyard-settings")]["data"]
    assert settings["DEVYARD_OBJECT_STORE_URL"] == "s3://devyard-bucket/prod"
    assert settings["DEVYARD_S3_ENDPOINT"] == "http://minio.example:9000"
    agent = by_name[("Deployment", "devyard-agent")]["spec"]["template"]["spec"]
    assert agent["serviceAccountName"] == "devyard-agent"
    assert agent["containers"][0]["command"][:4] == ["yard", "agent", "--substrate", "kubernetes"]
    rules = by_name[("Role", "devyard-agent")]["rules"]
    assert {"jobs", "jobs/status"} <= set(rules[1]["resources"])


def test_compose_runs_api_scheduler_and_a_docker_agent_on_one_host() -> None:
    services = compose_file(OPTIONS)["services"]
    assert set(services) == {"api", "scheduler", "agent"}
    assert services["api"]["ports"] == ["127.0.0.1:8421:8421"]
    agent = services["agent"]
    assert agent["network_mode"] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock" in agent["volumes"]
    # The volume is a host folder at the same path inside: the agent bind-mounts its subfolders.
    assert "/var/lib/devyard:/var/lib/devyard" in agent["volumes"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"database_url": "sqlite:///x.db"}, "needs an external PostgreSQL"),
        ({"object_store_url": "file:///tmp/objects"}, "needs an S3-compatible store"),
        ({"replicas": 0}, "--replicas must be between 1 and 50"),
    ],
)
def test_options_that_cannot_work_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(RenderProblem, match=message):
        kubernetes_manifests(DeployOptions(**{**OPTIONS.__dict__, **changes}))


def test_yard_deploy_render_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    common = ["--database-url", OPTIONS.database_url, "--object-store-url", OPTIONS.object_store_url]
    result = yard("deploy", "render", "--target", "kubernetes", "--out", str(out), *common, "--json")
    assert result.returncode == 0, result.stderr
    written = [Path(p) for p in __import__("json").loads(result.stdout)]
    assert (out / "Dockerfile") in written
    for path in written:
        if path.suffix == ".yaml":
            kubernetes_validate.validate(yaml.safe_load(path.read_text()), kubernetes_validate.latest_version(), True)
    compose = yard("deploy", "render", "--target", "compose", "--out", str(tmp_path / "c"), *common)
    assert compose.returncode == 0
    assert yaml.safe_load((tmp_path / "c" / "docker-compose.yml").read_text())["services"]["agent"]
    assert_one_sentence_error(
        yard("deploy", "render", "--target", "nomad", "--out", str(tmp_path / "n"), *common), "Unknown target 'nomad'"
    )
    assert_one_sentence_error(
        yard(
            "deploy",
            "render",
            "-t",
            "kubernetes",
            "-o",
            str(tmp_path / "x"),
            "--database-url",
            "sqlite:///a",
            "--object-store-url",
            "s3://b",
        ),
        "needs an external PostgreSQL",
    )
