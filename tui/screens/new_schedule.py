"""Adding a schedule from the TUI: name, cron, timezone, command, project, environment."""

from __future__ import annotations

import shlex

from textual import work

from control.client import ApiError, DevyardError
from control.wire.schedules import ScheduleOut
from tui.screens.form import FieldProblem, FormField, FormScreen

ABOUT = (("cron", "cron"), ("timezone", "timezone"), ("environment", "environment"), ("project", "project"))
"""Which field an API refusal is about, by a word of its sentence (first match wins)."""


class NewScheduleScreen(FormScreen[ScheduleOut]):
    """Dismisses with the new schedule (the schedules tab then shows it)."""

    TITLE_TEXT = "New schedule"
    SUBMIT = "Add"

    def __init__(self, project: str = "") -> None:
        super().__init__(
            [
                FormField("name", "Name", "e.g. nightly"),
                FormField("cron", "Cron", "five fields: minute hour day month weekday, e.g. 30 2 * * *"),
                FormField("timezone", "Timezone", "an IANA name, e.g. Europe/Berlin", "UTC"),
                FormField("command", "Command", "e.g. dbt build   (no shell: write sh -c '...' for one)"),
                FormField("project", "Project", "a project name", project),
                FormField("environment", "Environment (optional)", "e.g. prod"),
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

    async def submit(self, values: dict[str, str]) -> ScheduleOut:
        for field, what in (("name", "a name"), ("cron", "a cron expression"), ("project", "the project")):
            if not values[field]:
                raise FieldProblem(field, f"Give {what}.")
        try:
            argv = shlex.split(values["command"])
        except ValueError as exc:
            raise FieldProblem("command", f"The command cannot be read: {exc}.") from None
        if not argv:
            raise FieldProblem("command", "Give the command to run, e.g. dbt build.")
        try:
            schedule = await self.yard.client.create_schedule(
                name=values["name"],
                project=values["project"],
                environment=values["environment"] or None,
                command=argv,
                cron=values["cron"],
                timezone=values["timezone"] or "UTC",
            )
        except ApiError as exc:
            # The API's sentence names the value, not the field: put it under the field it is about.
            about = next((name for name, word in ABOUT if word in exc.message.lower()), None)
            if about is None or exc.extra.get("details"):
                raise
            raise FieldProblem(about, exc.message) from None
        return schedule
