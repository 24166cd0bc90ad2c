"""A table of API resources (runs, develop servers, schedules, agents) kept in step with events.

Rows are keyed by the resource's id; :meth:`ResourceTable.upsert` changes one row in place (the
cursor and scroll stay put), :meth:`ResourceTable.replace` reloads all rows and keeps the cursor
on the same resource. A text filter hides rows that do not contain every word. DataTable renders
through the Line API, so only visible rows cost anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from rich.text import Text
from textual.binding import BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from control.wire.events import resource_of
from tui.actions import bindings
from tui.cells import Palette, theme_palette

Item = TypeVar("Item", bound=BaseModel)
"""The wire model of the table's resource (``RunOut``, ``DevServerOut``...)."""


@dataclass(frozen=True)
class Column(Generic[Item]):
    """One column: its key, header, and how an item becomes the cell."""

    key: str
    label: str
    cell: Callable[[Item, Palette], Text | str]
    width: int | None = None


class ResourceTable(DataTable[Text | str], Generic[Item]):
    """Rows of resources, one per id, with vim keys."""

    DEFAULT_CSS = """
    ResourceTable { height: 1fr; }
    ResourceTable > .datatable--header { text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("table")]
    COLUMNS: ClassVar[tuple[Column[Any], ...]] = ()
    MODEL: ClassVar[type[BaseModel]] = BaseModel
    """The wire model an event's data is read as."""
    EMPTY = "Nothing here yet."

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cursor_foreground_priority="renderable")
        self.items: dict[str, Item] = {}
        """Every loaded item by id, shown or filtered out."""
        self.filter_words: list[str] = []
        """Lower-case words every shown row must contain."""
        self.loaded = False
        """Whether the first load finished."""
        self.filling = False
        """Rows are being replaced (the cursor moves without the user)."""

    def on_mount(self) -> None:
        for column in self.COLUMNS:
            self.add_column(column.label, key=column.key, width=column.width)

    @property
    def colours(self) -> Palette:
        return theme_palette(self.app)

    @property
    def selected(self) -> Item | None:
        """The item under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return self.items.get(str(key))

    def key_of(self, item: Item) -> str:
        return str(getattr(item, "id"))  # noqa: B009  (every resource has one; the bound type does not say so)

    def from_event(self, data: dict[str, Any]) -> Item | None:
        """An event's resource as a row: the whole resource, or (an event that names only some
        fields) the known row with those fields changed; None for a partial unknown row."""
        known = self.items.get(str(data.get("id")))
        return resource_of(self.MODEL, data, known)  # type: ignore[return-value]  # MODEL is Item's class

    def sort_key(self, item: Item) -> Any:
        """Order of the rows (the API's order by default)."""
        return 0

    def matches(self, item: Item) -> bool:
        """Whether the text filter lets ``item`` through."""
        if not self.filter_words:
            return True
        colours = self.colours
        text = " ".join(str(column.cell(item, colours)) for column in self.COLUMNS).lower()
        return all(word in text for word in self.filter_words)

    def _cells(self, item: Item) -> list[Text | str]:
        colours = self.colours
        return [column.cell(item, colours) for column in self.COLUMNS]

    def replace(self, items: Iterable[Item]) -> None:
        """Show exactly ``items`` (in this order), keeping the cursor on the same resource."""
        self.loaded = True
        self._rebuild_keeping_cursor(items={self.key_of(item): item for item in items})

    def upsert(self, items: Iterable[Item], first: bool = False) -> None:
        """Add or update resources; new ones go first when ``first`` (newest-first lists), else
        last. Known rows change in place; the table is rebuilt at most once."""
        rebuild = False
        fresh: dict[str, Item] = {}
        for item in items:
            key = self.key_of(item)
            known = key in self.items
            merged = item
            self.items[key] = merged
            if not known:
                fresh[key] = merged
            shown = key in self.rows
            if not self.matches(merged):
                if shown:
                    self.remove_row(key)
            elif shown:
                for column, value in zip(self.COLUMNS, self._cells(merged), strict=True):
                    self.update_cell(key, column.key, value)
            else:
                rebuild = True
        if fresh and first:
            rest = {k: v for k, v in self.items.items() if k not in fresh}
            self.items = {**dict(reversed(list(fresh.items()))), **rest}
        if rebuild:
            self._rebuild_keeping_cursor()

    def forget(self, key: str) -> None:
        self.items.pop(key, None)
        if key in self.rows:
            self.remove_row(key)

    CLOCK_COLUMNS: ClassVar[frozenset[str]] = frozenset()
    """Columns whose text depends on the clock (ages, durations, next fire times)."""

    def live_keys(self) -> list[str]:
        """Rows whose clock columns change every second (running things); others change slowly."""
        return []

    def refresh_clock(self, every_row: bool) -> None:
        """Re-render the clock columns: of the live rows, or (``every_row``) of every shown row."""
        if not self.CLOCK_COLUMNS:
            return
        colours = self.colours
        keys = list(self.items) if every_row else self.live_keys()
        for key in keys:
            if key not in self.rows:
                continue
            item = self.items[key]
            for column in self.COLUMNS:
                if column.key in self.CLOCK_COLUMNS:
                    self.update_cell(key, column.key, column.cell(item, colours))

    def redraw(self) -> None:
        """Render every row again (after a theme change)."""
        self._rebuild_keeping_cursor()

    def set_filter(self, words: list[str]) -> None:
        self.filter_words = [word.lower() for word in words]
        self._rebuild_keeping_cursor()

    def _rebuild_keeping_cursor(self, items: dict[str, Item] | None = None) -> None:
        """Show the rows again, the cursor on the same resource; with ``items``, those instead
        (a new listing scrolls with its cursor rather than keeping the old scroll position)."""
        current = self.selected
        current_key = self.key_of(current) if current else None
        row = self.cursor_row
        scroll = self.scroll_y
        if items is not None:
            self.items = items
        self.filling = True
        try:
            self.clear()
            for key, item in self.items.items():
                if self.matches(item):
                    self.add_row(*self._cells(item), key=key)
            self._restore_cursor(current_key, row)
            if items is None:
                self.scroll_to(y=scroll, animate=False, immediate=True)
        finally:
            self.filling = False

    def _restore_cursor(self, key: str | None, row: int) -> None:
        if not self.row_count:
            return
        if key is not None:
            try:
                self.move_cursor(row=self.get_row_index(key), animate=False, scroll=False)
                return
            except RowDoesNotExist:
                pass
        self.move_cursor(row=min(row, self.row_count - 1), animate=False, scroll=False)
