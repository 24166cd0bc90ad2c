"""The TUI against a real control API (and a real agent where runs must produce output),
driven with Textual's pilot: what a user sees and what their keys do."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from control.client import ControlClient
from control.profiles import Profile
from tests.stack import Stack, running_agent, wait_for_run
from tui.app import DevyardApp
from tui.config import TuiConfig
from tui.screens.run_view import RunScreen
from tui.widgets.log_view import LogView
from tui.widgets.resource_table import ResourceTable
from tui.widgets.runs_table import RunsTable
from tui.widgets.status_bar import StatusBar

SIZE = (140, 36)


async def wait_for(predicate: Callable[[], object], timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def app_for(stack: Stack, **options: object) -> DevyardApp:
    return DevyardApp(Profile("test", stack.url, stack.admin_token), **options)  # type: ignore[arg-type]


async def run_log(app: DevyardApp) -> LogView:
    """The log of the run view once it is on screen."""
    await wait_for(lambda: isinstance(app.screen, RunScreen) and app.screen.query(LogView))
    return app.screen.query_one(LogView)


def rows(table: ResourceTable[Any]) -> list[str]:
    return [str(key.value) for key in table.rows]


def notes(app: DevyardApp) -> list[str]:
    return [str(note.message) for note in app._notifications]


@pytest.fixture
def agent_stack(sqlite_stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    with running_agent(sqlite_stack, tmp_path / "agent"), sqlite_stack.client() as admin:
        admin.create_project("demo")
        yield sqlite_stack


def test_dashboard_lists_and_follows_live_events(sqlite_stack: Stack) -> None:
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
        first = admin.create_run("demo", ["make", "test"])  # no agent: stays queued
        admin.create_schedule(name="nightly", project="demo", command=["make", "docs"], cron="30 2 * * *")

    async def scenario() -> None:
        app = app_for(sqlite_stack)
        async with app.run_test(size=SIZE) as pilot:
            bar = app.screen.query_one(StatusBar)
            runs = app.screen.query_one(RunsTable)
            await wait_for(lambda: bar.connection == "live" and runs.row_count == 1)
            assert rows(runs) == [str(first.id)]
            assert "admin (admin)" in str(bar.render())
            newer = await asyncio.to_thread(lambda: sqlite_stack.client().create_run("demo", ["make", "lint"]))
            await wait_for(lambda: rows(runs) == [str(newer.id), str(first.id)])  # newest first, live
            await asyncio.to_thread(lambda: sqlite_stack.client().cancel_run(first.id))
            await wait_for(lambda: runs.items[str(first.id)].state == "cancelled")
            await pilot.press("3")
            jobs = app.screen.query_one("#jobs-table", ResourceTable)
            assert [jobs.items[key].name for key in rows(jobs)] == ["nightly"]  # the schedule's job
            await pilot.press("4")
            schedules = app.screen.query_one("#schedules-table", ResourceTable)
            assert rows(schedules) and schedules.items[rows(schedules)[0]].name == "nightly"
            await pilot.press("l")  # next tab, vim style
            assert app.screen.query_one("TabbedContent").active == "agents"  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_filter_words_and_server_side_state(sqlite_stack: Stack) -> None:
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
        admin.create_project("shop")
        kept = admin.create_run("shop", ["pytest"])
        dropped = admin.create_run("demo", ["make"])
        admin.cancel_run(dropped.id)

    async def scenario() -> None:
        app = app_for(sqlite_stack)
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen.query_one(RunsTable)
            await wait_for(lambda: runs.row_count == 2)
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press(*"pytest")
            await wait_for(lambda: rows(runs) == [str(kept.id)])  # as you type
            await pilot.press("escape")  # undoes the typing
            await wait_for(lambda: runs.row_count == 2)
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press(*"state:cancelled", "enter")
            await wait_for(lambda: rows(runs) == [str(dropped.id)])
            assert runs.server_filter == {"state": ["cancelled"]}
            await pilot.press("escape")  # clears the filter
            await wait_for(lambda: runs.row_count == 2)

    asyncio.run(scenario())


def test_status_bar_says_when_the_api_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        app = DevyardApp(Profile("gone", f"http://127.0.0.1:{port}", "dy_x"))
        async with app.run_test(size=SIZE):
            bar = app.screen.query_one(StatusBar)
            await wait_for(lambda: "Cannot reach" in bar.connection and "Retrying" in bar.connection)
            assert bar.has_class("-down")

    asyncio.run(scenario())


def test_run_view_search_filter_streams_and_errors(agent_stack: Stack) -> None:
    script = "for i in $(seq 1 300); do echo line $i; done; echo 'ERROR: disk full' >&2; echo last"
    with agent_stack.client() as admin:
        run = admin.create_run("demo", ["sh", "-c", script])
        wait_for_run(admin, run.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen.query_one(RunsTable)
            await wait_for(lambda: runs.row_count == 1)
            await pilot.press("enter")
            log = await run_log(app)
            await wait_for(lambda: len(log.model) == 302)
            await wait_for(lambda: log.line_at(int(log.scroll_y) + log.size.height - 1) == 301)  # opens at the end
            assert log.follow
            await pilot.press("s")
            await pilot.pause()
            await pilot.press(*"line 25", "enter")

            def text() -> bytes:
                assert log.current_match is not None
                return log.model.line(log.current_match).text

            assert text() == b"line 25" and not log.follow  # searching pauses following
            await pilot.press("n")
            assert text() == b"line 250"
            await pilot.press("N")
            assert text() == b"line 25"
            await pilot.press("e")
            assert text() == b"ERROR: disk full"
            # stdout and stderr were read through one channel: the switch says it cannot split them
            # rather than show every line as stdout.
            await pilot.press("o")
            await wait_for(lambda: "cannot show them apart" in log.message)
            assert log.shown_lines is None and log.streams == "oe"
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press(*"line 29", "enter")
            await wait_for(lambda: log.shown_lines is not None and len(log.shown_lines) == 11)  # 29, 290-299
            await pilot.press("G")
            assert log.follow
            await pilot.press("escape")  # clears filter and search
            await wait_for(lambda: log.shown_lines is None and not log.search_text)
            await pilot.press("escape")  # back to the dashboard
            assert not isinstance(app.screen, RunScreen)

    asyncio.run(scenario())


def test_following_a_live_run_then_cancelling_it(agent_stack: Stack) -> None:
    with agent_stack.client() as admin:
        run = admin.create_run("demo", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"])
        wait_for_run(admin, run.id, states=("running",))

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(int(run.id))
            log = await run_log(app)
            await wait_for(lambda: len(log.model) > 5)
            seen = len(log.model)
            await wait_for(lambda: len(log.model) > seen + 5)  # it grows while we watch
            await pilot.press("k")  # scrolling up pauses following
            assert not log.follow
            await pilot.press("end")
            assert log.follow
            await pilot.press("c")
            await pilot.pause()
            await pilot.press("y")  # the confirmation
            screen = app.screen_stack[-1]
            await wait_for(
                lambda: isinstance(screen, RunScreen) and screen.run is not None and screen.run.state == "cancelled"
            )

    asyncio.run(scenario())


async def refused_new_run(app: Any, pilot: Any, command: str, project: str) -> Any:
    """Fill the new-run form with a project the API refuses; the problem shown under it."""
    await wait_for(lambda: app.first_paint_at is not None)
    await pilot.press("n")
    await pilot.pause()
    await pilot.press(*command, "tab", *project, "enter")
    problem = app.screen.query_one("#problem-project")
    await wait_for(lambda: problem.has_class("-shown"))
    return problem


def test_new_run_shows_api_errors_inline_then_opens_the_run(agent_stack: Stack) -> None:
    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            problem = await refused_new_run(app, pilot, "echo hello-from-tui", "nope")
            assert "Project nope does not exist; press Start again to create it." in str(problem.render())
            await pilot.press(*["backspace"] * 4, *"demo", "enter")
            log = await run_log(app)
            await wait_for(lambda: len(log.model) == 1)
            assert log.model.line(0).text == b"hello-from-tui"

    asyncio.run(scenario())
    with agent_stack.client() as client:
        assert "nope" not in [p.name for p in client.list_projects().items], "a typo is never created"


def test_new_run_in_a_new_project_creates_it_on_the_second_start(agent_stack: Stack) -> None:
    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            problem = await refused_new_run(app, pilot, "echo first-run", "fresh-repo")
            assert "press Start again to create it" in str(problem.render())
            await pilot.press("enter")
            log = await run_log(app)
            await wait_for(lambda: len(log.model) == 1)
            assert log.model.line(0).text == b"first-run"

    asyncio.run(scenario())
    with agent_stack.client() as client:
        assert "fresh-repo" in [p.name for p in client.list_projects().items]


def test_read_only_mode_refuses_changes(sqlite_stack: Stack) -> None:
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
        run = admin.create_run("demo", ["make"])

    async def scenario() -> None:
        app = app_for(sqlite_stack, read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen.query_one(RunsTable)
            await wait_for(lambda: runs.row_count == 1)
            await pilot.press("c")
            await pilot.press("n")
            await pilot.pause()
            assert len(app.screen_stack) == 1  # no confirmation, no form
            assert any("Read-only mode" in note for note in notes(app))
            assert "READ-ONLY" in str(app.screen.query_one(StatusBar).render())
        with ControlClient(sqlite_stack.url, sqlite_stack.admin_token) as admin:
            assert admin.get_run(run.id).state == "queued"

    asyncio.run(scenario())


def test_palette_lists_actions_with_keys_and_help_lists_bindings(sqlite_stack: Stack) -> None:
    from tui.commands import ActionCommands
    from tui.screens.help import HelpScreen

    async def scenario() -> None:
        config = TuiConfig(keymap={"runs.cancel": "C"})
        app = app_for(sqlite_stack, config=config)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.first_paint_at is not None)
            provider = ActionCommands(app.screen)
            entries = {spec.id: keys for spec, _, keys in provider._entries()}
            assert entries["runs.cancel"] == "C"  # the user's key, not the default
            assert entries["dashboard.new_run"] == "n" and "log.search" not in entries
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            listed = {row[3]: row for _, rows in app.screen.sections for row in rows}
            assert listed["runs.cancel"][0] == "C" and "Cancel the selected run" in listed["runs.cancel"][2]
            assert "dashboard.filter" in listed and "log.search" not in listed
            await pilot.press("escape")
            await pilot.press("colon")
            await pilot.pause()
            await pilot.press(*"schedules", "enter")
            await pilot.pause()
            assert app.screen.query_one("TabbedContent").active == "schedules"  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_remote_api_reached_with_yard_login_and_the_mouse(sqlite_stack: Stack) -> None:
    """The profile `yard login` writes is the one the TUI uses; clicking a row twice opens it
    (the first click moves the cursor there, as in every Textual table)."""
    from control.profiles import resolve
    from tests.tui.test_cli import yard

    developer = sqlite_stack.user("dana", "developer")
    assert yard("login", sqlite_stack.url, "--token", developer, "--profile", "remote").returncode == 0
    with ControlClient(sqlite_stack.url, developer) as dana:
        dana.create_project("web")
        run = dana.create_run("web", ["make"])

    async def scenario() -> None:
        app = DevyardApp(resolve("remote"))
        async with app.run_test(size=SIZE) as pilot:
            bar = app.screen.query_one(StatusBar)
            runs = app.screen.query_one(RunsTable)
            await wait_for(lambda: bar.connection == "live" and runs.row_count == 1)
            assert "dana (developer)" in str(bar.render()) and "remote" in str(bar.render())
            await pilot.click(RunsTable, offset=(4, 1))  # the first row, under the header
            await pilot.click(RunsTable, offset=(4, 1))
            await run_log(app)
            screen = app.screen
            assert isinstance(screen, RunScreen) and screen.run_id == run.id

    asyncio.run(scenario())


def test_artifacts_list_and_rerun_from_the_run_view(agent_stack: Stack) -> None:
    from textual.widgets import DataTable

    from tui.screens.artifacts import ArtifactsScreen

    with agent_stack.client() as admin:
        run = admin.create_run("demo", ["sh", "-c", "echo made > report.txt"], artifacts=["*.txt"])
        wait_for_run(admin, run.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(int(run.id))
            await run_log(app)
            await pilot.press("a")
            await wait_for(lambda: isinstance(app.screen, ArtifactsScreen))
            table = app.screen.query_one(DataTable)
            await wait_for(lambda: table.row_count == 1)
            assert str(table.get_row_at(0)[0]) == "report.txt"
            await pilot.press("escape")
            await pilot.press("R")  # rerun: a new run of the same command, opened in its place
            await wait_for(lambda: isinstance(app.screen, RunScreen) and app.screen.run_id != run.id)
            assert len(app.screen_stack) == 2

    asyncio.run(scenario())


def test_a_job_runs_now_from_the_jobs_tab_and_reruns_as_the_job(agent_stack: Stack) -> None:
    from tui import operations
    from tui.widgets.jobs_table import JobsTable

    with agent_stack.client() as admin:
        admin.create_job("demo", "build", steps=[{"name": "one", "command": ["true"]}, {"command": ["echo", "two"]}])
        admin.add_notification("demo", "team", "slack", url="https://hooks.slack.test/x", job="build")

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.screen.query_one(JobsTable)
            await wait_for(lambda: jobs.row_count == 1)
            assert "slack on failed, timed_out, lost" in str(jobs.get_row_at(0))  # who its runs tell
            await pilot.press("3", "t")
            await pilot.pause()
            await pilot.press("y")  # the dialog asks first; yes runs it and opens the run
            await wait_for(lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
            screen = app.screen
            assert isinstance(screen, RunScreen) and screen.run is not None
            assert screen.run.job == "build" and [s.name for s in screen.run.steps] == ["one", "echo two"]
            first = screen.run
            await wait_for(lambda: all(job.last_run is not None for job in jobs.items.values()))  # live
            again = await operations.rerun(app, first, "runs.rerun")
            assert again is not None and again.job == "build" and again.id != first.id

    asyncio.run(scenario())
