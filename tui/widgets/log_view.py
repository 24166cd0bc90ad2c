"""The log viewer: a Line API widget over a :class:`~tui.log_model.LogModel`.

Only the lines on screen are decoded and rendered (ANSI colours kept, through
``Text.from_ansi``), with an LRU cache of rendered lines, so a million-line log scrolls like a
short one. Following sticks to the end while lines arrive and pauses as soon as the user scrolls
up; ``end`` resumes it. Search highlights matches and moves between them (``n``/``N``); a filter
hides the lines that do not match; stdout/stderr, timestamps and wrapping are toggles. Long
lines scroll sideways unless wrapped.

Wrapping is line-anchored: the vertical scroll position is a line, and the lines from there on
are wrapped to fill the screen, so wrapping never has to measure lines that are not shown.
"""

from __future__ import annotations

import re
import time
from array import array
from typing import ClassVar, NamedTuple

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from control.logformat import STEP
from tui.actions import bindings
from tui.log_model import LogModel, VisibleLines

CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")
STREAM_CYCLE = {"oe": "o", "o": "e", "e": "oe"}
STREAM_NAMES = {"oe": "stdout+stderr", "o": "stdout", "e": "stderr"}
MERGED_NOTE = "stdout and stderr were read together, in order; this log cannot show them apart."
GUTTER = 1
FRAME_S = 1 / 30
TIMESTAMP_WIDTH = 13


class LineStyles(NamedTuple):
    """The widget's own style and its component classes' styles, as Rich styles."""

    base: Style
    stderr: Style
    time: Style
    match: Style
    current: Style


def display_text(raw: bytes) -> Text:
    """A log line as a terminal would show it: the last carriage-return overwrite wins,
    tabs expanded, ANSI colours applied, other control characters dropped."""
    text = raw.decode("utf-8", "replace")
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    if "\t" in text:
        text = text.expandtabs(8)
    if "\x1b" in text:
        return Text.from_ansi(CONTROL_CHARS.sub("", text), end="", no_wrap=True)
    return Text(CONTROL_CHARS.sub("", text), end="", no_wrap=True)


def _clock(ts_ms: int) -> str:
    seconds, ms = divmod(ts_ms, 1000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ms:03d}"


