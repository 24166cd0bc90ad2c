"""The develop server view's ports: what listens in the server, and which are forwarded here."""

from __future__ import annotations

import contextlib

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from control.wire.ports import ListeningPort
from tui.cells import ago


class PortsTable(DataTable[Text | str]):
    """One row per listening port; the cursor picks the one `f` forwards."""

    DEFAULT_CSS = """
    PortsTable { height: auto; max-height: 12; border: round $primary 40%; border-title-color: $text; }
    """

    def on_mount(self) -> None:
        self.border_title = "Ports (f: forward here)"
        self.cursor_type = "row"
        for key, label in (("port", "port"), ("address", "address"), ("forward", "here"), ("since", "since")):
            self.add_column(label, key=key)
        self.add_column("process", key="process")

    def show(self, ports: list[ListeningPort], forwarded: dict[int, int]) -> None:
        """Show ``ports`` (one row per port number), marking those forwarded (remote -> local)."""
        keep = self.selected_port()
        self.clear()
        seen: set[int] = set()
        for entry in ports:
            if entry.port in seen:  # the same port on IPv4 and IPv6
                continue
            seen.add(entry.port)
            local = forwarded.get(entry.port)
            self.add_row(
                Text(str(entry.port), justify="right"),
                entry.address,
                Text(f"127.0.0.1:{local}", style="bold") if local else Text("-", style="dim"),
                ago(entry.since),
                Text(entry.process or "-", no_wrap=True),
                key=str(entry.port),
            )
        self.border_subtitle = "" if ports else "nothing listens yet"
        if keep is not None:
            with contextlib.suppress(RowDoesNotExist):
                self.move_cursor(row=self.get_row_index(str(keep)))

    def selected_port(self) -> int | None:
        """The port under the cursor (None when the table is empty)."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return int(str(key.value)) if key.value is not None else None
