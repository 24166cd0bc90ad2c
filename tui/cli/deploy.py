"""`yard deploy ...`: render the control plane for docker compose or Kubernetes; build the image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tui.cli.output import console, fail, print_json

app = typer.Typer(
    help="Deploy devyard: render docker compose or Kubernetes files, build the image.", no_args_is_help=True
)


@app.command()
def render(
    target: Annotated[str, typer.Option("--target", "-t", help="compose or kubernetes.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files into (created).")],
    database_url: Annotated[
        str, typer.Option("--database-url", help="External PostgreSQL, e.g. postgresql://devyard:PW@db:5432/devyard.")
    ],
    object_store_url: Annotated[
        str, typer.Option("--object-store-url", help="S3 bucket and prefix, s3://BUCKET/PREFIX.")
    ],
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="Endpoint of an S3-compatible store (MinIO, SeaweedFS).")
    ] = None,
    image: Annotated[str, typer.Option("--image", help="The devyard image to run.")] = "devyard:latest",
    replicas: Annotated[int, typer.Option("--replicas", help="API replicas (Kubernetes).")] = 2,
    namespace: Annotated[str, typer.Option("--namespace", help="Kubernetes namespace.")] = "devyard",
    storage_class: Annotated[
        str | None, typer.Option("--storage-class", help="StorageClass of the ReadWriteMany volume claim.")
    ] = None,
    secret_keys: Annotated[
        str | None,
        typer.Option(
            "--secret-keys",
            help="Fernet key(s) that encrypt environment secrets, comma-separated; re-rendering an existing "
            "deployment must pass its key \\[default: a new key].",
        ),
    ] = None,
    tls_secret: Annotated[
        str | None,
        typer.Option(
            "--tls-secret",
            help="Kubernetes: a kubernetes.io/tls Secret the API replicas serve TLS with \\[default: none: plain HTTP "
            "inside the cluster, TLS at your ingress].",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the written files as JSON.")] = False,
) -> None:
    """Write a docker-compose file or Kubernetes manifests (and a Dockerfile) for the control plane."""
    from compose.deploy import DeployOptions
    from compose.deploy import render as render_files

    options = DeployOptions(
        database_url=database_url,
        object_store_url=object_store_url,
        s3_endpoint=s3_endpoint,
        image=image,
        replicas=replicas,
        namespace=namespace,
        storage_class=storage_class,
        tls_secret=tls_secret,
        **({"secret_keys": secret_keys} if secret_keys else {}),
    )
    try:
        written = render_files(target, options, out)
    except OSError as exc:
        fail(f"Cannot write to {out}: {exc.strerror}.")
    if as_json:
        print_json([str(p) for p in written])
        return
    for path in written:
        console.print(str(path), highlight=False)
    apply = f"kubectl apply -f {out}" if target == "kubernetes" else f"docker compose -f {out}/docker-compose.yml up -d"
    where = "the Secret" if target == "kubernetes" else ".env.example"
    key = "the key you passed" if secret_keys else "a new key"
    console.print(
        f"Wrote {len(written)} files; review them (secrets say REPLACE-ME; DEVYARD_SECRET_KEYS in {where} is {key}: "
        f"back it up with the database, and pass it with --secret-keys when rendering again), then: {apply}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def image(
    tag: Annotated[str, typer.Option("--tag", help="Tag of the image to build.")] = "devyard:latest",
    base: Annotated[
        str, typer.Option("--base", help="A local image with Python 3.11 to build on.")
    ] = "python:3.11-slim",
) -> None:
    """Build the devyard image for the Docker substrate from this installation, offline."""
    from compose.docker import connect
    from compose.image import build_image

    image_id, built = build_image(connect(), tag, base)
    console.print(f"{'Built' if built else 'Up to date:'} {tag} ({image_id[7:19]}).", highlight=False)
