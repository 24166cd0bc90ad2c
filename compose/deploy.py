"""`yard deploy render`: the control plane as a docker-compose file or Kubernetes manifests.

The shape is the one devyard is designed for: stateless API replicas behind a Service, one (or
more) schedulers, agents that only call out, PostgreSQL and an S3-compatible store holding all
state, and the shared volume (a ReadWriteMany claim on Kubernetes, a host folder with Docker) for
workspaces. Nothing here talks to a cluster or an engine: it writes files to review and apply.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from control.secretbox import SecretKeyProblem, new_key, parse_keys

API_PORT = 8421
DATA_DIR = "/var/lib/devyard"
HEALTH = "/api/v1/health"
TLS_DIR = "/etc/devyard/tls"  # where the TLS Secret is mounted

DOCKERFILE = f"""\
# The devyard image: build it from a checkout of devyard (the build context), e.g.
#   docker build -f {{out}}/Dockerfile -t devyard:latest /path/to/devyard
FROM python:3.11-slim
RUN python -m venv /opt/devyard/venv
ENV PATH=/opt/devyard/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src
EXPOSE {API_PORT}
CMD ["python", "-m", "compose.supervisor", "--data-dir", "{DATA_DIR}", "--host", "0.0.0.0", "--port", "{API_PORT}", "--replica"]
"""


class RenderProblem(Exception):
    """The options cannot make a working deployment; one sentence."""


# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9.-]{1,61})[a-z0-9]")
SECRET_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


def _names_a_database(url: str) -> bool:
    """Whether a PostgreSQL URL has a host and a database name, neither a placeholder ("...")."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    database = parts.path.strip("/")
    return bool(host.strip(".")) and bool(database.strip("."))


@dataclass(frozen=True)
class DeployOptions:
    database_url: str
    object_store_url: str
    s3_endpoint: str | None = None
    image: str = "devyard:latest"
    replicas: int = 2
    namespace: str = "devyard"
    storage_class: str | None = None
    volume_size: str = "50Gi"
    agent_substrate: str = "kubernetes"
    # Kubernetes: a kubernetes.io/tls Secret the API replicas serve TLS with (cert-manager writes
    # one); none: plain HTTP inside the cluster, TLS terminated by your ingress.
    tls_secret: str | None = None
    # Encrypt environment secrets at rest (DEVYARD_SECRET_KEYS); a new key unless one is given.
    secret_keys: str = field(default_factory=new_key, repr=False)

    def check(self) -> None:
        if not self.database_url.startswith(("postgresql", "postgres://")):
            raise RenderProblem(
                "A deployment needs an external PostgreSQL: pass --database-url postgresql://USER:PASSWORD@HOST/DB."
            )
        if not _names_a_database(self.database_url):
            # Not echoed: the URL may hold a password.
            raise RenderProblem(
                "--database-url names no host and database (a placeholder such as postgresql://... is not enough); "
                "pass postgresql://USER:PASSWORD@HOST:5432/DB."
            )
        if not self.object_store_url.startswith("s3://"):
            raise RenderProblem(
                "A deployment needs an S3-compatible store: pass --object-store-url s3://BUCKET/PREFIX."
            )
        if not BUCKET.fullmatch(urlsplit(self.object_store_url).netloc):
            raise RenderProblem(
                f"'{self.object_store_url}' names no valid bucket (a placeholder such as s3://... is not enough); "
                "pass --object-store-url s3://BUCKET/PREFIX with your bucket's name."
            )
        if self.tls_secret is not None and not SECRET_NAME.fullmatch(self.tls_secret):
            raise RenderProblem(
                f"'{self.tls_secret}' is not a Kubernetes Secret name (lower-case letters, digits, '-', '.')."
            )
        if not 1 <= self.replicas <= 50:
            raise RenderProblem("--replicas must be between 1 and 50.")
        try:
            parse_keys(self.secret_keys)
        except SecretKeyProblem as exc:
            message = str(exc).replace("DEVYARD_SECRET_KEYS", "--secret-keys")
            raise RenderProblem(
                message.replace("`yard deploy render` generates one", "leave it out for a new one")
            ) from None


def _settings_env(options: DeployOptions) -> dict[str, str]:
    env = {
        # The replicas bind 0.0.0.0 (the pod or container network). With a TLS Secret they serve
        # TLS; without one they serve plain HTTP on purpose: Kubernetes behind an ingress that
        # terminates TLS, compose published on the host's loopback only. The agent talks to them
        # on that same network, so it may too.
        **({} if options.tls_secret else {"DEVYARD_INSECURE_HTTP": "true"}),
        "DEVYARD_OBJECT_STORE_URL": options.object_store_url,
        "DEVYARD_DATA_DIR": DATA_DIR,
        "DEVYARD_SUBSTRATE": options.agent_substrate,
        "DEVYARD_DOCKER_IMAGE": options.image,
        "DEVYARD_KUBERNETES_NAMESPACE": options.namespace,
        "DEVYARD_KUBERNETES_VOLUME_CLAIM": "devyard-volume",
    }
    if options.s3_endpoint:
        env["DEVYARD_S3_ENDPOINT"] = options.s3_endpoint
    return env


