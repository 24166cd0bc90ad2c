"""The dashboard: develop servers, runs, jobs, schedules and agents, live from the events stream."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.dom import DOMNode
from textual.widgets import DataTable, Footer, TabbedContent, TabPane, Tabs

from control.client import AsyncControlClient, DevyardError
from control.wire.devservers import DevServerOut
from control.wire.jobs import JobOut
from control.wire.resources import Page
from control.wire.runs import RunOut
from control.wire.schedules import ScheduleOut
from control.wire.work import AgentOut
from tui import operations
from tui.actions import BY_ID, bindings
from tui.commands import key_display
from tui.live import Change
from tui.screens.base import YardScreen
from tui.widgets.agents_table import AgentsTable
from tui.widgets.devservers_table import DevServersTable
from tui.widgets.empty_hint import EmptyHint
from tui.widgets.jobs_table import JobsTable
from tui.widgets.prompt_bar import PromptBar
from tui.widgets.resource_table import ResourceTable
from tui.widgets.runs_table import RunsTable
from tui.widgets.schedules_table import SchedulesTable
from tui.widgets.status_bar import StatusBar

RUNS_PAGE = 60
DEVSERVERS_EVERY_S = 10.0
"""How often the develop servers are reloaded: their last activity is not sent as events."""
AGES_EVERY_TICKS = 10
TABS = ("devservers", "runs", "jobs", "schedules", "agents")
TAB_TITLES = {"devservers": "Dev servers", "runs": "Runs", "jobs": "Jobs", "schedules": "Schedules", "agents": "Agents"}
RUN_FILTER_KEYS = ("state", "project", "trigger", "job")
FILTER_HINT = (
    "filter: words, or state:failed,running project:NAME trigger:schedule job:NAME — enter keeps it, esc undoes"
)
FILTER_HINT_OTHERS = "filter this tab: words every row must contain — enter keeps it, esc undoes"


EMPTY_KEYS = {
    "devservers": ("devservers.start", "start one for a project"),
    "runs": ("dashboard.new_run", "start one"),
    "schedules": ("schedules.add", "add one"),
}
"""The key that makes a table's first row, and what it does."""
EMPTY_COMMANDS = {
    "devservers": "`yard dev start` in your project's folder.",
    "runs": "`yard run -- make test` in your project's folder.",
    "jobs": "`yard jobs add nightly -e prod --cron '30 2 * * *' --step 'dbt build'`.",
    "schedules": "`yard schedule add nightly --cron '0 2 * * *' -- make test`.",
    "agents": "`yard up` (it runs one), or `yard agent` on the machine that should run the work.",
}
"""The CLI command that makes a table's first row (the hint of an empty table)."""

Tables = tuple[Page[RunOut], list[DevServerOut], list[JobOut], list[ScheduleOut], list[AgentOut]]
Row = TypeVar("Row", bound=BaseModel)


async def fetch_tables(client: AsyncControlClient, runs_filter: dict[str, Any]) -> Tables:
    """Everything the dashboard shows, in one round of concurrent requests."""
    runs, servers, jobs, schedules, agents = await asyncio.gather(
        client.list_runs(limit=RUNS_PAGE, **runs_filter),
        client.list_devservers(),
        client.list_jobs(),
        client.list_schedules(),
        client.list_agents(),
    )
    return runs, servers, jobs, schedules, agents


def parse_filter(text: str) -> tuple[dict[str, Any], list[str]]:
    """``state:failed,running project:shop job:nightly make`` → server filter for runs, and plain words."""
    server: dict[str, Any] = {}
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key in RUN_FILTER_KEYS and value:
            server[key] = value.split(",") if key == "state" else value
        else:
            words.append(token)
    return server, words


