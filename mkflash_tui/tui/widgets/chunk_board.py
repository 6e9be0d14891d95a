"""ChunkBoard: one panel per chunk, drawn by a single scrolling widget.

A widget per chunk costs a layout and a render each; at 500 chunks that makes the event loop stutter. This
widget draws every panel itself through the line API, only for the rows on screen. Its screen calls ``tick()`` on
a timer, which repaints only the rows of panels whose text changed since: a burst of events costs one repaint,
and a board where nothing moves costs none.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ... import format as fmt
from ...core.engine import Run
from ...core.models import ChunkState

PANEL_WIDTH = 38  # preferred panel width; the board fits as many columns as the width allows
PANEL_LINES = 3
ROW_HEIGHT = PANEL_LINES + 1  # a blank line between rows of panels
# A row whose panels only streamed tokens or counted seconds is repainted at most this often: hundreds of
# streams would otherwise redraw the whole board on every tick, between the user's keys and their repaints.
COUNTS_SECONDS = 0.5

STATE_LABEL = {
    ChunkState.QUEUED: "○ queued",
    ChunkState.RUNNING: "◐ running",
    ChunkState.RETRYING: "↻ retrying",
    ChunkState.DONE: "● done",
    ChunkState.FAILED: "✕ failed",
    ChunkState.SKIPPED: "– skipped",
    ChunkState.CANCELLED: "⊘ cancelled",
}


class ChunkBoard(ScrollView, can_focus=True):
    """A grid of chunk panels read straight from ``run.status``; ``Enter`` or a click opens a chunk."""

    COMPONENT_CLASSES = {
        "chunk-board--panel",
        "chunk-board--cursor",
        "chunk-board--queued",
        "chunk-board--running",
        "chunk-board--retrying",
        "chunk-board--done",
        "chunk-board--failed",
        "chunk-board--dim",
    }

    BINDINGS = [
        Binding("enter", "open", "Chunk details", show=False),
        Binding("left", "move(-1, 0)", show=False),
        Binding("right", "move(1, 0)", show=False),
        Binding("up", "move(0, -1)", show=False),
        Binding("down", "move(0, 1)", show=False),
        # Paging moves the cursor with the view, so Enter opens the chunk the user sees.
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home,ctrl+home", "jump(0)", show=False),
        Binding("end,ctrl+end", "jump(-1)", show=False),
        Binding("f", "next_failed", "Next failed", show=False),
    ]

    DEFAULT_CSS = """
    ChunkBoard { background: $surface; }
    ChunkBoard > .chunk-board--panel { background: $panel; color: $foreground; }
    ChunkBoard > .chunk-board--cursor { background: $primary-muted; }
    ChunkBoard > .chunk-board--queued { color: $foreground-muted; }
    ChunkBoard > .chunk-board--running { color: $primary; text-style: bold; }
    ChunkBoard > .chunk-board--retrying { color: $warning; text-style: bold; }
    ChunkBoard > .chunk-board--done { color: $success; text-style: bold; }
    ChunkBoard > .chunk-board--failed { color: $error; text-style: bold; }
    ChunkBoard > .chunk-board--dim { color: $foreground-muted; }
    """

    cursor: reactive[int] = reactive(0, layout=False)

    class Opened(Message):
        """The user asked to see one chunk in full."""

        def __init__(self, chunk_id: str) -> None:
            super().__init__()
            self.chunk_id = chunk_id

    def __init__(self, run: Run, *, kept: Callable[[str], int] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        # The cards a chunk adds to the deck now (after repeats, the gate and the user's deletions): the panels
        # add up to the bar's count.
        self.kept = kept or run.kept_of
        self.ids = [c.id for c in run.chunks]
        self._style_cache: dict[tuple[str, ChunkState, bool], tuple[Style, Style, Style]] = {}
        self._drawn: dict[int, tuple] = {}  # panel index -> what its text depended on when last drawn
        self._drawn_at: dict[int, float] = {}  # row -> when it was last repainted for a change

    def show(self, run: Run) -> None:
        """Draw another run's chunks (a shelf shows one document's at a time), the cursor on its first."""
        self.run = run
        self.ids = [c.id for c in run.chunks]
        self._drawn.clear()
        self._update_virtual_size()
        self.scroll_to(0, 0, animate=False)
        self.set_reactive(ChunkBoard.cursor, 0)
        self.refresh()

    # ------------------------------------------------------------------ geometry

    @property
    def columns(self) -> int:
        return max(1, (self.scrollable_content_region.width + 1) // (PANEL_WIDTH + 1))

    def _panel_width(self) -> int:
        width = self.scrollable_content_region.width
        if not width:  # not laid out (hidden): draw panels at their preferred width
            return PANEL_WIDTH
        columns = self.columns
        return max(10, (width - (columns - 1)) // columns)

    def _update_virtual_size(self) -> None:
        rows = -(-len(self.ids) // self.columns)
        self.virtual_size = Size(self.scrollable_content_region.width, max(0, rows * ROW_HEIGHT - 1))

    def on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()

    def on_mount(self) -> None:
        self._update_virtual_size()

    def index_at(self, x: int, y: int) -> int | None:
        """The chunk index drawn at content coordinates (x, y), if any."""
        row, line = divmod(y, ROW_HEIGHT)
        if line >= PANEL_LINES:
            return None
        column = x // (self._panel_width() + 1)
        if column >= self.columns:
            return None
        index = row * self.columns + column
        return index if index < len(self.ids) else None

    # ------------------------------------------------------------------ drawing

    def tick(self) -> None:
        """Repaint the rows of visible panels that changed since they were drawn (the screen's timer)."""
        if not self.is_mounted or not self.size.height:
            return
        columns = self.columns
        top = round(self.scroll_offset.y) // ROW_HEIGHT
        bottom = (round(self.scroll_offset.y) + self.size.height) // ROW_HEIGHT
        now = self.run.now()  # the run's clock: a test's clock decides, as it does the seconds shown
        for row in range(top, bottom + 1):
            stale = False
            for index in range(row * columns, min(len(self.ids), (row + 1) * columns)):
                drawn, signature = self._drawn.get(index), self._signature(index)
                if drawn is None or drawn[0] != signature[0]:
                    stale = True  # a new state, attempt, reason or count of cards: at once
                    break
                if drawn != signature and now - self._drawn_at.get(row, -COUNTS_SECONDS) >= COUNTS_SECONDS:
                    stale = True  # tokens streamed, seconds elapsed: a few times a second is enough
                    break
            if stale:
                self._drawn_at[row] = now
                self.refresh_lines(row * ROW_HEIGHT, PANEL_LINES)

    def _signature(self, index: int) -> tuple:
        """What a panel's text depends on: what changes it at once, then what streams (tokens, seconds)."""
        status = self.run.status[self.ids[index]]
        return ((status.state, status.attempt, status.reason, self.kept(status.chunk.id)),
                (status.tokens, _elapsed(self.run, status)))  # fmt: skip

    def render_line(self, y: int) -> Strip:
        scroll_y = self.scroll_offset.y
        y += scroll_y
        width = self.scrollable_content_region.width
        row, line = divmod(y, ROW_HEIGHT)
        if line >= PANEL_LINES:
            return Strip.blank(width, self.rich_style)
        columns, panel_width = self.columns, self._panel_width()
        segments: list[Segment] = []
        gap = Segment(" ", self.rich_style)
        for column in range(columns):
            index = row * columns + column
            if column:
                segments.append(gap)
            if index >= len(self.ids):
                segments.append(Segment(" " * panel_width, self.rich_style))
                continue
            segments.extend(self._panel_line(index, line, panel_width))
        return Strip(segments).adjust_cell_length(width, self.rich_style)

    def _styles(self, state: ChunkState, cursor: bool) -> tuple[Style, Style, Style]:
        """(base, state, dim) styles; looked up once per theme, not for every line drawn."""
        key = (self.app.theme, state, cursor)
        styles = self._style_cache.get(key)
        if styles is None:
            base = self.get_component_rich_style("chunk-board--panel")
            if cursor:
                base = base + self.get_component_rich_style("chunk-board--cursor", partial=True)
            state_style = base + self.get_component_rich_style(_state_class(state), partial=True)
            dim = base + self.get_component_rich_style("chunk-board--dim", partial=True)
            styles = self._style_cache[key] = (base, state_style, dim)
        return styles

    def notify_style_update(self) -> None:
        self._style_cache.clear()
        super().notify_style_update()

    def _panel_line(self, index: int, line: int, width: int) -> list[Segment]:
        if line == 0:
            self._drawn[index] = self._signature(index)
        status = self.run.status[self.ids[index]]
        state = status.state
        base, state_style, dim = self._styles(state, index == self.cursor and self.has_focus)
        bar = Segment("▌", state_style)
        inner = width - 2
        if line == 0:
            label = STATE_LABEL[state]
            if state in (ChunkState.RUNNING, ChunkState.RETRYING) and status.attempt > 1:
                label += f" {status.attempt}"
            left = f"{index + 1:>3} "
            elapsed = _elapsed(self.run, status)
            middle_width = max(0, inner - len(left) - len(elapsed))
            return [
                bar,
                Segment(" ", base),
                Segment(left, base + Style(bold=True)),
                Segment(fmt.fit(label, middle_width).ljust(middle_width), state_style),
                Segment(elapsed, dim),
            ]
        if line == 1:
            text = fmt.fit(status.chunk.label, inner)
            return [bar, Segment(" ", base), Segment(text.ljust(inner), base)]
        if state in (ChunkState.FAILED, ChunkState.CANCELLED):
            text, style = status.reason or state.value, state_style if state is ChunkState.FAILED else dim
        elif state is ChunkState.DONE:
            kept = self.kept(status.chunk.id)
            left = len(status.cards) - kept
            out = f" (+{left} out)" if left > 0 else ""
            text = f"{fmt.plural(kept, 'card')}{out} · {fmt.tokens(status.tokens)} tok"
            style = dim
        elif state is ChunkState.SKIPPED:
            text, style = "no cards allotted", dim
        elif state is ChunkState.QUEUED:
            text, style = f"{status.chunk.tokens} tokens in", dim
        elif status.attempt == 1 and _batched(self.run):
            text, style = "in a batch at the provider", dim  # its answer comes with the batch's (core.batch)
        else:
            text, style = f"{fmt.tokens(status.tokens)} tok streamed", dim
        return [bar, Segment(" ", base), Segment(fmt.fit(text, inner).ljust(inner), style)]

    def panel_text(self, index: int) -> str:
        """The plain text of chunk ``index``'s panel, as drawn (for tests and screen readers)."""
        width = self._panel_width()
        return "\n".join("".join(seg.text for seg in self._panel_line(index, line, width)).rstrip()
                         for line in range(PANEL_LINES))  # fmt: skip

    # ------------------------------------------------------------------ interaction

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        columns = self.columns
        row, column = divmod(new, columns)
        width = self._panel_width()
        self.scroll_to_region(Region(column * (width + 1), row * ROW_HEIGHT, width, PANEL_LINES), animate=False)

    def action_move(self, dx: int, dy: int) -> None:
        target = self.cursor + dx + dy * self.columns
        if 0 <= target < len(self.ids):
            self.cursor = target

    def action_page(self, direction: int) -> None:
        rows = max(1, self.scrollable_content_region.height // ROW_HEIGHT)
        last = len(self.ids) - 1
        target = self.cursor + direction * rows * self.columns
        if last >= 0:
            self.cursor = min(last, max(0, target))

    def action_jump(self, index: int) -> None:
        if self.ids:
            self.cursor = index % len(self.ids)

    def action_next_failed(self) -> None:
        """The cursor to the next chunk that failed or was cancelled, after the cursor (round to the start)."""
        count = len(self.ids)
        for step in range(1, count + 1):
            index = (self.cursor + step) % count
            if self.run.status[self.ids[index]].state in (ChunkState.FAILED, ChunkState.CANCELLED):
                self.cursor = index
                return
        self.app.notify("No chunk has failed.", timeout=2)

    def action_open(self) -> None:
        if self.ids:
            self.post_message(self.Opened(self.ids[self.cursor]))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = self.index_at(offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y)
        if index is not None:
            self.cursor = index
            self.post_message(self.Opened(self.ids[index]))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


def _state_class(state: ChunkState) -> str:
    if state in (ChunkState.DONE, ChunkState.SKIPPED):
        return "chunk-board--done"
    if state is ChunkState.CANCELLED:
        return "chunk-board--queued"
    return f"chunk-board--{state.value}"


def _elapsed(run: Run, status) -> str:
    if status.started_at is None:
        return ""
    running = status.state in (ChunkState.RUNNING, ChunkState.RETRYING)
    end = run.now() if running or status.finished_at is None else status.finished_at
    return f"{max(0.0, end - status.started_at):.1f}s"


def _batched(run: Run) -> bool:
    """The run sends its whole chunks through a batch engine (``--batch``, or the confirm screen's choice)."""
    caller = getattr(run, "caller", None)
    return caller is not None and hasattr(caller.transport, "deferred")
