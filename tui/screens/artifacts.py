"""A run's artifacts: path, size and SHA-256; ``d`` saves them into a folder (the current one
unless another is typed), as ``yard runs artifacts RUN --download DIR`` does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from control.client import ControlClient, DevyardError
from control.wire.runs import ArtifactOut
from tui.artifact_save import SaveRefused, save_artifacts
from tui.screens.base import YardModal
from tui.widgets.prompt_bar import PromptBar


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class ArtifactsScreen(YardModal[None]):
    """The artifacts of one run; ``y`` copies the selected path."""

    DEFAULT_CSS = """
    ArtifactsScreen { align: center middle; }
    ArtifactsScreen > Vertical {
        width: 110; max-width: 95%; height: 70%;
        border: thick $primary 50%; background: $surface; padding: 0 1;
    }
    ArtifactsScreen #title { text-style: bold; height: 1; }
    ArtifactsScreen #hint { color: $text-muted; height: auto; }
    ArtifactsScreen DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("d", "download", "Download"),
        Binding("y", "copy_path", "Copy path"),
        Binding("j", "cursor('down')", show=False),
        Binding("k", "cursor('up')", show=False),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.artifacts: list[ArtifactOut] = []
        """The run's artifacts, once loaded."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Artifacts of run {self.run_id}", id="title")
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static("Loading… · esc closes", id="hint")
            yield PromptBar(id="download-folder")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("path", "size", "sha256", "created")
        table.focus()
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        hint = self.query_one("#hint", Static)
        try:
            artifacts = await self.yard.client.list_artifacts(self.run_id)
        except DevyardError as exc:
            hint.update(str(exc))
            return
        self.artifacts = artifacts
        table = self.query_one(DataTable)
        for artifact in artifacts:
            table.add_row(
                Text(artifact.path),
                Text(size_text(artifact.size), justify="right"),
                Text(artifact.sha256[:16] + "…"),
                Text(str(artifact.created_at)[:19].replace("T", " ")),
                key=artifact.path,
            )
        hint.update(self._hint())

    def _hint(self) -> str:
        if not self.artifacts:
            return "This run has no artifacts (start it with --artifact GLOB to keep files) · esc closes"
        return f"{len(self.artifacts)} artifact(s) · d downloads them to a folder · y copies the path · esc closes"

    def action_close(self) -> None:
        self.dismiss(None)

    def action_download(self) -> None:
        if not self.artifacts:
            self.notify("This run has no artifacts to download.", severity="warning")
            return
        self.query_one(PromptBar).ask(
            "download", str(Path.cwd()), "folder to save the artifacts in — enter saves, esc cancels"
        )

    def on_prompt_bar_answered(self, event: PromptBar.Answered) -> None:
        if event.kind == "download":
            self.download(event.value.strip() or str(Path.cwd()))

    @work(exclusive=True, group="download")
    async def download(self, folder: str) -> None:
        """Save every artifact under ``folder``, in a thread (files may be big)."""
        hint = self.query_one("#hint", Static)
        hint.update(f"Downloading {len(self.artifacts)} artifact(s) to {folder}…")
        profile = self.yard.profile

        def save() -> list[Path]:
            with ControlClient(profile.url, profile.token, trust=profile.trust, profile=profile) as client:
                return save_artifacts(client, self.run_id, self.artifacts, Path(folder))

        try:
            written = await asyncio.to_thread(save)
        except SaveRefused as exc:
            hint.update(f"{exc} · {self._hint()}")
            self.notify(str(exc), severity="error")
            return
        where = Path(folder).expanduser().resolve()
        hint.update(f"Saved {len(written)} artifact(s) in {where} · {self._hint()}")
        self.notify(f"Saved {len(written)} artifact(s) in {where}.")

    def action_cursor(self, direction: str) -> None:
        table = self.query_one(DataTable)
        table.action_cursor_down() if direction == "down" else table.action_cursor_up()

    def action_copy_path(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        path = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.app.copy_to_clipboard(str(path))
        self.notify(f"Copied {path}.")