# ------------------------------------------------------------------ Kubernetes


def _meta(options: DeployOptions, name: str, component: str | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "devyard", "app.kubernetes.io/managed-by": "devyard"}
    if component:
        labels["app.kubernetes.io/component"] = component
    return {"name": name, "namespace": options.namespace, "labels": labels}


def _container(options: DeployOptions, name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "envFrom": [{"configMapRef": {"name": "devyard-settings"}}, {"secretRef": {"name": "devyard-secrets"}}],
        "volumeMounts": [{"name": "volume", "mountPath": DATA_DIR}],
        **extra,
    }


def _tls(options: DeployOptions) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The API container's TLS variables, and the mount and volume of the TLS Secret (if any)."""
    if not options.tls_secret:
        return {}, [], []
    env = [
        {"name": "DEVYARD_TLS_CERT", "value": f"{TLS_DIR}/tls.crt"},
        {"name": "DEVYARD_TLS_KEY", "value": f"{TLS_DIR}/tls.key"},
    ]
    mounts = [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}]
    return {"env": env}, mounts, [{"name": "tls", "secret": {"secretName": options.tls_secret}}]


def _deployment(
    options: DeployOptions,
    name: str,
    component: str,
    replicas: int,
    container: dict[str, Any],
    extra_volumes: list[dict[str, Any]] | None = None,
    **pod: Any,
) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": "devyard", "app.kubernetes.io/component": component}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(options, name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "containers": [container],
                    "volumes": [
                        {"name": "volume", "persistentVolumeClaim": {"claimName": "devyard-volume"}},
                        *(extra_volumes or []),
                    ],
                    **pod,
                },
            },
        },
    }