class LogView(ScrollView, can_focus=True):
    """A run's log, rendered line by line from the model."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        scrollbar-gutter: stable;
        &:focus { background-tint: $foreground 3%; }
    }
    LogView > .log-view--stderr { color: $error; }
    LogView > .log-view--time { color: $text-muted; }
    LogView > .log-view--match { background: $warning 60%; color: $text; }
    LogView > .log-view--current { background: $accent 30%; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-view--stderr",
        "log-view--time",
        "log-view--match",
        "log-view--current",
    }
    BINDINGS: ClassVar[list[BindingType]] = [*bindings("log")]

    follow: reactive[bool] = reactive(True, init=False)
    """Stick to the end as lines arrive; paused by scrolling up, resumed by ``end``."""
    show_timestamps: reactive[bool] = reactive(False, init=False)
    """Show when each line was read, in local time."""
    wrap: reactive[bool] = reactive(False, init=False)
    """Wrap long lines instead of scrolling sideways."""
    streams: reactive[str] = reactive("oe", init=False)
    """Which streams are shown: ``oe``, ``o`` (stdout) or ``e`` (stderr)."""
    filter_text: reactive[str] = reactive("", init=False)
    """Only lines containing this are shown (smart case); empty shows every line."""
    search_text: reactive[str] = reactive("", init=False)
    """Highlighted, and what ``n``/``N`` look for."""

    class Changed(Message):
        """Something the status line shows changed (replaceable: only the latest matters)."""

        def __init__(self, log_view: LogView) -> None:
            super().__init__()
            self.log_view = log_view

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LogView.Changed)

    class PromptRequested(Message):
        """The user asked to type a search (``kind`` = ``search``) or a filter (``filter``)."""

        def __init__(self, kind: str, value: str) -> None:
            super().__init__()
            self.kind = kind
            self.value = value

    def __init__(self, model: LogModel | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model or LogModel()
        self.shown_lines: VisibleLines | None = None
        """Rows → lines while a filter or a stream choice hides lines; None shows all."""
        self.current_match: int | None = None
        """The line of the current search match."""
        self.filtering = False
        """A filter is being computed in the background."""
        self.message = ""
        """A short note for the status line (no match, wrapped around...)."""
        self._cache: LRUCache[tuple[int, int], tuple[Strip, Strip]] = LRUCache(1024)
        self._generation = 0
        self._widest = 0
        self._programmatic = 0
        self._wrap_rows: tuple[tuple[object, ...], list[Strip]] | None = None
        self._wrap_end_anchor = 0
        self._flush_pending = False
        self._last_flush = 0.0
        self._style_set: LineStyles | None = None
        self._scanned = 0
        self._model_generation = self.model.generation

    # ------------------------------------------------------------------ feeding

    def set_model(self, model: LogModel, shift: int = 0) -> None:
        """Show another model (the full log replacing its tail): ``shift`` lines came before."""
        row = self.scroll_y
        self.model = model
        self._model_generation = model.generation
        self._invalidate()
        self._refilter(keep_row=None if self.follow else row, shift=shift)

    def lines_appended(self) -> None:
        """The model grew at its end: show the new lines (and follow them).

        A busy run delivers a hundred chunks a second; the screen is brought up to date at most
        :data:`FRAME_S` apart, so the cost per second stays flat however fast lines arrive.
        """
        if self._flush_pending:
            return
        wait = self._last_flush + FRAME_S - time.monotonic()
        if wait > 0:
            self._flush_pending = True
            self.set_timer(wait, self._flush_appended)
        else:
            self._flush_appended()

    def _flush_appended(self) -> None:
        self._flush_pending = False
        self._last_flush = time.monotonic()
        if self.model.generation != self._model_generation:
            # The line being drawn (a progress bar) was replaced by its longer self.
            self._model_generation = self.model.generation
            self._scanned = min(self._scanned, max(len(self.model) - 1, 0))
            if self.shown_lines is not None:
                self.shown_lines.drop_from(self._scanned)
            self._generation += 1
            self._cache.clear()
        if self.shown_lines is not None:
            if self._active_filter():
                self.shown_lines.extend(self.model.matching(self.filter_text, self.streams, self._scanned))
            else:
                self.shown_lines = None
        self._scanned = len(self.model)
        self._wrap_rows = None
        self._resize_virtual()
        if self.follow:
            self._scroll_to_end()
        else:
            self.refresh()
        self.post_message(self.Changed(self))

    # ------------------------------------------------------------------ geometry

    @property
    def row_count(self) -> int:
        """Rows of lines that are shown (after the filter)."""
        return len(self.shown_lines) if self.shown_lines is not None else len(self.model)

    def line_at(self, row: int) -> int | None:
        """The model line shown at ``row`` (None past the end)."""
        if row < 0 or row >= self.row_count:
            return None
        return self.shown_lines[row] if self.shown_lines is not None else row

    def row_of(self, line: int) -> int:
        return self.shown_lines.row_of(line) if self.shown_lines is not None else line

    def _prefix_width(self) -> int:
        return GUTTER + (TIMESTAMP_WIDTH if self.show_timestamps else 0)

    def _resize_virtual(self) -> None:
        height = self.size.height or 1
        if self.wrap:
            self._wrap_end_anchor = self._end_anchor()
            rows = self._wrap_end_anchor + height if self.row_count else 0
            size = Size(self.size.width, rows)
        else:
            size = Size(self._widest + self._prefix_width(), self.row_count)
        self._programmatic += 1
        try:
            self.virtual_size = size
        finally:
            self._programmatic -= 1

    def on_resize(self) -> None:
        self._wrap_rows = None
        self._resize_virtual()
        if self.follow:
            self._scroll_to_end()

    # ------------------------------------------------------------------ scrolling and follow

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._wrap_rows = None
        if not self._programmatic and new < old and self.follow:
            self.follow = False

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self._scroll_to_end()
        self.post_message(self.Changed(self))

    def _scroll_to_end(self, again: bool = True) -> None:
        self._programmatic += 1
        try:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)
        finally:
            self._programmatic -= 1
        self.refresh()
        if again:
            # Before the first layout the widget has no height yet; go to the end once it has.
            self.call_after_refresh(self._end_if_following)

    def _end_if_following(self) -> None:
        if self.follow and self.scroll_y != self.max_scroll_y:
            self._scroll_to_end(again=False)

    def scroll_to_line(self, line: int, at_top: bool = False) -> None:
        """Bring ``line`` into view, a third of the way down the screen (``at_top``: as the
        first row) (pauses following)."""
        self.follow = False
        row = self.row_of(line)
        top = row if self.wrap or at_top else max(row - self.size.height // 3, 0)
        self._programmatic += 1
        try:
            self.scroll_to(y=min(top, self.max_scroll_y), animate=False, immediate=True, force=True)
        finally:
            self._programmatic -= 1
        self.refresh()

    def action_end(self) -> None:
        self.follow = True
        self._scroll_to_end()

    def action_top(self) -> None:
        self.follow = False
        self.scroll_to(y=0, animate=False, immediate=True, force=True)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_scroll_up(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_y - 1, animate=False, immediate=True, force=True)

    def action_scroll_down(self) -> None:
        self.scroll_to(y=self.scroll_y + 1, animate=False, immediate=True, force=True)

    def action_page_up(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_y - max(self.size.height - 1, 1), animate=False, immediate=True, force=True)

    def action_page_down(self) -> None:
        self.scroll_to(y=self.scroll_y + max(self.size.height - 1, 1), animate=False, immediate=True, force=True)

    def action_scroll_left(self) -> None:
        self.scroll_to(x=self.scroll_x - 8, animate=False, immediate=True, force=True)

    def action_scroll_right(self) -> None:
        self.scroll_to(x=self.scroll_x + 8, animate=False, immediate=True, force=True)

    # ------------------------------------------------------------------ search, filter, toggles

    def action_search(self) -> None:
        self.post_message(self.PromptRequested("search", self.search_text))

    def action_filter(self) -> None:
        self.post_message(self.PromptRequested("filter", self.filter_text))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear":
            # With nothing to clear, `escape` falls through to the screen (back).
            return bool(self.filter_text or self.search_text or self.streams != "oe")
        return True

    def action_clear(self) -> None:
        self.search_text = ""
        self.filter_text = ""
        self.streams = "oe"

    def search_for(self, text: str, backwards: bool = False) -> int | None:
        """Highlight ``text`` and go to its next match from the top of the screen."""
        self.search_text = text
        start = self.line_at(int(self.scroll_y) + (0 if self.wrap else self.size.height // 3))
        return self._go_to_match(start if start is not None else -1, backwards, first=True)

    def action_next_match(self) -> None:
        self._step_match(backwards=False)

    def action_previous_match(self) -> None:
        self._step_match(backwards=True)

    def _step_match(self, backwards: bool) -> None:
        if not self.search_text:
            self.post_message(self.PromptRequested("search", ""))
            return
        here = self.current_match
        if here is None:
            here = self.line_at(int(self.scroll_y)) or 0
        self._go_to_match(here, backwards)

    def _go_to_match(self, start: int, backwards: bool, first: bool = False) -> int | None:
        allowed = self.shown_lines if self.shown_lines is not None else None
        begin = start - 1 if first and not backwards else start
        found = self.model.find(self.search_text, begin, backwards=backwards, allowed=allowed)
        wrapped = found is not None and ((found <= start) if not backwards else (found >= start)) and not first
        self.message = (
            f"No line contains {self.search_text!r}."
            if found is None
            else ("Search wrapped around." if wrapped else "")
        )
        if found is not None:
            self.current_match = found
            self._invalidate()
            self.scroll_to_line(found)
        self.post_message(self.Changed(self))
        return found

    def action_next_error(self) -> None:
        here = self.current_match if self.current_match is not None else (self.line_at(int(self.scroll_y)) or 0) - 1
        found = self.model.first_error(here, self.shown_lines)
        if found is None:
            self.message = "No line looks like an error."
        else:
            self.message = ""
            self.current_match = found
            self._invalidate()
            self.scroll_to_line(found)
        self.post_message(self.Changed(self))

    def action_cycle_streams(self) -> None:
        if self.model.merged and self.streams == "oe":
            # One channel kept the order and lost which stream wrote what: say so rather
            # than show every line as stdout and none as stderr.
            self.message = MERGED_NOTE
            self.post_message(self.Changed(self))
            return
        self.streams = STREAM_CYCLE[self.streams]

    def action_toggle_timestamps(self) -> None:
        self.show_timestamps = not self.show_timestamps

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def watch_search_text(self) -> None:
        self.current_match = None
        self._invalidate()
        self.post_message(self.Changed(self))

    def watch_filter_text(self) -> None:
        self._refilter()

    def watch_streams(self) -> None:
        self._refilter()

    def watch_show_timestamps(self) -> None:
        self._invalidate()
        self._resize_virtual()
        self.post_message(self.Changed(self))

    def watch_wrap(self) -> None:
        self._invalidate()
        anchor = self.line_at(int(self.scroll_y))
        self._resize_virtual()
        if self.follow:
            self._scroll_to_end()
        elif anchor is not None:
            self.scroll_to_line(anchor)
        self.post_message(self.Changed(self))

    def _active_filter(self) -> bool:
        return bool(self.filter_text) or self.streams != "oe"

    def _refilter(self, keep_row: float | None = None, shift: int = 0) -> None:
        anchor = self.current_match
        if anchor is None and not self.follow:
            anchor = self.line_at(int(self.scroll_y) if keep_row is None else int(keep_row))
            anchor = None if anchor is None else anchor + shift
        if not self._active_filter():
            # A filter still computing for an older choice is dropped: nothing is filtering now.
            self.workers.cancel_group(self, "log-filter")
            self.filtering = False
            self.shown_lines = None
            self._apply_rows(anchor)
            return
        self.filtering = True
        self.post_message(self.Changed(self))
        self._compute_filter(self.model, self.filter_text, self.streams, anchor)

    @work(thread=True, exclusive=True, group="log-filter")
    def _compute_filter(self, model: LogModel, text: str, streams: str, anchor: int | None) -> None:
        scanned = len(model)
        indices: array[int] = model.matching(text, streams, stop=scanned)
        if get_current_worker().is_cancelled:
            return
        self.app.call_from_thread(self._filter_done, model, text, streams, indices, scanned, anchor)

    def _filter_done(
        self, model: LogModel, text: str, streams: str, indices: array[int], scanned: int, anchor: int | None
    ) -> None:
        if model is not self.model or text != self.filter_text or streams != self.streams:
            return
        # Lines appended while the filter ran in the background.
        indices.extend(model.matching(text, streams, start=scanned))
        self.shown_lines = VisibleLines(indices)
        self._scanned = len(model)
        self.filtering = False
        self._apply_rows(anchor)

    def _apply_rows(self, anchor: int | None) -> None:
        self._invalidate()
        self._resize_virtual()
        if self.follow or anchor is None:
            self._scroll_to_end()
        else:
            self._programmatic += 1
            try:
                row = self.row_of(anchor)
                top = row if self.wrap else max(row - self.size.height // 3, 0)
                self.scroll_to(y=min(top, self.max_scroll_y), animate=False, immediate=True, force=True)
            finally:
                self._programmatic -= 1
        self.refresh()
        self.post_message(self.Changed(self))

    # ------------------------------------------------------------------ rendering

    def _invalidate(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._wrap_rows = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._wrap_rows = None
        self._style_set = None

    def _styles(self) -> LineStyles:
        """The Rich styles lines are drawn with, looked up once per style change (not per line)."""
        if self._style_set is None:
            part = self.get_component_rich_style
            self._style_set = LineStyles(
                self.rich_style,
                part("log-view--stderr", partial=True),
                part("log-view--time", partial=True),
                part("log-view--match", partial=True),
                part("log-view--current", partial=True),
            )
        return self._style_set

    def _render_parts(self, line: int) -> tuple[Strip, Strip]:
        """The prefix (gutter, time) and the text of ``line``, uncropped, cached."""
        key = (line, self._generation)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        record = self.model.line(line)
        styles = self._styles()
        base = styles.base
        prefix = Text(no_wrap=True, end="")
        if record.stream == "e":
            prefix.append("▌", styles.stderr)
        else:
            prefix.append(" ")
        if self.show_timestamps:
            prefix.append(_clock(record.ts_ms) + " ", styles.time)
        text = display_text(record.text)
        if record.stream == STEP:  # where a step starts: a heading, not output
            text = Text("▶ step ", style="bold reverse", end="", no_wrap=True) + text
            text.stylize("bold reverse")
        if self.search_text:
            self._highlight(text)
        if line == self.current_match:
            text.stylize(styles.current)
        console = self.app.console
        prefix_strip = Strip(list(Segment.apply_style(prefix.render(console), base)), prefix.cell_len)
        text_strip = Strip(list(Segment.apply_style(text.render(console), base)), text.cell_len)
        if text.cell_len > self._widest and not self.wrap:
            self._widest = text.cell_len
            self.call_later(self._resize_virtual)
        self._cache[key] = (prefix_strip, text_strip)
        return prefix_strip, text_strip

    def _highlight(self, text: Text) -> None:
        needle = self.search_text
        sensitive = needle != needle.lower()
        haystack = text.plain if sensitive else text.plain.lower()
        style = self._styles().match
        start = haystack.find(needle if sensitive else needle.lower())
        while start >= 0:
            text.stylize(style, start, start + len(needle))
            start = haystack.find(needle if sensitive else needle.lower(), start + len(needle))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self._styles().base
        if self.wrap:
            rows = self._wrapped_rows()
            strip = rows[y] if y < len(rows) else Strip.blank(width, style)
            return strip.crop_extend(0, width, style)
        scroll_x, scroll_y = self.scroll_offset
        line = self.line_at(scroll_y + y)
        if line is None:
            return Strip.blank(width, style)
        prefix, text = self._render_parts(line)
        visible = text.crop_extend(scroll_x, scroll_x + max(width - prefix.cell_length, 0), style)
        return Strip.join([prefix, visible]).crop_extend(0, width, style)

    def _wrap_line(self, line: int, width: int) -> list[Strip]:
        prefix, text = self._render_parts(line)
        room = max(width - prefix.cell_length, 1)
        length = text.cell_length
        pieces = text.divide([*range(room, length, room), length]) if length else [text]
        pad = Strip.blank(prefix.cell_length, self._styles().base)
        return [Strip.join([prefix if n == 0 else pad, piece]) for n, piece in enumerate(pieces)]

    def _wrapped_rows(self) -> list[Strip]:
        width, height = self.size.width, self.size.height
        key = (int(self.scroll_y), width, height, self._generation, self.row_count)
        if self._wrap_rows is not None and self._wrap_rows[0] == key:
            return self._wrap_rows[1]
        rows: list[Strip] = []
        row = int(self.scroll_y)
        while len(rows) < height:
            line = self.line_at(row)
            if line is None:
                break
            rows.extend(self._wrap_line(line, width))
            row += 1
        self._wrap_rows = (key, rows)
        return rows

    def _end_anchor(self) -> int:
        """In wrap mode, the first row such that the rows from it to the end fill the screen."""
        width, height = self.size.width, self.size.height
        if not width or not height:
            return max(self.row_count - 1, 0)
        used = 0
        row = self.row_count - 1
        while row > 0:
            line = self.line_at(row)
            assert line is not None
            used += len(self._wrap_line(line, width))
            if used >= height:
                return row + (1 if used > height else 0)
            row -= 1
        return 0
