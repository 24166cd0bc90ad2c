"""The line under the log: follow state, line counts, the active filter and search."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.widgets.log_view import STREAM_NAMES, LogView


class LogStatus(Widget):
    """Mirrors a :class:`LogView`'s state; the screen calls :meth:`show` on ``LogView.Changed``."""

    DEFAULT_CSS = """
    LogStatus {
        height: 1;
        padding: 0 1;
        background: $boost;
        color: $text-muted;
    }
    """

    text: reactive[Text] = reactive(Text)
    """What the line says (one line: changing it never changes the layout)."""

    def render(self) -> Text:
        return self.text

    def show(self, log: LogView, loading: bool = False, ended: bool = False) -> None:
        """``ended``: the run is over and its whole log is here (nothing more to follow)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if ended:
            text.append("■ run ended", style="bold")
        else:
            text.append("● following" if log.follow else "‖ paused (end resumes)", style="bold" if log.follow else "")
        total = len(log.model)
        text.append(f"  │  {total:,} line{'' if total == 1 else 's'}")
        if loading:
            text.append(" (loading older lines…)")
        if log.shown_lines is not None:
            text.append(f", {len(log.shown_lines):,} shown")
        if log.streams != "oe":
            text.append(f"  │  {STREAM_NAMES[log.streams]} only")
        if log.filtering:
            text.append("  │  filtering…")
        elif log.filter_text:
            text.append(f"  │  filter: {log.filter_text}")
        if log.search_text:
            where = f" at line {log.current_match + 1:,}" if log.current_match is not None else ""
            text.append(f"  │  search: {log.search_text}{where} (n/N)")
        flags = [name for name, on in (("times", log.show_timestamps), ("wrap", log.wrap)) if on]
        if flags:
            text.append(f"  │  {' '.join(flags)}")
        if log.message:
            text.append(f"  │  {log.message}", style="bold")
        self.text = text
