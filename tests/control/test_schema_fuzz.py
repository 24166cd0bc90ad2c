"""Schema fuzzing of the live API (issue 15, "keep it so"): schemathesis generates requests from
the OpenAPI document of a real server, as admin and as viewer, and every answer must be no 5xx,
a declared status with a declared content type and body, and for a viewer never a mutation.

Bounded and reproducible: a few examples per operation, derandomized (a fixed seed per test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.stack import Stack, running_stack

EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}

# Operations the fuzzer does not call, each with why. Everything else in the document is called.
EXCLUDED: dict[tuple[str, str], str] = {
    ("DELETE", "/api/v1/tokens/{token_id}"): "revokes tokens, the fuzzer's own among them",
    ("PATCH", "/api/v1/users/{name}"): "disables or demotes the viewer whose token the viewer leg uses",
    ("GET", "/api/v1/events"): "an endless stream",
    ("GET", "/api/v1/runs/{run_id}/logs"): "follow=true on a queued run waits for lines (no agent here)",
    ("POST", "/api/v1/agent/work"): "a long-poll that holds the request up to wait_s (60 s)",
}

schema = schemathesis.pytest.from_fixture("api_schema").exclude(name=[f"{m} {p}" for m, p in EXCLUDED])


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A real API over SQLite with something to find: a project, an environment, a schedule, a run."""
    base: Path = tmp_path_factory.mktemp("fuzz")
    with running_stack(base / "data", f"sqlite:///{base / 'devyard.db'}") as stack:
        viewer = stack.user("vic", "viewer")
        with stack.client() as admin:
            admin.create_project("shop")
            admin.create_environment("shop", "prod", secrets={"TOKEN": "s3cret"})
            admin.create_schedule(name="nightly", project="shop", cron="0 3 * * *", command=["true"])
            admin.create_run("shop", ["true"], in_devserver=False)
        yield stack, viewer


@pytest.fixture(scope="module")
def api_schema(fuzzed_stack: tuple[Stack, str]) -> Any:
    stack, _ = fuzzed_stack
    return schemathesis.openapi.from_url(stack.url + "/api/v1/openapi.json")


def _call(case: schemathesis.Case[Any], stack: Stack, token: str) -> Any:
    return case.call_and_validate(
        base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=10
    )


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found, in bounded time
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_as_admin(case: schemathesis.Case[Any], fuzzed_stack: tuple[Stack, str]) -> None:
    stack, _ = fuzzed_stack
    _call(case, stack, stack.admin_token)


@schema.parametrize()
@FUZZ
def test_as_viewer(case: schemathesis.Case[Any], fuzzed_stack: tuple[Stack, str]) -> None:
    stack, viewer = fuzzed_stack
    response = _call(case, stack, viewer)
    if case.method.upper() in MUTATING:
        assert response.status_code >= 400, f"a viewer's {case.method} {case.path} got {response.status_code}"


def test_the_exclusions_name_real_operations(api_schema: Any, fuzzed_stack: tuple[Stack, str]) -> None:
    """An exclusion that no longer matches an operation would silently widen nothing: keep them true."""
    import httpx

    stack, _ = fuzzed_stack
    document = httpx.get(stack.url + "/api/v1/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert set(EXCLUDED) <= operations
    assert len(operations) - len(EXCLUDED) >= 50
