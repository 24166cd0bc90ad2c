"""`yard deploy render`: the files it writes, and Kubernetes manifests valid against the real schemas."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from compose.deploy import DeployOptions, RenderProblem, compose_file, kubernetes_manifests
from control.secretbox import new_key
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
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": 8421, "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert "--replica" in container["command"] and container["image"] == "registry.example/devyard:0.1.0"
    pvc = by_name[("PersistentVolumeClaim", "devyard-volume")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"] == "nfs-rwx"
    secret = by_name[("Secret", "devyard-secrets")]
    assert secret["stringData"]["DEVYARD_DATABASE_URL"] == OPTIONS.database_url
    Fernet(secret["stringData"]["DEVYARD_SECRET_KEYS"])  # a usable key, the one of these options
    assert secret["stringData"]["DEVYARD_SECRET_KEYS"] == OPTIONS.secret_keys
    settings = by_name[("ConfigMap", "devyard-settings")]["data"]
    assert settings["DEVYARD_OBJECT_STORE_URL"] == "s3://devyard-bucket/prod"
    assert settings["DEVYARD_S3_ENDPOINT"] == "http://minio.example:9000"
    agent = by_name[("Deployment", "devyard-agent")]["spec"]["template"]["spec"]
    assert agent["serviceAccountName"] == "devyard-agent"
    assert agent["containers"][0]["command"][:4] == ["yard", "agent", "--substrate", "kubernetes"]
    rules = by_name[("Role", "devyard-agent")]["rules"]
    assert {"jobs", "jobs/status"} <= set(rules[1]["resources"])


def test_without_a_tls_secret_the_cluster_network_is_plain_http_on_purpose() -> None:
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in kubernetes_manifests(OPTIONS)}
    # The replicas bind 0.0.0.0: without this they would each make a self-signed certificate,
    # and the agent would refuse to send its token over plain HTTP to the Service.
    assert by_name[("ConfigMap", "devyard-settings")]["data"]["DEVYARD_INSECURE_HTTP"] == "true"
    agent = by_name[("Deployment", "devyard-agent")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "DEVYARD_URL", "value": "http://devyard-api.devyard.svc:8421"} in agent["env"]
    assert compose_file(OPTIONS)["services"]["api"]["environment"]["DEVYARD_INSECURE_HTTP"] == "true"


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
def test_a_tls_secret_makes_the_replicas_serve_tls_and_the_agent_pin_it(version: str) -> None:
    manifests = kubernetes_manifests(DeployOptions(**{**OPTIONS.__dict__, "tls_secret": "devyard-tls"}))
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    assert "DEVYARD_INSECURE_HTTP" not in by_name[("ConfigMap", "devyard-settings")]["data"]
    api = by_name[("Deployment", "devyard-api")]["spec"]["template"]["spec"]
    container = api["containers"][0]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {"name": "DEVYARD_TLS_CERT", "value": "/etc/devyard/tls/tls.crt"} in container["env"]
    assert {"name": "tls", "secret": {"secretName": "devyard-tls"}} in api["volumes"]
    agent = by_name[("Deployment", "devyard-agent")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "DEVYARD_URL", "value": "https://devyard-api.devyard.svc:8421"} in agent["env"]
    assert {"name": "DEVYARD_CERTIFICATE_FILE", "value": "/etc/devyard/tls/tls.crt"} in agent["env"]
    assert {"name": "tls", "mountPath": "/etc/devyard/tls", "readOnly": True} in agent["volumeMounts"]


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
        ({"secret_keys": "not-a-key"}, "Key 1 of --secret-keys is not a Fernet key"),
        ({"tls_secret": "Not_A_Name"}, "is not a Kubernetes Secret name"),
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
    written = [Path(p) for p in json.loads(result.stdout)]
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


def test_each_rendering_gets_a_new_key_unless_one_is_passed() -> None:
    first, second = (
        DeployOptions(OPTIONS.database_url, OPTIONS.object_store_url),
        DeployOptions(OPTIONS.database_url, OPTIONS.object_store_url),
    )
    assert first.secret_keys != second.secret_keys
    assert OPTIONS.secret_keys not in repr(OPTIONS)
    kept = f"{new_key()},{new_key()}"
    env = compose_file(DeployOptions(OPTIONS.database_url, OPTIONS.object_store_url, secret_keys=kept))
    assert env["services"]["api"]["environment"]["DEVYARD_SECRET_KEYS"] == "${DEVYARD_SECRET_KEYS}"


def test_rendered_keys_are_private_files_and_a_passed_key_is_kept(tmp_path: Path) -> None:
    common = ["--database-url", OPTIONS.database_url, "--object-store-url", OPTIONS.object_store_url]
    key = new_key()
    result = yard("deploy", "render", "-t", "kubernetes", "-o", str(tmp_path / "k"), *common, "--secret-keys", key)
    assert result.returncode == 0, result.stderr
    [secret_file] = (tmp_path / "k").glob("*-secret-*.yaml")
    assert yaml.safe_load(secret_file.read_text())["stringData"]["DEVYARD_SECRET_KEYS"] == key
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    written = yard("deploy", "render", "-t", "compose", "-o", str(tmp_path / "c"), *common, "--json")
    assert written.returncode == 0, written.stderr
    env_file = tmp_path / "c" / ".env.example"
    assert str(env_file) in json.loads(written.stdout)
    [line] = [ln for ln in env_file.read_text().splitlines() if ln.startswith("DEVYARD_SECRET_KEYS=")]
    Fernet(line.split("=", 1)[1])
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert_one_sentence_error(
        yard("deploy", "render", "-t", "compose", "-o", str(tmp_path / "x"), *common, "--secret-keys", "nope"),
        "is not a Fernet key",
    )