def kubernetes_manifests(options: DeployOptions) -> list[dict[str, Any]]:
    """Every object of the deployment, in the order to apply them."""
    options.check()
    scheme = "HTTPS" if options.tls_secret else "HTTP"
    get = {"path": HEALTH, "port": API_PORT, "scheme": scheme}  # the kubelet does not verify certificates
    probe = {"httpGet": get, "periodSeconds": 5, "timeoutSeconds": 3}
    tls_env, tls_mounts, tls_volumes = _tls(options)
    api = _container(
        options,
        "api",
        [
            "python",
            "-m",
            "compose.supervisor",
            "--data-dir",
            DATA_DIR,
            "--host",
            "0.0.0.0",
            "--port",
            str(API_PORT),
            "--replica",
        ],
        ports=[{"containerPort": API_PORT, "name": "http"}],
        readinessProbe={**probe, "failureThreshold": 2},
        livenessProbe={**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
        resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        **tls_env,
    )
    api["volumeMounts"] += tls_mounts
    scheduler = _container(options, "scheduler", ["yard", "scheduler"])
    agent = _container(
        options,
        "agent",
        ["yard", "agent", "--substrate", "kubernetes", "--name", "cluster-agent", "--data-dir", DATA_DIR],
        env=[
            {"name": "DEVYARD_URL", "value": f"{scheme.lower()}://devyard-api.{options.namespace}.svc:{API_PORT}"},
            # Exactly the certificate the replicas serve, read again when the Secret is renewed.
            *([{"name": "DEVYARD_CERTIFICATE_FILE", "value": f"{TLS_DIR}/tls.crt"}] if options.tls_secret else []),
        ],
    )
    agent["volumeMounts"] += tls_mounts
    pvc_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": options.volume_size}},
    }
    if options.storage_class:
        pvc_spec["storageClassName"] = options.storage_class
    secrets = {
        "DEVYARD_DATABASE_URL": options.database_url,
        "DEVYARD_SECRET_KEYS": options.secret_keys,
        "AWS_ACCESS_KEY_ID": "REPLACE-ME",
        "AWS_SECRET_ACCESS_KEY": "REPLACE-ME",
        "DEVYARD_TOKEN": "REPLACE-ME-with-an-agent-token",
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": options.namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(options, "devyard-settings"),
            "data": _settings_env(options),
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(options, "devyard-secrets"),
            "type": "Opaque",
            "stringData": secrets,
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(options, "devyard-volume"),
            "spec": pvc_spec,
        },
        _deployment(options, "devyard-api", "api", options.replicas, api, extra_volumes=tls_volumes),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(options, "devyard-api", "api"),
            "spec": {
                "selector": {"app.kubernetes.io/name": "devyard", "app.kubernetes.io/component": "api"},
                "ports": [{"name": "http", "port": API_PORT, "targetPort": API_PORT}],
            },
        },
        _deployment(options, "devyard-scheduler", "scheduler", 1, scheduler),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(options, "devyard-agent", "agent")},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(options, "devyard-agent", "agent"),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "services"],
                    "verbs": ["get", "list", "watch", "create", "delete", "deletecollection"],
                },
                {
                    "apiGroups": ["batch"],
                    "resources": ["jobs", "jobs/status"],
                    "verbs": ["get", "list", "watch", "create", "delete"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(options, "devyard-agent", "agent"),
            "subjects": [{"kind": "ServiceAccount", "name": "devyard-agent", "namespace": options.namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "devyard-agent"},
        },
        _deployment(
            options, "devyard-agent", "agent", 1, agent, extra_volumes=tls_volumes, serviceAccountName="devyard-agent"
        ),
    ]


# ------------------------------------------------------------------ docker compose


def compose_file(options: DeployOptions) -> dict[str, Any]:
    """One host: API, scheduler and a Docker agent; the volume is a host folder at the same path
    inside and out, because the agent bind-mounts its subfolders into the containers it starts."""
    options.check()
    env = {**_settings_env(options), "DEVYARD_SUBSTRATE": "docker", "DEVYARD_DATABASE_URL": options.database_url}
    env.update(
        {
            "DEVYARD_SECRET_KEYS": "${DEVYARD_SECRET_KEYS}",
            "AWS_ACCESS_KEY_ID": "${AWS_ACCESS_KEY_ID}",
            "AWS_SECRET_ACCESS_KEY": "${AWS_SECRET_ACCESS_KEY}",
        }
    )
    common = {
        "image": options.image,
        "restart": "unless-stopped",
        "environment": env,
        "volumes": [f"{DATA_DIR}:{DATA_DIR}"],
    }
    health = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{API_PORT}{HEALTH}', timeout=3)"
    return {
        "name": "devyard",
        "services": {
            "api": {
                **common,
                "command": [
                    "python",
                    "-m",
                    "compose.supervisor",
                    "--data-dir",
                    DATA_DIR,
                    "--host",
                    "0.0.0.0",
                    "--port",
                    str(API_PORT),
                    "--replica",
                ],
                "ports": [f"127.0.0.1:{API_PORT}:{API_PORT}"],
                "healthcheck": {
                    "test": ["CMD", "python", "-c", health],
                    "interval": "5s",
                    "timeout": "3s",
                    "retries": 6,
                },
            },
            "scheduler": {
                **common,
                "command": ["yard", "scheduler"],
                "depends_on": {"api": {"condition": "service_healthy"}},
            },
            "agent": {
                **common,
                "command": ["yard", "agent", "--substrate", "docker", "--name", "docker-agent", "--data-dir", DATA_DIR],
                # Host networking: the containers it starts use it too, and all reach the API on 127.0.0.1.
                "network_mode": "host",
                "environment": {
                    **env,
                    "DEVYARD_URL": f"http://127.0.0.1:{API_PORT}",
                    "DEVYARD_TOKEN": "${DEVYARD_AGENT_TOKEN}",
                },
                "volumes": [f"{DATA_DIR}:{DATA_DIR}", "/var/run/docker.sock:/var/run/docker.sock"],
                "depends_on": {"api": {"condition": "service_healthy"}},
            },
        },
    }


ENV_EXAMPLE = """\
# Values docker compose substitutes into docker-compose.yml; copy to .env and fill in.
# The key that encrypts environment secrets in the database, generated for this deployment: keep
# it with the database backups (without it the secrets cannot be read). To rotate, put a new key
# first: NEW,OLD.
DEVYARD_SECRET_KEYS={secret_keys}
AWS_ACCESS_KEY_ID=
AWS_SECRET_ACCESS_KEY=
# An agent token: `yard users add docker-agent --role agent` against the API prints one.
DEVYARD_AGENT_TOKEN=
"""


def render(target: str, options: DeployOptions, out: Path) -> list[Path]:
    """Write the files for ``target`` (compose or kubernetes) into ``out``; returns their paths."""
    options.check()  # before the folder exists: a refused render leaves nothing behind
    if target == "compose" and options.tls_secret:
        raise RenderProblem("--tls-secret is for --target kubernetes; compose publishes the API on 127.0.0.1 only.")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str, private: bool = False) -> None:
        path = out / name
        if private:  # it holds the secret key: only the owner may read it
            path.unlink(missing_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
        else:
            path.write_text(text)
        written.append(path)

    if target == "kubernetes":
        for index, manifest in enumerate(kubernetes_manifests(options)):
            name = manifest["metadata"]["name"]
            text = yaml.safe_dump(manifest, sort_keys=False)
            write(f"{index:02d}-{manifest['kind'].lower()}-{name}.yaml", text, private=manifest["kind"] == "Secret")
    elif target == "compose":
        write("docker-compose.yml", yaml.safe_dump(compose_file(options), sort_keys=False))
        write(".env.example", ENV_EXAMPLE.format(secret_keys=options.secret_keys), private=True)
    else:
        raise RenderProblem(f"Unknown target {target!r}; use compose or kubernetes.")
    write("Dockerfile", DOCKERFILE.format(out=out))
    return written
