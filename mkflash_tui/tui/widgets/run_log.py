"""RunLog: the START/END log, which keeps following new lines however the terminal is resized."""

from __future__ import annotations

from textual import events
from textual.widgets import Log

from ...core.text import strip_controls


class RunLog(Log):
    """A Log that follows its end unless the user scrolled up.

    A plain Log follows only while it is scrolled to the end; shrinking the terminal leaves it short of the end
    (its height drops, its scroll position stays), so it silently stopped following. Here following is a state
    that only the user's own scrolling changes.
    """

    following = True

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.is_mounted and self.size.height:
            self.following = new >= self.max_scroll_y

    def on_resize(self, event: events.Resize) -> None:
        if self.following:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)

    def write_lines(self, lines, scroll_end: bool | None = None):  # type: ignore[override]
        lines = [strip_controls(line) for line in lines]  # labels and reasons come from documents and servers
        return super().write_lines(lines, scroll_end=self.following if scroll_end is None else scroll_end)
