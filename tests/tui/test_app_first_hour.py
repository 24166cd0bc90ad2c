"""What a newcomer hit in the TUI in their first hour (issue 18, items 14-22), against a real
control API and, where runs must produce output, a real agent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import TabbedContent

from tests.stack import Stack, running_agent, wait_for_run
from tests.tui.test_app import SIZE, app_for, notes, rows, run_log, wait_for
from tui.screens.dashboard import DashboardScreen
from tui.screens.run_view import RunScreen
from tui.widgets.empty_hint import EmptyHint
from tui.widgets.log_status import LogStatus
from tui.widgets.resource_table import ResourceTable
from tui.widgets.runs_table import RunsTable


@pytest.fixture
def agent_stack(sqlite_stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    with running_agent(sqlite_stack, tmp_path / "agent"), sqlite_stack.client() as admin:
        admin.create_project("demo")
        yield sqlite_stack


def footer_keys(app: object) -> set[str]:
    """The keys the footer shows on the current screen."""
    screen = app.screen  # type: ignore[attr-defined]
    return {key for key, active in screen.active_bindings.items() if active.binding.show}


def test_a_run_that_does_not_exist_goes_back_with_the_error(sqlite_stack: Stack) -> None:
    async def scenario() -> None:
        app = app_for(sqlite_stack)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.first_paint_at is not None)
            await pilot.press("colon")
            await pilot.pause()
            await pilot.press(*"run 99", "enter")
            await wait_for(lambda: any("99" in note for note in notes(app)))
            await wait_for(lambda: isinstance(app.screen, DashboardScreen))  # not "Loading the run…" forever
            assert len(app.screen_stack) == 1

    asyncio.run(scenario())


def test_clearing_a_log_filter_mid_stream_choice_stops_filtering(agent_stack: Stack) -> None:
    with agent_stack.client() as admin:
        run = admin.create_run("demo", ["sh", "-c", "for i in $(seq 1 50); do echo line $i; done; echo oops >&2"])
        wait_for_run(admin, run.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(int(run.id))
            log = await run_log(app)
            await wait_for(lambda: len(log.model) == 51)
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press("7", "enter", "o", "o", "escape")
            status = app.screen.query_one(LogStatus)
            await wait_for(lambda: log.shown_lines is None and not log.filtering)
            await pilot.pause()
            assert "filtering" not in status.text.plain
            assert log.streams == "oe" and not log.filter_text

    asyncio.run(scenario())


def test_each_tab_keeps_its_own_filter(agent_stack: Stack) -> None:
    with agent_stack.client() as admin:
        admin.create_run("demo", ["make", "lint"])

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen.query_one(RunsTable)
            agents = app.screen.query_one("#agents-table", ResourceTable)
            await wait_for(lambda: runs.row_count == 1 and agents.row_count == 1)
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press(*"pytest", "enter")
            await wait_for(lambda: runs.row_count == 0)
            await pilot.press("5")
            assert agents.row_count == 1  # the runs' filter is not the agents' filter
            tabs = app.screen.query_one(TabbedContent)
            assert str(tabs.get_tab("agents").label) == "Agents (1)"
            assert "/pytest" in str(tabs.get_tab("runs").label)
            await pilot.press("slash")
            await pilot.pause()
            assert app.screen.query_one("#dashboard-prompt").value == ""  # type: ignore[attr-defined]
            await pilot.press(*"no-such-agent", "enter")
            await wait_for(lambda: agents.row_count == 0)
            hint = app.screen.query_one("#agents-empty", EmptyHint)
            assert hint.has_class("-shown") and "esc" in str(hint.render())
            await pilot.press("escape")  # clears this tab's filter only
            await wait_for(lambda: agents.row_count == 1)
            await pilot.press("2")
            assert runs.row_count == 0 and app.screen.filter_text == "pytest"  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_read_only_hides_and_refuses_what_changes_things(sqlite_stack: Stack) -> None:
    with sqlite_stack.client() as admin:
        admin.create_project("demo")
        run = admin.create_run("demo", ["make"])

    async def scenario() -> None:
        writable = app_for(sqlite_stack)
        async with writable.run_test(size=SIZE):
            await wait_for(lambda: writable.screen.query_one(RunsTable).row_count == 1)
            assert {"c", "R", "n"} <= footer_keys(writable)
        app = app_for(sqlite_stack, read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.screen.query_one(RunsTable).row_count == 1)
            assert not {"c", "R", "n"} & footer_keys(app)
            await pilot.press("R")
            await pilot.pause()
            assert any("Read-only mode: rerun" in note for note in notes(app))
            app.open_run(int(run.id))
            await wait_for(lambda: isinstance(app.screen, RunScreen))
            await pilot.pause()
            assert "c" not in footer_keys(app)
            await pilot.press("c")
            await pilot.pause()
            assert isinstance(app.screen, RunScreen)  # no confirmation dialog
            assert any("Read-only mode: cancel" in note for note in notes(app))
        with sqlite_stack.client() as admin:
            assert admin.get_run(run.id).state == "queued"
            assert len(admin.list_runs().items) == 1

    asyncio.run(scenario())


def test_empty_tables_say_what_to_do_and_runs_show_their_environment(sqlite_stack: Stack) -> None:
    async def scenario() -> None:
        app = app_for(sqlite_stack)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.first_paint_at is not None)
            hints = {
                tab: app.screen.query_one(f"#{tab}-empty", EmptyHint) for tab in ("runs", "devservers", "schedules")
            }
            assert all(hint.has_class("-shown") for hint in hints.values())
            assert "Press n to start one" in str(hints["runs"].render())
            assert "yard dev start" in str(hints["devservers"].render())
            assert "yard schedule add" in str(hints["schedules"].render())
            with sqlite_stack.client() as admin:
                admin.create_project("shop")
                admin.create_environment("shop", "prod")
                await asyncio.to_thread(admin.create_run, "shop", ["make"], environment="prod")
            runs = app.screen.query_one(RunsTable)
            await wait_for(lambda: runs.row_count == 1)
            await pilot.pause()
            assert not hints["runs"].has_class("-shown")
            assert str(runs.get_row_at(0)[3]) == "prod"
            assert [str(column.label) for column in runs.columns.values()][3] == "env"
            assert rows(runs)

    asyncio.run(scenario())


def test_last_activity_of_develop_servers_moves_without_a_refresh(
    agent_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.compose.devserver_helpers import gateway_exec, start_and_wait
    from tui.widgets.devservers_table import DevServersTable

    monkeypatch.setattr("tui.screens.dashboard.DEVSERVERS_EVERY_S", 0.3)
    with agent_stack.client() as admin:
        server = start_and_wait(admin, "demo")
    key = str(server.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE):
            table = app.screen.query_one(DevServersTable)
            await wait_for(lambda: key in table.items)
            before = table.items[key].last_activity_at
            with agent_stack.client() as admin:
                code, out, _ = await asyncio.to_thread(gateway_exec, admin, int(server.id), ["echo", "hi"])
                assert (code, out) == (0, b"hi\n")
                touched = (await asyncio.to_thread(admin.get_devserver, server.id)).last_activity_at
            assert touched != before
            await wait_for(lambda: table.items[key].last_activity_at == touched)  # no `r` pressed

    asyncio.run(scenario())
    with agent_stack.client() as admin:
        admin.stop_devserver(server.id)


def test_schedules_are_added_paused_and_resumed_from_the_tui(sqlite_stack: Stack) -> None:
    from textual.widgets import Input

    from tui.screens.confirm import ConfirmScreen
    from tui.screens.new_schedule import NewScheduleScreen
    from tui.widgets.schedules_table import SchedulesTable

    with sqlite_stack.client() as admin:
        admin.create_project("demo")

    def field(app: object, name: str) -> Input:
        return app.screen.query_one(f"#field-{name}", Input)  # type: ignore[attr-defined,no-any-return]

    async def scenario() -> None:
        app = app_for(sqlite_stack)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.first_paint_at is not None)
            await pilot.press("4")
            hint = app.screen.query_one("#schedules-empty", EmptyHint)
            assert "Press a to add one" in str(hint.render())
            await pilot.press("a")
            await wait_for(lambda: isinstance(app.screen, NewScheduleScreen))
            field(app, "name").value = "nightly"
            field(app, "cron").value = "99 2 * * *"
            field(app, "command").value = "make test"
            field(app, "project").value = "demo"
            field(app, "timezone").value = "Europe/Berlin"
            field(app, "name").focus()
            await pilot.press("enter")
            problem = app.screen.query_one("#problem-cron")
            await wait_for(lambda: problem.has_class("-shown"))  # the API refusal, under its field
            field(app, "cron").value = "30 2 * * *"
            field(app, "cron").focus()
            await pilot.press("enter")
            table = app.screen_stack[0].query_one(SchedulesTable)
            await wait_for(lambda: not isinstance(app.screen, NewScheduleScreen) and table.row_count == 1)
            assert any("Schedule nightly added for demo" in note for note in notes(app))
            with sqlite_stack.client() as admin:
                created = admin.get_schedule("nightly")
            assert (created.command, created.timezone, created.enabled) == (
                ["make", "test"],
                "Europe/Berlin",
                True,
            )

            await pilot.press("p")  # pausing asks first
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_for(lambda: (item := table.items.get(rows(table)[0])) is not None and item.enabled is False)
            assert "paused" in str(table.get_row_at(0)[3])
            await pilot.press("p")  # resuming does not
            await wait_for(lambda: (item := table.items.get(rows(table)[0])) is not None and item.enabled is True)
            assert isinstance(app.screen, DashboardScreen)
        with sqlite_stack.client() as admin:
            assert admin.get_schedule("nightly").enabled is True

    asyncio.run(scenario())


def test_the_artifacts_dialog_downloads_to_a_folder(
    agent_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import DataTable, Static

    from tui.screens.artifacts import ArtifactsScreen
    from tui.widgets.prompt_bar import PromptBar

    with agent_stack.client() as admin:
        script = "echo made > report.txt; mkdir -p sub; echo deep > sub/b.txt"
        run = admin.create_run("demo", ["sh", "-c", script], artifacts=["*.txt", "sub/*.txt"])
        wait_for_run(admin, run.id)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    (here / "taken").write_text("a file\n")

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.first_paint_at is not None)
            app.show_artifacts(run.id)
            await wait_for(lambda: isinstance(app.screen, ArtifactsScreen))
            screen = app.screen
            await wait_for(lambda: screen.query(DataTable) and screen.query_one(DataTable).row_count == 2)
            hint = screen.query_one("#hint", Static)
            assert "esc closes" in str(hint.render()) and "d downloads" in str(hint.render())
            await pilot.press("d")
            prompt = screen.query_one(PromptBar)
            assert prompt.value == str(here)  # the current folder unless another is typed
            await pilot.press("enter")
            await wait_for(lambda: (here / "sub" / "b.txt").exists() and "Saved 2" in str(hint.render()))
            assert (here / "report.txt").read_text() == "made\n"
            await pilot.press("d")
            prompt.value = str(here / "taken")
            await pilot.press("enter")
            await wait_for(lambda: "is a file, not a folder" in str(hint.render()))
            await pilot.press("escape")
            assert not isinstance(app.screen, ArtifactsScreen)

    asyncio.run(scenario())


def test_a_develop_server_whose_environment_changed_says_restart(agent_stack: Stack) -> None:
    from tests.compose.devserver_helpers import start_and_wait
    from tui.widgets.devservers_table import DevServersTable

    with agent_stack.client() as admin:
        admin.create_environment("demo", "dev", variables={"TARGET": "dev"})
        server = start_and_wait(admin, "demo", environment="dev")
    key = str(server.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DevServersTable)
            await wait_for(lambda: key in table.items)
            await pilot.press("1")
            assert str(table.get_row_at(0)[7]) == "dev"
            with agent_stack.client() as admin:
                await asyncio.to_thread(admin.update_environment, "demo", "dev", variables={"TARGET": "prod"})
            await pilot.press("r")
            await wait_for(lambda: table.items[key].stale_environment is True)
            await pilot.pause()
            assert str(table.get_row_at(0)[7]) == "dev (changed: restart)"

    asyncio.run(scenario())
    with agent_stack.client() as admin:
        admin.stop_devserver(server.id)
