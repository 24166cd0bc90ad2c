"""Snapshots of every view (pytest-textual-snapshot), against a real control API and agent.

The data is real: runs executed by a real agent, a schedule fired by the API, a develop server
started by the agent. What would differ between machines and runs is pinned: the clock the TUI
reads is frozen, the runs' and agents' timestamps are set to fixed values in the database after
the work is done, and the port in the API URL, the develop server's pid and commit id are masked
after loading. Update with ``--snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from textual.pilot import Pilot
from textual.widgets import Input

from control.profiles import Profile
from tests.stack import Stack, running_agent, running_stack, wait_for_run
from tui import cells
from tui.app import DevyardApp
from tui.config import TuiConfig
from tui.sync_status import SyncStatus
from tui.widgets.status_bar import StatusBar

FROZEN = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
SIZE = (132, 34)
SHOWN_URL = "http://127.0.0.1:8421"
Snap = Callable[..., bool]

BUILD = (
    "echo 'Compiling 14 modules'; "
    "printf '\\033[32m✔\\033[0m shop.models\\n\\033[32m✔\\033[0m shop.views\\n\\033[33m!\\033[0m shop.legacy (3 warnings)\\n'; "
    "sleep 0.3; echo 'warning: shop.legacy uses a deprecated API' >&2; sleep 0.3; "
    "echo 'Build finished in 2.4s'"
)
TESTS = (
    'for i in $(seq 1 40); do echo "tests/test_orders.py::test_case_$i PASSED"; done; '
    "echo 'tests/test_orders.py::test_refund FAILED'; sleep 0.3; "
    "echo 'Traceback (most recent call last):' >&2; echo '  File \"tests/test_orders.py\", line 88' >&2; "
    "echo 'AssertionError: refund total 12.50 != 12.05' >&2; sleep 0.3; "
    "echo '1 failed, 40 passed in 3.21s'; exit 1"
)
WIDE = "echo start; printf 'payload=%0300d end-of-line\\n' 7; echo done"


@pytest.fixture(scope="module")
def snapshot_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Runs of three kinds and two schedules, made by a real agent, then pinned in time."""
    base = tmp_path_factory.mktemp("tui-snapshots")
    with running_stack(base / "data", f"sqlite:///{base / 'devyard.db'}") as stack:
        with running_agent(stack, base / "agent", name="laptop-agent"), stack.client() as admin:
            admin.create_project("shop", description="The web shop")
            admin.create_project("docs")
            for project, script in (("shop", BUILD), ("shop", TESTS), ("docs", WIDE)):
                run = admin.create_run(project, ["sh", "-c", script], trigger="manual")
                wait_for_run(admin, run.id)
            nightly = ["sh", "-c", "echo nightly checks; exit 2"]
            admin.create_schedule(name="nightly", project="shop", command=nightly, cron="30 2 * * *")
            admin.create_schedule(
                name="weekly-report", project="docs", command=["make", "report"], cron="0 6 * * 1", enabled=False
            )
            admin.create_job(
                "shop",
                "deploy",
                steps=[{"command": ["make", "build"]}, {"command": ["make", "deploy"], "name": "deploy"}],
                triggers=[{"kind": "job", "job": "nightly"}],
            )
            tick = admin.trigger_schedule("nightly")
            assert tick.run_id is not None
            wait_for_run(admin, tick.run_id)
            # deploy follows a successful nightly, which fails: this is shown, never sent.
            admin.add_notification("shop", "release", "webhook", url="https://hooks.example.test/devyard", job="deploy")
        with stack.client() as admin:
            admin.create_run("docs", ["make", "html"])  # stays queued: the agent is gone
        pin_times(stack)
        yield stack


def pin_times(stack: Stack) -> None:
    """Fixed timestamps everywhere the TUI shows a time or an age."""
    with stack.services.engine.begin() as db:
        ids = [row[0] for row in db.execute(text("SELECT id FROM runs ORDER BY id"))]
        for n, run_id in enumerate(ids):
            queued = FROZEN - timedelta(minutes=5 * (len(ids) - n))
            db.execute(
                text(
                    "UPDATE runs SET queued_at = :q, heartbeat_at = NULL,"
                    " started_at = CASE WHEN started_at IS NULL THEN NULL ELSE :s END,"
                    " finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE :f END WHERE id = :id"
                ),
                {
                    "q": queued,
                    "s": queued + timedelta(seconds=1),
                    "f": queued + timedelta(seconds=1 + 3 * (n + 1)),
                    "id": run_id,
                },
            )
        db.execute(
            text("UPDATE agents SET last_heartbeat_at = :t, hostname = 'build-host', version = '0.1.0'"),
            {"t": FROZEN - timedelta(seconds=4)},
        )
        db.execute(text("UPDATE schedules SET next_fire_at = :t WHERE enabled"), {"t": FROZEN + timedelta(hours=17)})