class DashboardScreen(YardScreen[None]):
    """Five tabs of tables; `enter` opens a run or a develop server."""

    DEFAULT_CSS = """
    DashboardScreen TabbedContent { height: 1fr; }
    DashboardScreen TabPane { padding: 0; }
    DashboardScreen TabPane.-empty ResourceTable { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("dashboard")]

    def __init__(self) -> None:
        super().__init__()
        self.filters: dict[str, str] = dict.fromkeys(TABS, "")
        """Each tab's own filter as typed (words, and key:value pairs for runs)."""
        self._filter_tab = "runs"
        """The tab the open filter prompt filters (the tab shown when `/` was pressed)."""
        self._ticks = 0

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="runs"):
            with TabPane(TAB_TITLES["devservers"], id="devservers"):
                yield DevServersTable(id="devservers-table")
                yield EmptyHint(id="devservers-empty")
            with TabPane(TAB_TITLES["runs"], id="runs"):
                yield RunsTable(id="runs-table")
                yield EmptyHint(id="runs-empty")
            with TabPane(TAB_TITLES["jobs"], id="jobs"):
                yield JobsTable(id="jobs-table")
                yield EmptyHint(id="jobs-empty")
            with TabPane(TAB_TITLES["schedules"], id="schedules"):
                yield SchedulesTable(id="schedules-table")
                yield EmptyHint(id="schedules-empty")
            with TabPane(TAB_TITLES["agents"], id="agents"):
                yield AgentsTable(id="agents-table")
                yield EmptyHint(id="agents-empty")
        yield PromptBar(id="dashboard-prompt")
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        self.yard.feed_signal.subscribe(self, self.on_feed)
        self.set_interval(1.0, self._tick)
        self.set_interval(15.0, self.reload_agents)
        self.set_interval(DEVSERVERS_EVERY_S, self.reload_devservers)
        self.watch(self.app, "theme", self._recolour, init=False)
        self._focus_tab("runs")
        self.reload()

    # ------------------------------------------------------------------ tabs

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active or "runs"

    @property
    def active_table(self) -> ResourceTable[Any]:
        return self.query_one(f"#{self.active_tab}-table", ResourceTable)

    def action_scopes(self) -> list[tuple[str, DOMNode]]:
        table = self.active_table
        scopes: list[tuple[str, DOMNode]] = [("dashboard", self), ("table", table)]
        if self.active_tab in ("runs", "devservers", "jobs", "schedules"):
            scopes.append((self.active_tab, table))
        return scopes

    @property
    def runs(self) -> RunsTable:
        return self.query_one(RunsTable)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab(tab)

    def action_next_tab(self) -> None:
        self.action_show_tab(TABS[(TABS.index(self.active_tab) + 1) % len(TABS)])

    def action_prev_tab(self) -> None:
        self.action_show_tab(TABS[(TABS.index(self.active_tab) - 1) % len(TABS)])

    def _focus_tab(self, tab: str) -> None:
        # Keys like enter and j/k act on the table of the visible tab, not on the tab strip.
        self.query_one(f"#{tab}-table", ResourceTable).focus()

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        if message.pane.id:
            self._focus_tab(message.pane.id)
            self._count_tabs()

    def _count_tabs(self) -> None:
        if not self.is_attached:
            return  # a late answer while the app closes
        contents = self.query_one(TabbedContent)
        relabelled = False
        for tab in TABS:
            table = self.query_one(f"#{tab}-table", ResourceTable)
            more = "+" if tab == "runs" and self.runs.next_cursor else ""
            count = f" ({table.row_count}{more})" if table.loaded else ""
            shown = f" /{escape(self.filters[tab])}" if self.filters[tab] else ""
            label = f"{TAB_TITLES[tab]}{count}{shown}"
            if str(contents.get_tab(tab).label) != label:
                contents.get_tab(tab).label = label
                relabelled = True
            hint = self._empty_hint(tab) if table.loaded and not table.row_count else None
            self.query_one(f"#{tab}-empty", EmptyHint).show_hint(hint)
            contents.get_pane(tab).set_class(hint is not None, "-empty")
        if relabelled:
            # Textual moves the active tab's underline on a click or a resize, not when labels
            # change width: without this it stayed under the old, shorter label.
            tabs = contents.query_one(Tabs)
            tabs.call_after_refresh(tabs._highlight_active, False)

    def _empty_hint(self, tab: str) -> str:
        """What to do about an empty table: clear the filter, or how to make the first one."""
        if self.filters[tab]:
            return f"Nothing matches the filter /{self.filters[tab]}; press esc to clear it."
        if not self.yard.read_only and tab in EMPTY_KEYS:
            action_id, what = EMPTY_KEYS[tab]
            press = f"Press {key_display(self.yard, BY_ID[action_id])} to {what}, or run "
        else:
            press = "Run "
        return press + EMPTY_COMMANDS[tab]

    # ------------------------------------------------------------------ loading

    @work(exclusive=True, group="dashboard-load")
    async def reload(self) -> None:
        """Load every table; on start, after a reconnect, and on `r`."""
        # The first load was started by the app before this screen existed (see DevyardApp.on_load).
        pending = self.yard.take_first_load()
        try:
            runs, servers, jobs, schedules, agents = await (
                pending or fetch_tables(self.yard.client, self.runs.server_filter)
            )
        except DevyardError as exc:
            # Still nothing on screen: load again as soon as the events stream is up.
            self.yard.first_load_failed = self.yard.first_paint_at is None
            self.notify(str(exc), severity="error")
            return
        self.runs.next_cursor = runs.next_cursor
        self.runs.replace(runs.items)
        self.query_one(DevServersTable).replace(servers)
        self.query_one(JobsTable).replace(jobs)
        self.query_one(SchedulesTable).replace(schedules)
        self.query_one(AgentsTable).replace(agents)
        self._count_tabs()
        self.yard.first_paint_done()

    @work(exclusive=True, group="dashboard-schedules")
    async def reload_schedules(self) -> None:
        await asyncio.sleep(0.2)  # several ticks and run changes arrive together: load once
        try:
            schedules = await self.yard.client.list_schedules()
        except DevyardError:
            return
        self.query_one(SchedulesTable).replace(schedules)
        self._count_tabs()

    @work(exclusive=True, group="dashboard-jobs")
    async def reload_jobs(self) -> None:
        await asyncio.sleep(0.2)  # a run's events and its job's come together: load once
        try:
            jobs = await self.yard.client.list_jobs()
        except DevyardError:
            return
        self.query_one(JobsTable).replace(jobs)
        self._count_tabs()

    @work(exclusive=True, group="dashboard-devservers")
    async def reload_devservers(self) -> None:
        """Their last activity moves without events (a shell, an exec, a run in the workspace)."""
        try:
            servers = await self.yard.client.list_devservers()
        except DevyardError:
            return
        self.query_one(DevServersTable).replace(servers)
        self._count_tabs()

    @work(exclusive=True, group="dashboard-agents")
    async def reload_agents(self) -> None:
        try:
            agents = await self.yard.client.list_agents()
        except DevyardError:
            return
        self.query_one(AgentsTable).replace(agents)
        self._count_tabs()

    @work(exclusive=True, group="dashboard-runs")
    async def reload_runs(self) -> None:
        try:
            page = await self.yard.client.list_runs(limit=RUNS_PAGE, **self.runs.server_filter)
        except DevyardError as exc:
            self.notify(str(exc), severity="error")
            return
        self.runs.next_cursor = page.next_cursor
        self.runs.replace(page.items)
        self._count_tabs()

    @on(RunsTable.MoreWanted)
    @work(exclusive=True, group="dashboard-more")
    async def load_more_runs(self) -> None:
        table = self.runs
        cursor = table.next_cursor
        if not cursor:
            return
        try:
            page = await self.yard.client.list_runs(limit=RUNS_PAGE, cursor=cursor, **table.server_filter)
        except DevyardError as exc:
            self.notify(str(exc), severity="error")
            return
        if table.next_cursor != cursor:
            return
        table.next_cursor = page.next_cursor
        table.upsert(page.items)
        self._count_tabs()

    def on_feed(self, changes: list[Change]) -> None:
        """Events from the app's stream, in batches (a burst of run events rebuilds once)."""
        runs: list[RunOut] = []
        servers: list[DevServerOut] = []
        schedules_changed = jobs_changed = False
        for change in changes:
            if change.type == "connected":
                self.reload()
                return
            if change.kind == "run" and (run := self.runs.from_event(change.data)) is not None:
                if self.runs.accepts(run) or str(run.id) in self.runs.items:
                    runs.append(run)
                schedules_changed |= run.trigger == "schedule"
                jobs_changed |= run.job is not None
            elif change.type == "devserver.updated":
                server = self.query_one(DevServersTable).from_event(change.data)
                if server is not None and (self.yard.me is None or server.user == self.yard.me.name):
                    servers.append(server)
            elif change.kind == "schedule":
                schedules_changed = True
            elif change.kind == "job":
                jobs_changed = True
            elif change.type == "agent.registered":
                agents = self.query_one(AgentsTable)
                if (agent := agents.from_event(change.data)) is not None:
                    agents.upsert([agent])
        if runs:
            self.runs.upsert(runs, first=True)
        if servers:
            self.query_one(DevServersTable).upsert(servers, first=True)
        if schedules_changed:
            self.reload_schedules()
        if jobs_changed:
            self.reload_jobs()
        if runs or servers:
            self._count_tabs()

    def _recolour(self) -> None:
        """State icons take their colours from the theme."""
        for table in self.query(ResourceTable):
            table.redraw()

    def _tick(self) -> None:
        """Durations of running runs and uptimes move every second; ages every ten."""
        self._ticks += 1
        for table in self.query(ResourceTable):
            table.refresh_clock(every_row=self._ticks % AGES_EVERY_TICKS == 0)

    # ------------------------------------------------------------------ filter

    @property
    def filter_text(self) -> str:
        """The filter of the tab on screen."""
        return self.filters[self.active_tab]

    def action_filter(self) -> None:
        self._filter_tab = self.active_tab
        hint = FILTER_HINT if self._filter_tab == "runs" else FILTER_HINT_OTHERS
        self.query_one(PromptBar).ask("filter", self.filter_text, hint)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self.filter_text)
        return super().check_action(action, parameters)

    def action_clear_filter(self) -> None:
        self.apply_filter("")

    @on(PromptBar.Typed)
    def _filter_typed(self, event: PromptBar.Typed) -> None:
        self.apply_filter(event.value, server=False, tab=self._filter_tab)

    @on(PromptBar.Answered)
    def _filter_entered(self, event: PromptBar.Answered) -> None:
        self.apply_filter(event.value, tab=self._filter_tab)

    def apply_filter(self, text: str, server: bool = True, tab: str | None = None) -> None:
        """Filter one tab's table (the one on screen by default): words as you type; on the runs
        tab, ``key:value`` pairs reload the runs on enter. Other tabs keep their own filters."""
        tab = tab or self.active_tab
        self.filters[tab] = text.strip()
        table = self.query_one(f"#{tab}-table", ResourceTable)
        if table is not self.runs:
            server_filter, words = parse_filter(self.filters[tab])
            # Elsewhere project:NAME is just a word to look for.
            table.set_filter(words + [str(v) for k, v in server_filter.items() if k == "project"])
            self._count_tabs()
            return
        server_filter, words = parse_filter(self.filters[tab])
        table.set_filter(words)
        if server and server_filter != self.runs.server_filter:
            self.runs.server_filter = server_filter
            self.reload_runs()
        self._count_tabs()

    # ------------------------------------------------------------------ actions

    def action_refresh(self) -> None:
        self.reload()

    def action_new_run(self) -> None:
        selected = self.runs.selected
        self.yard.new_run(project=str(selected.project) if selected else self.yard.local_project)

    def _selected(self, table: type[ResourceTable[Row]], what: str) -> Row | None:
        item = self.query_one(table).selected
        if item is None:
            self.notify(f"No {what} is selected.", severity="warning")
        return item

    def action_open_run(self) -> None:
        if (run := self._selected(RunsTable, "run")) is not None:
            self.yard.open_run(run.id)

    def action_cancel_run(self) -> None:
        if (run := self._selected(RunsTable, "run")) is not None:
            operations.cancel_run(self.yard, run, "runs.cancel")

    @work(group="dashboard-rerun")
    async def action_rerun(self) -> None:
        if (run := self._selected(RunsTable, "run")) is not None:
            await operations.rerun(self.yard, run, "runs.rerun")

    def action_artifacts(self) -> None:
        if (run := self._selected(RunsTable, "run")) is not None:
            self.yard.show_artifacts(run.id)

    def action_copy_run_id(self) -> None:
        if (run := self._selected(RunsTable, "run")) is not None:
            operations.copy_run_id(self.yard, run.id)

    def action_open_devserver(self) -> None:
        if (server := self._selected(DevServersTable, "develop server")) is not None:
            self.yard.open_devserver(server)

    def action_start_devserver(self) -> None:
        selected = self.query_one(DevServersTable).selected
        self.yard.start_devserver(project=str(selected.project) if selected else self.yard.local_project)

    def action_stop_devserver(self) -> None:
        if (server := self._selected(DevServersTable, "develop server")) is not None:
            operations.stop_devserver(self.yard, server, "devservers.stop")

    def action_shell(self) -> None:
        if (server := self._selected(DevServersTable, "develop server")) is not None:
            operations.open_shell(self.yard, server, "devservers.shell")

    def action_open_schedule_run(self) -> None:
        if (schedule := self._selected(SchedulesTable, "schedule")) is None:
            return
        tick = schedule.last_tick or {}
        if tick.get("run_id"):
            self.yard.open_run(int(str(tick["run_id"])))
        else:
            self.notify(f"Schedule {schedule.name} has not fired a run yet.", severity="warning")

    def action_open_job_run(self) -> None:
        if (job := self._selected(JobsTable, "job")) is None:
            return
        if job.last_run is not None:
            self.yard.open_run(job.last_run.id)
        else:
            self.notify(f"Job {job.name} has not run yet; press t to run it now.", severity="warning")

    def action_run_job(self) -> None:
        if (job := self._selected(JobsTable, "job")) is not None:
            operations.run_job(self.yard, job, "jobs.run")

    def action_job_runs(self) -> None:
        if (job := self._selected(JobsTable, "job")) is not None:
            self.action_show_tab("runs")
            self.apply_filter(f"project:{job.project} job:{job.name}")

    def action_trigger_schedule(self) -> None:
        if (schedule := self._selected(SchedulesTable, "schedule")) is not None:
            operations.trigger_schedule(self.yard, schedule, "schedules.trigger")

    def action_toggle_schedule(self) -> None:
        if (schedule := self._selected(SchedulesTable, "schedule")) is not None:
            operations.toggle_schedule(self.yard, schedule, "schedules.pause")

    def action_add_schedule(self) -> None:
        selected = self.query_one(SchedulesTable).selected
        operations.add_schedule(self.yard, selected.project if selected else self.yard.local_project, "schedules.add")

    @on(DataTable.RowSelected)
    def _row_clicked(self, event: DataTable.RowSelected) -> None:
        """A click (or enter where not rebound) on a row opens it."""
        if isinstance(event.data_table, RunsTable):
            self.action_open_run()
        elif isinstance(event.data_table, DevServersTable):
            self.action_open_devserver()
        elif isinstance(event.data_table, JobsTable):
            self.action_open_job_run()
        elif isinstance(event.data_table, SchedulesTable):
            self.action_open_schedule_run()
