"""Starting a develop server from the TUI: project and environment."""

from __future__ import annotations

from textual import work

from control.client import DevyardError
from control.wire.devservers import DevServerOut
from tui.screens.form import FieldProblem, FormField, FormScreen


class StartDevServerScreen(FormScreen[DevServerOut]):
    """Dismisses with the develop server (then the app opens its view)."""

    TITLE_TEXT = "Start a develop server"
    SUBMIT = "Start"

    def __init__(self, project: str = "", environment: str = "") -> None:
        super().__init__(
            [
                FormField("project", "Project", "a project name", project),
                FormField("environment", "Environment (optional)", "its variables reach the server", environment),
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
        self.suggest("project", [p.name for p in projects.items])

    async def submit(self, values: dict[str, str]) -> DevServerOut:
        if not values["project"]:
            raise FieldProblem("project", "Give the project whose workspace the server holds.")
        server = await self.yard.client.start_devserver(values["project"], environment=values["environment"] or None)
        return server
