"""TimelineView: every call of the run as a bar on one time axis, drawn live (the app's third view).

One lane per chunk (the summary first), a column per slice of time: each cell shows what the lane's calls did
then — answered, failed, a repair, a wait (Retry-After, backoff, the throttle, the server's queue), answered from
the store, a part's span, or a call still in flight — with the calls in flight and the limit charted under the
lanes and the ideal (one summary, then one wave at the concurrency) marked. It reads ``core.timeline.Timeline``,
which the run's events fill, and draws only the rows on screen, through the line API.

While calls are in flight the picture grows with the run's clock; it is repainted at most every
``LIVE_SECONDS`` of it (keys repaint at once), so hundreds of streams cost a few repaints a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from ...core.engine import Run
from ...core.timeline import Bar, Timeline

LIVE_SECONDS = 0.5  # of the run's clock, between repaints while only the calls in flight grow
HEADER = 1  # the time axis
FOOTER = 1  # the legend and the scale
MIN_COLUMNS = 10

# What a cell shows when several bars share it: the highest rank.
RANK = {"part": 1, "running": 2, "wait": 3, "answered": 4, "cache": 4, "queue": 5, "repair": 6, "failed": 7}
GLYPH = {"part": "─", "running": "▓", "wait": "░", "queue": "░", "answered": "█", "cache": "▪", "repair": "█",
         "failed": "✕"}  # fmt: skip
LEGEND = [("answered", "answered"), ("failed", "failed"), ("repair", "repair"), ("wait", "wait"),
          ("cache", "from the store"), ("running", "in flight"), ("part", "part")]  # fmt: skip
EIGHTHS = " ▁▂▃▄▅▆▇█"


def cell_kind(bar: Bar) -> str:
    """The key of ``RANK`` and ``GLYPH`` a bar is drawn as."""
    if bar.kind == "repair":
        return "repair" if bar.detail == "answered" else "failed"
    if bar.kind == "wait" and bar.detail == "queue":
        return "queue"  # inside its attempt: the time the server kept it queued
    return bar.outcome


@dataclass(slots=True)
class Frame:
    """What every row of one repaint shares."""

    start: float  # the time at the first column
    step: float  # seconds a column
    columns: int
    label: int  # the lane names' width
    now: float | None  # the run's clock while calls are in flight
    ideal: int | None  # the ideal's column
    chart: list[Strip]
    styles: dict[str, Style]


class TimelineView(Widget, can_focus=True):
    """The run's calls on a time axis: ↑↓ choose a lane, + and − zoom, ←→ pan, 0 fits the run, Enter opens."""

    COMPONENT_CLASSES = {
        "timeline--answered",
        "timeline--failed",
        "timeline--repair",
        "timeline--wait",
        "timeline--cache",
        "timeline--running",
        "timeline--part",
        "timeline--ideal",
        "timeline--limit",
        "timeline--flight",
        "timeline--axis",
        "timeline--cursor",
    }

    BINDINGS = [
        Binding("enter", "open", "Chunk details", show=False),
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home,ctrl+home", "jump(0)", show=False),
        Binding("end,ctrl+end", "jump(-1)", show=False),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", key_display="+",
                tooltip="half the time a column (the view's middle stays)"),
        Binding("minus", "zoom(2)", "Zoom out", key_display="−", tooltip="twice the time a column"),
        Binding("left", "pan(-1)", show=False),
        Binding("right", "pan(1)", show=False),
        Binding("0", "fit", "Fit", tooltip="the whole run in the width, following it live"),
    ]  # fmt: skip

    DEFAULT_CSS = """
    TimelineView { height: 1fr; background: $surface; }
    TimelineView > .timeline--answered { color: $success; }
    TimelineView > .timeline--failed { color: $error; text-style: bold; }
    TimelineView > .timeline--repair { color: $warning; }
    TimelineView > .timeline--wait { color: $foreground-muted; }
    TimelineView > .timeline--cache { color: $secondary; }
    TimelineView > .timeline--running { color: $primary; }
    TimelineView > .timeline--part { color: $foreground-muted; }
    TimelineView > .timeline--ideal { color: $accent; text-style: bold; }
    TimelineView > .timeline--limit { color: $error; }
    TimelineView > .timeline--flight { color: $foreground; }
    TimelineView > .timeline--axis { color: $foreground-muted; }
    TimelineView > .timeline--cursor { background: $primary-muted; }
    """

    class Opened(Message):
        """The user asked to see one chunk of ``run`` in full."""

        def __init__(self, run: Run, chunk_id: str) -> None:
            super().__init__()
            self.run = run
            self.chunk_id = chunk_id

    def __init__(self, run: Run, timeline: Timeline, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.timeline = timeline
        self.cursor = 0  # the lane chosen: 0 the summary, i + 1 chunk i
        self.top = 0  # the first lane on screen
        self.step: float | None = None  # seconds a column; None: the whole run fits the width
        self.start = 0.0  # the time at the first column, when zoomed
        self._frame: Frame | None = None
        self._drawn: tuple[int, bool] | None = None  # (timeline version, calls in flight) when last repainted
        self._drawn_at = -math.inf

    def show(self, run: Run, timeline: Timeline) -> None:
        """Draw another run's calls (a shelf shows one document's at a time)."""
        self.run, self.timeline = run, timeline
        self.cursor = self.top = 0
        self.step, self.start = None, 0.0
        self._repaint()

    # ------------------------------------------------------------------ geometry

    @property
    def lanes(self) -> int:
        return len(self.run.chunks) + 1

    def chart_rows(self) -> int:
        return 3 if self.size.height >= 14 else 1

    def lane_rows(self) -> int:
        return max(1, self.size.height - HEADER - self.chart_rows() - FOOTER)

    def lane_of_row(self, y: int) -> int | None:
        """The lane drawn on row ``y`` (-1: the summary), or None for the axis, the chart and the legend."""
        row = y - HEADER
        if 0 <= row < self.lane_rows() and self.top + row < self.lanes:
            return self.top + row - 1
        return None

    # ------------------------------------------------------------------ repainting

    def tick(self) -> None:
        """Called by the screen's timer while this view is shown: repaint when the picture changed."""
        timeline = self.timeline
        live = bool(timeline.running)
        now = self.run.now()
        if (timeline.version, live) == self._drawn and not live:
            return
        if live and now - self._drawn_at < LIVE_SECONDS:
            return
        self._repaint()

    def _repaint(self) -> None:
        self._drawn = (self.timeline.version, bool(self.timeline.running))
        self._drawn_at = self.run.now()
        self.refresh()

    def render_lines(self, crop):  # one frame's shared work, then every row of it
        self._frame = self._make_frame()
        return super().render_lines(crop)

    def _make_frame(self) -> Frame:
        timeline = self.timeline
        now = self.run.now() if timeline.running else None
        label = max(11, len(f"chunk {self.lanes - 1}") + 1)
        columns = max(MIN_COLUMNS, self.size.width - label)
        end = max(timeline.end(now), 0.5)
        if self.step is None:
            start, step = 0.0, end * 1.02 / columns  # a little room after the last bar
        else:
            step = self.step
            start = min(self.start, max(0.0, end - step * columns / 2))
            self.start = start
        styles = {name: self.get_component_rich_style(f"timeline--{name}")
                  for name in ("answered", "failed", "repair", "wait", "cache", "running", "part", "ideal", "limit",
                               "flight", "axis", "cursor")}  # fmt: skip
        styles["queue"] = styles["wait"]
        ideal = timeline.ideal()
        ideal_column = int((ideal - start) / step) if ideal is not None else None
        if ideal_column is not None and not 0 <= ideal_column < columns:
            ideal_column = None
        frame = Frame(start, step, columns, label, now, ideal_column, [], styles)
        frame.chart = self._chart(frame)
        return frame

    def render_line(self, y: int) -> Strip:
        frame = self._frame or self._make_frame()
        width = self.size.width
        base = self.rich_style
        if y < HEADER:
            strip = self._axis(frame)
        elif (lane := self.lane_of_row(y)) is not None:
            strip = self._lane(frame, lane)
        elif HEADER + self.lane_rows() <= y < self.size.height - FOOTER:
            row = y - HEADER - self.lane_rows()
            strip = frame.chart[row] if row < len(frame.chart) else Strip.blank(width)
        elif y == self.size.height - FOOTER:
            strip = self._legend(frame)
        else:
            strip = Strip.blank(width)
        return strip.adjust_cell_length(width, base).apply_style(base)

    def cells(self, lane: int, frame: Frame | None = None) -> list[str | None]:
        """What each column of ``lane`` shows (a key of ``GLYPH``; None: nothing then)."""
        frame = frame or self._make_frame()
        kinds: list[str | None] = [None] * frame.columns
        for bar in self.timeline.lane(lane, frame.now if frame.now is not None else 0.0):
            first = int((bar.start - frame.start) / frame.step)
            last = max(first + 1, math.ceil((bar.end - frame.start) / frame.step))
            kind = cell_kind(bar)
            rank = RANK[kind]
            for column in range(max(0, first), min(frame.columns, last)):
                shown = kinds[column]
                if shown is None or RANK[shown] < rank:
                    kinds[column] = kind
        return kinds

    def _lane(self, frame: Frame, lane: int) -> Strip:
        kinds = self.cells(lane, frame)
        chosen = lane + 1 == self.cursor
        # The chosen lane's background only: its bars keep their colours.
        cursor = Style(bgcolor=frame.styles["cursor"].bgcolor) if chosen else Style()
        name = "summary" if lane < 0 else f"chunk {lane + 1}"
        segments = [Segment(f"{name:<{frame.label - 1}} ", cursor + (Style(bold=True) if chosen else Style()))]
        column = 0
        while column < frame.columns:
            kind = kinds[column]
            run = column + 1
            while run < frame.columns and kinds[run] == kind and run != frame.ideal:
                run += 1
            if kind is None:
                if column == frame.ideal:
                    segments.append(Segment("┊", frame.styles["ideal"] + cursor))
                    run = column + 1
                else:
                    segments.append(Segment(" " * (run - column), cursor))
            else:
                segments.append(Segment(GLYPH[kind] * (run - column), frame.styles[kind] + cursor))
            column = run
        return Strip(segments)

    def _axis(self, frame: Frame) -> Strip:
        cells = [" "] * frame.columns
        span = frame.step * frame.columns
        tick = _tick_step(span, frame.columns)
        first = math.ceil(frame.start / tick - 1e-9)
        for i in range(first, first + int(span / tick) + 2):
            at = i * tick
            column = round((at - frame.start) / frame.step)
            text = f"╵{_seconds(at)}"
            free = cells[column : column + len(text) + 1]
            if column >= 0 and column + len(text) <= frame.columns and all(c == " " for c in free):
                cells[column : column + len(text)] = text
        segments = [Segment(f"{'seconds':<{frame.label}}", frame.styles["axis"])]
        if frame.ideal is not None:
            cells[frame.ideal] = "▼"
            before, after = "".join(cells[: frame.ideal]), "".join(cells[frame.ideal + 1 :])
            segments += [Segment(before, frame.styles["axis"]), Segment("▼", frame.styles["ideal"]),
                         Segment(after, frame.styles["axis"])]  # fmt: skip
        else:
            segments.append(Segment("".join(cells), frame.styles["axis"]))
        return Strip(segments)

    def _chart(self, frame: Frame) -> list[Strip]:
        """The calls in flight (the most in each column) under the limit, in ``chart_rows`` rows of eighths."""
        rows = self.chart_rows()
        flight = self.timeline.in_flight(frame.now)
        peaks = [0] * frame.columns
        value, i = 0, 0
        while i < len(flight) and flight[i][0] < frame.start:
            value = flight[i][1]
            i += 1
        for column in range(frame.columns):
            stop = frame.start + (column + 1) * frame.step
            peak = value
            while i < len(flight) and flight[i][0] < stop:
                value = flight[i][1]
                peak = max(peak, value)
                i += 1
            peaks[column] = peak
        limits = self.timeline.limits
        limit_of = []
        j = 0
        for column in range(frame.columns):
            at = frame.start + column * frame.step
            while j + 1 < len(limits) and limits[j + 1][0] <= at:
                j += 1
            limit_of.append(limits[j][1])
        # No more calls than lanes can be in flight: a limit far above that would flatten the chart to a line.
        top = max([*peaks, *(min(limit, self.lanes) for limit in limit_of), 1])
        strips = []
        peak = max(peaks)
        labels = ["in flight", f"peak {peak}", f"limit {limit_of[-1]}"] if rows >= 3 else [f"in flight ≤{peak}"]
        for row in range(rows):
            floor = (rows - 1 - row) * 8  # eighths below this row
            segments = [Segment(f"{labels[row] if row < len(labels) else '':<{frame.label}}"[: frame.label],
                                frame.styles["axis"])]  # fmt: skip
            for column in range(frame.columns):
                eighths = round(peaks[column] / top * rows * 8) - floor
                limit = limit_of[column] / top * rows * 8 - floor
                if eighths > 0:
                    segments.append(Segment(EIGHTHS[min(8, eighths)], frame.styles["flight"]))
                elif 0 < limit <= 8:
                    segments.append(Segment("╌", frame.styles["limit"]))
                else:
                    segments.append(Segment(" "))
            strips.append(Strip(Segment.simplify(segments)))
        return strips

    def _legend(self, frame: Frame) -> Strip:
        """The scale first (it changes with the keys), then what each mark means."""
        zoomed = "" if self.step is None else " (zoomed: 0 fits)"
        segments = [Segment(f"{_seconds(frame.start)}–{_seconds(frame.start + frame.step * frame.columns)}, "
                            f"{frame.step:.2g} s a column{zoomed}   ", frame.styles["axis"])]  # fmt: skip
        ideal = self.timeline.ideal()
        if ideal is not None:
            segments += [Segment("┊", frame.styles["ideal"]), Segment(f" ideal {_seconds(ideal)}  ")]
        room = self.size.width - sum(len(segment.text) for segment in segments)
        for kind, words in LEGEND:  # as many as fit, each whole
            room -= len(words) + 4  # the mark, a space, the words, two spaces
            if room < 0:
                break
            segments += [Segment(GLYPH[kind], frame.styles[kind]), Segment(f" {words}  ")]
        return Strip(segments)

    # ------------------------------------------------------------------ keys and the mouse

    def _follow(self) -> None:
        rows = self.lane_rows()
        self.cursor = max(0, min(self.cursor, self.lanes - 1))
        if self.cursor < self.top:
            self.top = self.cursor
        elif self.cursor >= self.top + rows:
            self.top = self.cursor - rows + 1
        self.top = max(0, min(self.top, max(0, self.lanes - rows)))
        self._repaint()

    def action_move(self, delta: int) -> None:
        self.cursor += delta
        self._follow()

    def action_page(self, direction: int) -> None:
        rows = self.lane_rows()
        self.cursor += direction * rows
        self.top += direction * rows
        self._follow()

    def action_jump(self, where: int) -> None:
        self.cursor = 0 if where == 0 else self.lanes - 1
        self._follow()

    def action_zoom(self, factor: float) -> None:
        frame = self._frame or self._make_frame()
        middle = frame.start + frame.step * frame.columns / 2
        step = frame.step * factor
        end = max(self.timeline.end(frame.now), 0.5)
        if step * frame.columns >= end * 1.02:  # zoomed out past the whole run: fit it
            self.action_fit()
            return
        self.step = max(step, 0.001)
        self.start = max(0.0, middle - self.step * frame.columns / 2)
        self._repaint()

    def action_pan(self, direction: int) -> None:
        if self.step is None:
            self.app.bell()  # the whole run is in view already
            return
        frame = self._frame or self._make_frame()
        self.start = max(0.0, self.start + direction * frame.step * frame.columns / 4)
        self._repaint()

    def action_fit(self) -> None:
        self.step, self.start = None, 0.0
        self._repaint()

    def action_open(self) -> None:
        if self.cursor == 0:
            self.app.notify("The summary's call: its time is the summary lane; its text is the run's title.",
                            timeout=3)  # fmt: skip
            return
        self.post_message(self.Opened(self.run, self.run.chunks[self.cursor - 1].id))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.top = min(self.top + 3, max(0, self.lanes - self.lane_rows()))
        self._repaint()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.top = max(0, self.top - 3)
        self._repaint()

    def on_click(self, event: events.Click) -> None:
        lane = self.lane_of_row(event.y)
        if lane is not None:
            self.cursor = lane + 1
            self._follow()
            if lane >= 0:
                self.action_open()

    def on_resize(self) -> None:
        self._follow()


def _tick_step(span: float, columns: int) -> float:
    """A round number of seconds between labels, about every 12 columns or more."""
    most = max(1, columns // 12)
    step = 10 ** math.floor(math.log10(max(span, 1e-3) / most))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= most:
            return step * factor
    return step * 10


def _seconds(at: float) -> str:
    return f"{at:.0f} s" if at >= 10 or at == int(at) else f"{at:.1f} s" if at >= 0.1 else f"{at:.2f} s"
