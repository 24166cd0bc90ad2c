"""The wire contract: importable by every side, one error shape, work items told apart by type."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from datetime import datetime
from pathlib import Path

import pytest

from control.client.calls import Call, endpoint, untyped
from control.client.endpoints import Endpoints
from control.wire import errors
from control.wire.events import PAYLOADS, resource_of
from control.wire.runs import RunOut
from control.wire.work import CancelWork, DevServerStopWork, RunWork, UnknownWork, WorkBatch

ROOT = Path(__file__).resolve().parents[2]
WIRE_MODULES = sorted(p.stem for p in (ROOT / "control" / "wire").glob("*.py") if p.stem != "__init__")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys; {code}; print(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_the_wire_package_imports_neither_fastapi_nor_sqlmodel() -> None:
    assert {"events", "errors", "frames", "batch", "manifest", "work"} <= set(WIRE_MODULES)
    modules = _imported_after("; ".join(f"import control.wire.{name}" for name in WIRE_MODULES))
    assert {f"control.wire.{name}" for name in WIRE_MODULES} <= modules
    banned = {m for m in modules if m.split(".")[0] in ("fastapi", "sqlmodel", "sqlalchemy", "starlette")}
    assert not banned, banned


def test_the_develop_server_protocol_and_error_modules_need_no_pydantic() -> None:
    """The develop server and the fast CLI path import these; they must stay cheap."""
    modules = _imported_after(
        "import control.wire.frames, control.wire.batch, control.wire.manifest, control.wire.errors"
    )
    assert not {m for m in modules if m.split(".")[0] == "pydantic"}
    assert "typing" not in _imported_after("import control.wire.errors")


def test_sync_and_the_cli_do_not_import_the_develop_server() -> None:
    for package in ("sync", "tui/cli"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "from devserver" not in text and "import devserver" not in text, path


def test_one_api_error_class_serves_server_and_client() -> None:
    from control.api import errors as api_errors
    from control.client import ApiError, NotFound
    from devserver import responses

    assert issubclass(api_errors.SecretsLocked, errors.ApiError)
    assert responses.ApiError is ApiError is errors.ApiError
    assert issubclass(NotFound, errors.ApiError)
    refused = errors.ApiError(400, "bad_path", "The path leaves the workspace.", path="../x", applied=2)
    assert refused.body() == {
        "error": {"code": "bad_path", "message": "The path leaves the workspace.", "path": "../x", "applied": 2}
    }
    assert errors.parse_error(refused.body()) == (
        "bad_path",
        "The path leaves the workspace.",
        {"path": "../x", "applied": 2},
    )
    assert errors.parse_error({"error": "bad_path", "message": "old shape"}) is None


def _item(kind: str, spec: dict[str, object]) -> dict[str, object]:
    return {"id": 7, "kind": kind, "payload": {}, "run": spec, "worker_token": None}


def test_work_items_are_told_apart_by_kind_and_unknown_kinds_do_not_spoil_the_batch() -> None:
    server = {
        "id": 3, "devserver": True, "state": "stopping", "workspace": "w", "secret": "s", "handle": "h",
        "restart_count": 0, "env": {}, "image": None, "resources": {},
    }  # fmt: skip
    batch = WorkBatch.model_validate(
        {
            "items": [
                _item("cancel", {"id": 5, "handle": None}),
                _item("devserver_stop", server),
                {"id": 8, "kind": "teleport", "run": {}},
            ]
        }
    )
    cancel, stop, unknown = batch.items
    assert isinstance(cancel, CancelWork) and cancel.run.id == 5
    assert isinstance(stop, DevServerStopWork) and stop.run.workspace == "w"
    assert isinstance(unknown, UnknownWork) and unknown.kind == "teleport"
    with pytest.raises(ValueError):
        WorkBatch.model_validate({"items": [_item("run", {"id": 1})]})  # a run item without its spec
    assert not isinstance(cancel, RunWork)


def test_a_partial_event_changes_the_known_resource_and_a_whole_one_replaces_it() -> None:
    run = RunOut.model_validate(_run(state="running"))
    lost = resource_of(RunOut, {"id": 1, "state": "lost", "error": "No heartbeat."}, run)
    assert lost is not None and (lost.state, lost.error, lost.command) == ("lost", "No heartbeat.", ["make"])
    assert resource_of(RunOut, {"id": 1, "state": "lost"}) is None
    assert resource_of(RunOut, _run(state="succeeded"), run) == RunOut.model_validate(_run(state="succeeded"))
    assert PAYLOADS["run.updated"] is RunOut


def test_every_endpoint_answers_with_a_wire_model() -> None:
    """Clients get models from control.wire (or nothing); only a develop server's own answers are
    passed on untyped."""
    built = {name: value for name, value in vars(Endpoints).items() if isinstance(value, endpoint)}
    assert len(built) > 40
    untyped_ones = []
    for name, value in built.items():
        answer = typing.get_type_hints(value._build)["return"]
        assert typing.get_origin(answer) is Call, name
        (inner,) = typing.get_args(answer)
        if inner is typing.Any:
            untyped_ones.append(name)
            continue
        shapes = [inner, *typing.get_args(inner), *getattr(inner, "__pydantic_generic_metadata__", {}).values()]
        assert any(getattr(t, "__module__", "").startswith("control.wire.") for t in shapes) or inner in (
            type(None),
            list[datetime],
        ), (name, inner)
    assert untyped_ones == ["devserver_call"]
    assert untyped("GET", "/devservers/1/health").decode({"ok": True}) == {"ok": True}


def _run(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": 1, "project": "p", "environment": None, "user": "u", "command": ["make"], "cwd": None,
        "state": "queued", "trigger": "api", "trigger_info": {}, "attempt": 1, "max_retries": 0,
        "retry_of_id": None, "devserver_id": None, "timeout_s": None, "exit_code": None, "error": None,
        "cancel_requested": False, "agent_id": None, "queued_at": "2026-12-06T19:00:00Z", "started_at": None,
        "finished_at": None, "duration_s": None, "log_chunks": 0, "log_bytes": 0, "log_lines": 0,
        "artifact_globs": [],
    }  # fmt: skip
    return base | fields


def test_an_answer_of_another_shape_is_one_sentence_not_a_traceback() -> None:
    from control.client import DevyardError, UnexpectedAnswer
    from control.client.calls import call

    with pytest.raises(UnexpectedAnswer) as caught:
        call("GET", "/runs/1", RunOut).decode({"id": 1, "state": "running"})
    assert isinstance(caught.value, DevyardError)
    assert str(caught.value).startswith("The API's answer to GET /runs/1 is not what this client expects (")
