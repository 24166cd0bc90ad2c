"""Starting a run from the TUI: command, project, environment."""

from __future__ import annotations

import shlex

from textual import work

from control.client import DevyardError, NotFound
from control.wire.errors import PROJECT_NOT_FOUND
from control.wire.runs import RunOut
from tui.screens.form import FieldProblem, FormField, FormScreen


class NewRunScreen(FormScreen[RunOut]):
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
        # A first run in a new repository names a project nobody made yet: the first Start says
        # so, a second Start with the same name creates it (a typo is never created silently).
        self._create_offered: str | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self._load_suggestions()

    @work(exclusive=True, group="suggest")
    async def _load_suggestions(self) -> None:
        try:
            projects = await self.yard.client.list_projects(limit=500)
        except DevyardError:
            return
        self.suggest("project", [p.name for p in projects.items])

    async def submit(self, values: dict[str, str]) -> RunOut:
        try:
            argv = shlex.split(values["command"])
        except ValueError as exc:
            raise FieldProblem("command", f"The command cannot be read: {exc}.") from None
        if not argv:
            raise FieldProblem("command", "Give the command to run, e.g. make test.")
        if not values["project"]:
            raise FieldProblem("project", "Give the project to run it in.")
        project = values["project"]
        try:
            return await self._create_run(project, argv, values["environment"])
        except NotFound as exc:
            if exc.code != PROJECT_NOT_FOUND:
                raise
            if self._create_offered != project:
                self._create_offered = project
                raise FieldProblem(
                    "project", f"Project {project} does not exist; press Start again to create it."
                ) from None
        await self.yard.client.create_project(project)
        return await self._create_run(project, argv, values["environment"])

    async def _create_run(self, project: str, argv: list[str], environment: str) -> RunOut:
        run = await self.yard.client.create_run(project, argv, environment=environment or None, trigger="manual")
        return run
