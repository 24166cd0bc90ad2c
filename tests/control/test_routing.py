"""Routers that skip paths outside their first segments still route exactly like FastAPI."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from control.api.routing import API_PREFIX, SegmentRouter


class Client:
    """Requests straight into the ASGI app (no server, no sockets)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **_: Any) -> httpx.Response:
        return self.request("POST", path)


def app_with(*routers: SegmentRouter) -> Client:
    app = FastAPI()
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    return Client(app)


def test_segments_are_learned_from_the_routes_and_other_paths_skip_the_router() -> None:
    runs = SegmentRouter()
    things = SegmentRouter()

    @runs.get("/runs/{run_id}")
    def run(run_id: int) -> dict[str, int]:
        return {"run": run_id}

    @things.get("/things")
    def list_things() -> list[str]:
        return ["a"]

    @things.post("/thing-makers/{name}")
    def make(name: str) -> dict[str, str]:
        return {"made": name}

    assert runs.first_segments() == frozenset({"runs"})
    assert things.first_segments() == frozenset({"things", "thing-makers"})
    client = app_with(runs, things)
    assert client.get("/api/v1/runs/3").json() == {"run": 3}
    assert client.get("/api/v1/things").json() == ["a"]
    assert client.post("/api/v1/thing-makers/x").json() == {"made": "x"}
    assert client.get("/api/v1/thing-makers/x").status_code == 405  # a PARTIAL match still counts
    assert client.get("/api/v1/runs-and-more").status_code == 404
    assert client.get("/api/v1/nothing").status_code == 404


def test_a_router_whose_path_starts_with_a_parameter_matches_everything_as_before() -> None:
    catch_all = SegmentRouter()

    @catch_all.get("/{anything}/info")
    def info(anything: str) -> dict[str, str]:
        return {"info": anything}

    assert catch_all.first_segments() is None
    client = app_with(catch_all)
    assert client.get("/api/v1/whatever/info").json() == {"info": "whatever"}


def test_routes_added_later_are_seen() -> None:
    router = SegmentRouter()

    @router.get("/early")
    def early() -> str:
        return "early"

    assert router.first_segments() == frozenset({"early"})

    @router.get("/late")
    def late() -> str:
        return "late"

    client = app_with(router)
    assert client.get("/api/v1/late").json() == "late"
