"""The run view against a real run: progress bars drawn in place, and counters that are right
while the run goes and after it ended (issue 17, items 3 and 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.stack import Stack, wait_for_run
from tests.tui.test_app import SIZE, agent_stack, app_for, run_log, wait_for
from tui.screens.run_view import RunScreen
from tui.widgets.log_status import LogStatus
from tui.widgets.log_view import display_text
from tui.widgets.run_header import RunHeader

__all__ = ["agent_stack"]

PROGRESS = (
    "echo start; for p in 10 40; do printf '\\rdownloading %s%%' $p; sleep 0.3; done; "
    "while [ ! -e more ]; do sleep 0.05; done; "
    "printf '\\rdownloading 100%%\\n'; for i in $(seq 1 20); do echo line $i; done; "
    "while [ ! -e stop ]; do sleep 0.05; done; echo bye"
)


def test_a_progress_bar_is_one_line_in_its_final_state_and_counters_follow_the_run(
    agent_stack: Stack, tmp_path: Path
) -> None:
    with agent_stack.client() as admin:
        run = admin.create_run("demo", ["sh", "-c", PROGRESS])
    # The gates are files in the run's own folder (its working directory) on the agent's volume.
    folder = tmp_path / "agent" / "volume" / "runs" / str(run.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(int(run.id))
            log = await run_log(app)
            screen = app.screen_stack[-1]
            assert isinstance(screen, RunScreen)
            header = screen.query_one(RunHeader)
            status = screen.query_one(LogStatus)
            # While the bar is drawn it is one line, replaced as it grows.
            await wait_for(lambda: len(log.model) == 2 and b"40%" in log.model.line(1).text)
            assert not log.model.line(1).complete
            (folder / "more").touch()
            await wait_for(lambda: len(log.model) == 22)
            bar = log.model.line(1)
            assert bar.complete and display_text(bar.text).plain == "downloading 100%"
            # The run is still going: the header counts the 22 lines shown, not the API's 0.
            assert (screen.run.state if screen.run else None) == "running"
            await wait_for(lambda: " 22 lines" in str(header.render()))
            assert "following" in status.text.plain
            (folder / "stop").touch()
            await wait_for(lambda: (screen.run.state if screen.run else None) == "succeeded")
            await wait_for(lambda: "run ended" in status.text.plain)
            assert "23 lines" in status.text.plain and " 23 lines" in str(header.render())
            await pilot.pause()

    try:
        asyncio.run(scenario())
    finally:
        if folder.is_dir():
            (folder / "more").touch()
            (folder / "stop").touch()
        with agent_stack.client() as admin:
            wait_for_run(admin, run.id)


def test_one_line_is_one_line(agent_stack: Stack) -> None:
    with agent_stack.client() as admin:
        run = admin.create_run("demo", ["echo", "only"])
        wait_for_run(admin, run.id)

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE):
            app.open_run(int(run.id))
            log = await run_log(app)
            screen = app.screen_stack[-1]
            status = screen.query_one(LogStatus)
            await wait_for(lambda: len(log.model) == 1 and "run ended" in status.text.plain)
            assert "1 line" in status.text.plain and "1 lines" not in status.text.plain
            assert "following" not in status.text.plain
            assert " 1 line" in str(screen.query_one(RunHeader).render())

    asyncio.run(scenario())
