"""The run view says which code a run ran: the ref and the commit the agent checked out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.services.gitserver import git_server
from tests.stack import Stack, wait_for_run
from tests.tui.test_app import SIZE, agent_stack, app_for, run_log, wait_for
from tui.screens.run_view import RunScreen
from tui.widgets.run_header import RunHeader

__all__ = ["agent_stack"]


def test_the_run_view_shows_the_ref_and_commit(agent_stack: Stack, tmp_path: Path) -> None:
    with git_server(tmp_path / "git") as server:
        repo = server.create("shop", files={"VERSION": "tui\n"})
        tip = repo.tag("v2")
        with agent_stack.client() as admin:
            admin.update_project("demo", repo_url=repo.file_url)
            run = admin.create_run("demo", ["cat", "VERSION"], ref="v2")
            assert wait_for_run(admin, run.id).state == "succeeded"

    async def scenario() -> None:
        app = app_for(agent_stack)
        async with app.run_test(size=SIZE):
            app.open_run(int(run.id))
            log = await run_log(app)
            screen = app.screen_stack[-1]
            assert isinstance(screen, RunScreen)
            header = screen.query_one(RunHeader)
            await wait_for(lambda: len(log.model) == 1)
            await wait_for(lambda: header.run is not None and header.run.code_commit is not None)
            assert f"code v2 @ {tip[:12]}" in str(header.render())

    asyncio.run(scenario())
