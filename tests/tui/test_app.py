"""The dashboard against a real control API, driven with Textual's pilot."""

from __future__ import annotations

import asyncio
import socket

from textual.widgets import DataTable, RichLog

from control.profiles import Profile
from tests.stack import Stack
from tui.app import DevyardApp
from tui.widgets.connection_bar import ConnectionBar


async def wait_for(predicate: object, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def test_dashboard_shows_projects_and_live_events(sqlite_stack: Stack) -> None:
    with sqlite_stack.client() as admin:
        admin.create_project("before")

    async def scenario() -> None:
        app = DevyardApp(Profile("test", sqlite_stack.url, sqlite_stack.admin_token))
        async with app.run_test(size=(120, 30)) as pilot:
            bar = app.query_one(ConnectionBar)
            await wait_for(lambda: bar.state == "live")
            table = app.query_one("#projects-table", DataTable)
            await wait_for(lambda: table.row_count == 1)
            await asyncio.to_thread(lambda: sqlite_stack.client().create_project("after"))
            await wait_for(lambda: table.row_count == 2)
            await pilot.press("6")
            log = app.query_one("#events-log", RichLog)
            await wait_for(lambda: any("project.created" in str(line.text) for line in log.lines))
            assert "admin (admin)" in bar.render()

    asyncio.run(scenario())


def test_status_bar_says_when_the_api_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        app = DevyardApp(Profile("gone", f"http://127.0.0.1:{port}", "dy_x"))
        async with app.run_test(size=(120, 30)):
            bar = app.query_one(ConnectionBar)
            await wait_for(lambda: "Cannot reach" in bar.state)
            assert bar.has_class("-down")

    asyncio.run(scenario())


def test_runs_tab_opens_a_live_log(sqlite_stack: Stack, tmp_path: object) -> None:
    from pathlib import Path

    from tests.stack import running_agent, wait_for_run
    from tui.screens.run_log import RunLogScreen

    with running_agent(sqlite_stack, Path(str(tmp_path)) / "agent"), sqlite_stack.client() as admin:
        admin.create_project("demo")
        run = admin.create_run("demo", ["sh", "-c", "echo first; echo second >&2"])
        wait_for_run(admin, run["id"])

        async def scenario() -> None:
            app = DevyardApp(Profile("test", sqlite_stack.url, sqlite_stack.admin_token))
            async with app.run_test(size=(120, 30)) as pilot:
                table = app.query_one("#runs-table", DataTable)
                await wait_for(lambda: table.row_count == 1)
                await pilot.press("enter")
                await wait_for(lambda: isinstance(app.screen, RunLogScreen))
                log = app.screen.query_one("#run-log", RichLog)
                await wait_for(lambda: [str(line.text) for line in log.lines] == ["first", "second"])
                await pilot.press("escape")
                assert not isinstance(app.screen, RunLogScreen)

        asyncio.run(scenario())
