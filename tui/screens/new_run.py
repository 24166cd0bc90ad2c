"""Starting a run from the TUI: command, project, environment."""

from __future__ import annotations

import shlex
from typing import Any

from textual import work

from control.client import DevyardError
from tui.screens.form import FieldProblem, FormField, FormScreen


class NewRunScreen(FormScreen):
    """Dismisses with the new run (then the app opens it)."""

    TITLE_TEXT = "New run"
    SUBMIT = "Start"

    def __init__(self, project: str = "", environment: str = "", command: str = "") -> None:
        super().__init__(
            [
                FormField("command", "Command", "e.g. make test   (no shell: write sh -c '...' for one)", command),
                FormField("project", "Project", "a project name", project),
                FormField("environment", "Environment (optional)", "e.g. prod", environment),
            ]
        )

    def on_mount(self) -> None:
        super().on_mount()
        self._load_suggestions()

    @work(exclusive=True, group="suggest")
    async def _load_suggestions(self) -> None:
        try:
            projects = await self.yard.client.list_projects(limit=500)
        except DevyardError:
            return
        self.suggest("project", [p["name"] for p in projects["items"]])

    async def submit(self, values: dict[str, str]) -> dict[str, Any]:
        try:
            argv = shlex.split(values["command"])
        except ValueError as exc:
            raise FieldProblem("command", f"The command cannot be read: {exc}.") from None
        if not argv:
            raise FieldProblem("command", "Give the command to run, e.g. make test.")
        if not values["project"]:
            raise FieldProblem("project", "Give the project to run it in.")
        run: dict[str, Any] = await self.yard.client.create_run(
            values["project"], argv, environment=values["environment"] or None, trigger="manual"
        )
        return run