@pytest.fixture(autouse=True)
def _frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cells, "clock", lambda: FROZEN)
    monkeypatch.setenv("DEVYARD_PROJECT", "shop")
    synced = SyncStatus("synced", project="shop", last_sync_at=FROZEN - timedelta(minutes=2), pending_changes=0)
    monkeypatch.setattr("tui.app.local_status", lambda *where: synced)
    monkeypatch.setattr("tui.screens.devserver_view.local_status", lambda *where: synced)


def make_app(stack: Stack, **options: Any) -> DevyardApp:
    return DevyardApp(Profile("local", stack.url, stack.admin_token), **options)


async def until(predicate: Callable[[], object], timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def steady(app: DevyardApp) -> None:
    """Mask what differs between machines, and stop cursors blinking."""
    for screen in app.screen_stack:
        for bar in screen.query(StatusBar):
            bar.url = SHOWN_URL
        for field in screen.query(Input):
            field.cursor_blink = False


def scenario(*steps: str | Callable[[Pilot[None]], Awaitable[None]]) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Wait for the dashboard's data, then run ``steps`` (keys, or coroutines) and mask."""

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, DevyardApp)
        await until(lambda: app.first_paint_at is not None and app.status_info.connection == "live")
        for step in steps:
            if isinstance(step, str):
                await pilot.press(step)
                await pilot.pause()
            else:
                await step(pilot)
        await pilot.pause()
        # The tab underline slides to the label's new width once the counts arrive: a snapshot
        # taken mid-slide differed from run to run.
        await pilot.wait_for_scheduled_animations()
        steady(app)

    return run_before


def open_run(run_id: int, *keys: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def step(pilot: Pilot[None]) -> None:
        from tui.screens.run_view import RunScreen
        from tui.widgets.log_view import LogView

        app = pilot.app
        assert isinstance(app, DevyardApp)
        app.open_run(run_id)
        await until(lambda: isinstance(app.screen, RunScreen) and app.screen.query(LogView))
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await until(lambda: screen.run is not None and len(screen.log_view.model) > 0 and not screen.loading_history)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await until(lambda: not screen.log_view.filtering)

    return step


def typed(text: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def step(pilot: Pilot[None]) -> None:
        await pilot.press(*text)

    return step


def test_dashboard_runs(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """Runs, newest first: state icons, triggers, durations, exit codes; the status bar."""
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario())


def test_dashboard_runs_light_theme(snap_compare: Snap, snapshot_stack: Stack) -> None:
    app = make_app(snapshot_stack, config=TuiConfig(theme="textual-light"))
    assert snap_compare(app, terminal_size=SIZE, run_before=scenario())


def test_dashboard_filtered_by_state(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """`/ state:failed` filters on the server; the tab says which filter is on."""

    async def reloaded(pilot: Pilot[None]) -> None:
        from tui.widgets.runs_table import RunsTable

        runs = pilot.app.screen.query_one(RunsTable)
        await until(lambda: runs.row_count == 2 and all(r.state == "failed" for r in runs.items.values()))

    assert snap_compare(
        make_app(snapshot_stack),
        terminal_size=SIZE,
        run_before=scenario("slash", typed("state:failed"), "enter", reloaded),
    )


def test_dashboard_jobs(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """Each job's last run and state, next fire time and triggers (cron, paused, after a job)."""
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario("3"))


def test_confirm_before_running_a_job(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """`t` on a job asks first, listing its steps."""
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario("3", "t"))


def test_dashboard_schedules(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """Next fire and last result; a paused schedule."""
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario("4"))


def test_dashboard_agents_read_only(snap_compare: Snap, snapshot_stack: Stack) -> None:
    assert snap_compare(make_app(snapshot_stack, read_only=True), terminal_size=SIZE, run_before=scenario("5"))


def test_confirm_before_firing_a_schedule(snap_compare: Snap, snapshot_stack: Stack) -> None:
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario("4", "t"))


def test_help_lists_the_keys_of_the_view(snap_compare: Snap, snapshot_stack: Stack) -> None:
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario("question_mark"))


def test_new_run_with_an_api_error(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """The API's refusal shows under the field it is about."""

    async def wrong_project(pilot: Pilot[None]) -> None:
        await pilot.press(*"make deploy", "tab", *["backspace"] * 10, *"nope", "enter")
        await until(lambda: pilot.app.screen.query_one("#problem-project").has_class("-shown"))

    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario("n", wrong_project))


def test_run_view_failed_run(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """Header facts, stdout and stderr (red gutter), ANSI colours kept, at the end of the log."""
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario(open_run(2)))


def test_run_view_colours_and_jump_to_error(snap_compare: Snap, snapshot_stack: Stack) -> None:
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario(open_run(1, "home", "e")))


