"""The run view of a run of several steps: the steps line (the failing step stands out), the step
markers in the log, and the keys that jump between steps (issue 16, item 6)."""

from __future__ import annotations

import asyncio

from tests.stack import Stack, wait_for_run
from tests.tui.test_app import SIZE, agent_stack, app_for, run_log, wait_for
from tui.screens.run_view import RunScreen
from tui.widgets.run_header import RunHeader

__all__ = ["agent_stack"]

STEPS = [
    {"name": "deps", "command": ["sh", "-c", "for i in $(seq 1 60); do echo dep $i; done"]},
    {"name": "build", "command": ["sh", "-c", "for i in $(seq 1 60); do echo build $i; done; exit 4"]},
    {"name": "test", "command": ["echo", "never"]},
]


def test_steps_are_shown_and_the_keys_jump_to_them(agent_stack: Stack) -> None:
    with agent_stack.client() as admin:
        run = admin.create_run("demo", [], steps=STEPS)
        final = wait_for_run(admin, run.id)
    assert [s.state for s in final.steps] == ["succeeded", "failed", "skipped"]

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(int(run.id))
            log = await run_log(app)
            screen = app.screen_stack[-1]
            assert isinstance(screen, RunScreen)
            header = screen.query_one(RunHeader)
            await wait_for(lambda: len(log.model) == 122)  # 120 lines of output, 2 step markers
            await wait_for(lambda: header.run is not None and len(header.run.steps) == 3)
            shown = str(header.render())
            assert "1 deps ✔" in shown and "2 build ✘ exit 4" in shown and "3 test – skipped" in shown
            assert header.styles.height is not None and header.styles.height.value == 5
            starts = log.model.step_starts()
            assert starts == {1: 0, 2: 61}
            assert log.model.line(61).text == b"2/3 build: sh -c for i in $(seq 1 60); do echo build $i; done; exit 4"
            await pilot.press("exclamation_mark")  # to the failing step: its marker is the top row
            await wait_for(lambda: log.line_at(int(log.scroll_y)) == 61)
            await pilot.press("left_square_bracket")
            await wait_for(lambda: log.line_at(int(log.scroll_y)) == 0)
            await pilot.press("right_square_bracket")
            await wait_for(lambda: log.line_at(int(log.scroll_y)) == 61)

    asyncio.run(scenario())