def test_run_view_search_and_filter(snap_compare: Snap, snapshot_stack: Stack) -> None:
    """A filter hides lines; the search highlights its matches within what is left."""

    async def search_and_filter(pilot: Pilot[None]) -> None:
        await pilot.press("slash")
        await pilot.pause()
        await pilot.press(*"test_case_1", "enter")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        await pilot.press(*"case_13", "enter")

    assert snap_compare(
        make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario(open_run(2), search_and_filter)
    )


def test_run_view_wrapped_long_line(snap_compare: Snap, snapshot_stack: Stack) -> None:
    assert snap_compare(make_app(snapshot_stack), terminal_size=SIZE, run_before=scenario(open_run(3, "w")))


def test_devserver_view(snap_compare: Snap, sqlite_stack: Stack, tmp_path: Path) -> None:
    """State, endpoint, workspace, git branch/HEAD/dirty files and the sync state."""
    from tui.screens.devserver_view import DevServerScreen
    from tui.widgets.devserver_facts import DevServerFacts
    from tui.widgets.git_panel import GitPanel
    from tui.widgets.sync_panel import SyncPanel

    with running_agent(sqlite_stack, tmp_path / "agent"), sqlite_stack.client() as admin:
        admin.create_project("shop")
        server = admin.start_devserver("shop")
        while server.state != "running":
            assert server.state in ("pending", "starting"), server
            server = admin.get_devserver(server.id)
        sid = int(server.id)
        prepare = "mkdir -p src && printf 'shop\\n' > README.md && printf 'print(1)\\n' > src/app.py"
        list(admin.devserver_stream(sid, "POST", "/exec", json={"argv": ["sh", "-c", prepare]}))
        admin.devserver_call(sid, "POST", "/git/init", json={"branch": "main"})
        admin.devserver_call(
            sid,
            "POST",
            "/git/commit",
            json={"message": "first", "paths": ["README.md", "src"], "author_name": "Dev", "author_email": "d@x"},
        )
        dirty = "printf 'shop!\\n' > README.md && printf 'todo\\n' > notes.txt"
        list(admin.devserver_stream(sid, "POST", "/exec", json={"argv": ["sh", "-c", dirty]}))

        async def open_server(pilot: Pilot[None]) -> None:
            app = pilot.app
            assert isinstance(app, DevyardApp)
            app.open_devserver(server)
            await until(lambda: isinstance(app.screen, DevServerScreen) and app.screen.query(GitPanel))
            facts, git = app.screen.query_one(DevServerFacts), app.screen.query_one(GitPanel)
            sync = app.screen.query_one(SyncPanel)
            await until(lambda: facts.health is not None and git.status is not None and sync.status is not None)
            assert facts.server is not None
            facts.server = facts.server.model_copy(
                update={
                    "started_at": FROZEN - timedelta(hours=1, minutes=12),
                    "last_activity_at": FROZEN - timedelta(seconds=30),
                }
            )
            facts.health = {**(facts.health or {}), "pid": 4242}
            facts.endpoint = facts.endpoint.replace(sqlite_stack.url, SHOWN_URL)
            git.status = {**(git.status or {}), "head": "3f2a9c1d0e4b7a55c0ffee"}
            sync.directory = "/home/dev/src/shop"

        assert snap_compare(make_app(sqlite_stack), terminal_size=SIZE, run_before=scenario(open_server))
