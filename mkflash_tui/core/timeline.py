"""A run's timeline, drawn from its events alone: every call as a bar on one time axis — the summary, each
chunk's attempts, repairs, parts, the waits between them and the answers found in the store — with the calls in
flight over it and the ideal (one summary, then one wave of calls at the concurrency) marked.

``Timeline`` collects the run's ``Span`` events; ``svg()`` draws them, one lane per chunk; ``html()`` puts the
same picture in one self-contained page (no network; each bar's tooltip says what it was). While the run goes on it
also knows the calls in flight (``running``), so the app's Timeline view draws them growing.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .models import (
    ChunkFailed,
    ChunkFinished,
    ChunkStarted,
    Event,
    LimitChanged,
    Span,
    SpanKind,
    SummaryFailed,
    SummaryFinished,
    SummaryStarted,
)

WIDTH = 1000  # the plot's width, in px
LEFT = 90  # room for the lane names
LANE = 10  # one lane's height at most (fewer px when there are many)
MAX_PLOT = 1200  # the lanes' height at most
NAME_CHARS = 48  # of a lane's name, at most (a shelf's: the document's, then summary or chunk N)
COLOURS = {"answered": "#3a9d5d", "failed": "#d05a4f", "repair": "#d9a13b", "wait": "#c8c8cc", "cache": "#5b8fd6",
           "part": "none"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Bar:
    lane: int  # -1: the summary; else the chunk's index
    kind: str  # attempt, repair, wait, part, cache
    start: float
    end: float
    detail: str
    attempt: int
    document: int = 0  # on a shelf's picture: which document's run

    @property
    def outcome(self) -> str:
        """answered, failed, repair (a repair that failed), running, or the kind: wait, part, cache."""
        if self.kind in ("attempt", "repair"):
            return "answered" if self.detail == "answered" else ("repair" if self.kind == "repair" else "failed")
        return self.kind

    def describe(self) -> str:
        where = "summary" if self.lane < 0 else f"chunk {self.lane + 1}"
        what = f"{self.kind} {self.attempt}" if self.attempt else self.kind
        return f"{where}: {what}, {self.detail or '—'} ({self.start:.2f}–{self.end:.2f} s)"


class Timeline:
    """The spans of one run (subscribe ``add`` to it), and the limit of calls in flight as it changed; or, from
    ``shelf()``, a picture of several runs on one time axis."""

    def __init__(self, concurrency: int) -> None:
        self.documents: list[str] = []  # a shelf's picture: the name of each document, its lanes named by it
        self.bars: list[Bar] = []
        self.limits: list[tuple[float, int]] = [(0.0, concurrency)]
        self.by_lane: dict[int, list[Bar]] = {}
        self.running: dict[int, tuple[float, int]] = {}  # lane -> (start, attempt) of its call in flight now
        self.last = 0.0  # the time of the latest event
        self.version = 0  # counts the events that changed the picture

    def add(self, event: Event) -> None:
        if isinstance(event, Span):
            bar = Bar(event.index, str(event.kind), event.start, event.at, event.detail, event.attempt)
            self.bars.append(bar)
            self.by_lane.setdefault(bar.lane, []).append(bar)
            if event.kind in (SpanKind.ATTEMPT, SpanKind.REPAIR):
                self.running.pop(event.index, None)
        elif isinstance(event, ChunkStarted):
            self.running[event.index] = (event.at, event.attempt)
        elif isinstance(event, SummaryStarted):
            self.running[-1] = (event.at, 1)
        elif isinstance(event, ChunkFinished | ChunkFailed):
            self.running.pop(event.index, None)
        elif isinstance(event, SummaryFinished | SummaryFailed):
            self.running.pop(-1, None)
        elif isinstance(event, LimitChanged):
            self.limits.append((event.at, event.limit))
        else:
            return
        self.last = max(self.last, event.at)
        self.version += 1

    @classmethod
    def shelf(cls, parts: Sequence[tuple[str, float, Timeline]], concurrency: int) -> Timeline:
        """One picture of a shelf's runs, which share one limiter: each part is a document's name, when its run
        started (seconds after the first's) and its timeline. A picture only: for ``svg()`` and ``html()``."""
        merged = cls(concurrency)
        merged.documents = [name for name, _, _ in parts]
        limits = []
        for document, (_, offset, part) in enumerate(parts):
            merged.bars += [dataclasses.replace(bar, document=document, start=bar.start + offset,
                                                end=bar.end + offset) for bar in part.bars]  # fmt: skip
            limits += [(at + offset, limit) for at, limit in part.limits[1:]]
            merged.last = max(merged.last, part.last + offset)
        merged.limits += sorted(limits)
        return merged

    def name(self, bar: Bar) -> str:
        """The lane's name: summary or chunk N, after its document's on a shelf's picture."""
        where = "summary" if bar.lane < 0 else f"chunk {bar.lane + 1}"
        return f"{self.documents[bar.document]}: {where}" if self.documents else where

    def lane(self, lane: int, now: float) -> list[Bar]:
        """One lane's bars, with its call in flight drawn up to ``now``."""
        bars = self.by_lane.get(lane, [])
        if lane in self.running:
            start, attempt = self.running[lane]
            bars = [*bars, Bar(lane, "running", start, max(start, now), "in flight", attempt)]
        return bars

    def end(self, now: float | None = None) -> float:
        """Where the picture ends: the last bar's end, or ``now`` while calls are in flight."""
        end = max((b.end for b in self.bars), default=0.0)
        return max(end, now) if now is not None and self.running else max(end, self.last)

    def in_flight(self, now: float | None = None) -> list[tuple[float, int]]:
        """(time, calls in flight) at every change; with ``now``, the calls in flight now count too."""
        changes: list[tuple[float, int]] = []
        for bar in self.bars:
            if bar.kind in (SpanKind.ATTEMPT, SpanKind.REPAIR):
                changes += [(bar.start, 1), (bar.end, -1)]
        if now is not None:
            changes += [(start, 1) for start, _ in self.running.values()]
        out, count = [], 0
        for at, step in sorted(changes):
            count += step
            out.append((at, count))
        return out

    def ideal(self) -> float | None:
        """When the run would end with one summary and then every chunk's call in one wave (waves of the
        concurrency), each call as long as the median answered one; None without an answered chunk call."""
        calls = sorted(b.end - b.start for b in self.bars if b.lane >= 0 and b.outcome == "answered")
        if not calls:
            return None
        summary = max((b.end for b in self.bars if b.lane < 0), default=0.0)  # a shelf's: one wave of them
        chunks = len({(b.document, b.lane) for b in self.bars if b.lane >= 0})
        waves = math.ceil(chunks / max(1, self.limits[0][1]))
        return summary + waves * calls[len(calls) // 2]

    def svg(self, title: str = "") -> str:
        lanes = sorted({(b.document, b.lane) for b in self.bars})
        row = {lane: i for i, lane in enumerate(lanes)}
        names = {(b.document, b.lane): _shorten(self.name(b), NAME_CHARS) for b in self.bars}
        left = max(LEFT, 12 + 6 * max((len(n) for n in names.values()), default=0))  # about 6 px a character
        lane_px = max(2, min(LANE, MAX_PLOT // max(1, len(lanes))))
        end = max((b.end for b in self.bars), default=1.0) or 1.0
        scale = WIDTH / end
        top, plot = 30, lane_px * len(lanes)
        flight_top = top + plot + 20
        height = flight_top + 60 + 30
        chunks = sum(lane >= 0 for _, lane in lanes)
        documents = f"{len(self.documents)} documents, " if self.documents else ""
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + WIDTH + 20}" height="{height}" '
               f'font-family="sans-serif" font-size="10" data-seconds="{end:.3f}">',
               f"<title>{html.escape(title or 'mkflash-tui run')}</title>",
               f'<text x="{left}" y="16" font-size="12">{html.escape(title)} — {documents}{chunks} chunks, '
               f"{end:.1f} s</text>"]  # fmt: skip
        for (document, lane), i in row.items():
            if lane_px >= 8 or lane < 0 or i % max(1, 10 // lane_px) == 0:
                y = top + i * lane_px + lane_px - 1
                out.append(f'<text x="{left - 6}" y="{y}" text-anchor="end">'
                           f"{html.escape(names[(document, lane)])}</text>")  # fmt: skip
        in_document = (lambda b: f' data-document="{b.document}"') if self.documents else (lambda b: "")
        for bar in sorted(self.bars, key=lambda b: b.kind != "part"):  # parts behind the attempts in them
            x, w = left + bar.start * scale, max(0.5, (bar.end - bar.start) * scale)
            y = top + row[(bar.document, bar.lane)] * lane_px
            fill = COLOURS[bar.outcome]
            stroke = ' stroke="#666" stroke-dasharray="2,1"' if bar.kind == "part" else ""
            about = f"{self.documents[bar.document]}: {bar.describe()}" if self.documents else bar.describe()
            out.append(f'<rect class="bar" x="{x:.2f}" y="{y + 1}" width="{w:.2f}" height="{max(1, lane_px - 2)}" '
                       f'fill="{fill}"{stroke} data-kind="{bar.kind}" data-lane="{bar.lane}"{in_document(bar)} '
                       f'data-attempt="{bar.attempt}" data-start="{bar.start:.4f}" data-end="{bar.end:.4f}" '
                       f'data-outcome="{bar.outcome}"><title>{html.escape(about)}</title></rect>')  # fmt: skip
        for second in _ticks(end):
            x = left + second * scale
            out.append(f'<line x1="{x:.2f}" y1="{top - 4}" x2="{x:.2f}" y2="{flight_top + 60}" stroke="#eee"/>')
            out.append(f'<text x="{x:.2f}" y="{flight_top + 74}" text-anchor="middle">{second:g} s</text>')
        ideal = self.ideal()
        if ideal is not None:
            x = left + min(ideal, end) * scale
            out.append(f'<line class="ideal" x1="{x:.2f}" y1="{top - 6}" x2="{x:.2f}" y2="{flight_top + 60}" '
                       f'stroke="#7a5cc4" stroke-dasharray="4,3" data-seconds="{ideal:.3f}"><title>the ideal: one '
                       f"summary, then one wave at the concurrency ({ideal:.2f} s)</title></line>")  # fmt: skip
        flight = self.in_flight()
        peak = max([n for _, n in flight] + [limit for _, limit in self.limits] + [1])
        points, before = [f"{left},{flight_top + 60}"], 0
        for at, now in flight:  # a step at every change
            x = left + at * scale
            points += [f"{x:.2f},{flight_top + 60 - 60 * before / peak:.2f}",
                       f"{x:.2f},{flight_top + 60 - 60 * now / peak:.2f}"]  # fmt: skip
            before = now
        out.append(f'<polyline class="in-flight" points="{" ".join(points)}" fill="none" stroke="#333"/>')
        limit_points = []
        for i, (at, limit) in enumerate(self.limits):
            until = self.limits[i + 1][0] if i + 1 < len(self.limits) else end
            y = flight_top + 60 - 60 * limit / peak
            limit_points += [f"{left + at * scale:.2f},{y:.2f}", f"{left + until * scale:.2f},{y:.2f}"]
        out.append(f'<polyline class="limit" points="{" ".join(limit_points)}" fill="none" stroke="#d05a4f" '
                   'stroke-dasharray="3,2"/>')  # fmt: skip
        out.append(f'<text x="{left - 6}" y="{flight_top + 30}" text-anchor="end">in flight</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def html(self, title: str = "") -> str:
        """The picture in one page of its own: nothing is loaded from anywhere."""
        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title or 'mkflash-tui run')}</title></head>\n<body>\n{self.svg(title)}"
                "<p>Green: answered; red: failed; amber: a repair; grey: a wait (Retry-After, backoff, the "
                "throttle, the server's queue); blue: answered from the store; dashed: a chunk's parts; the "
                "violet line: the ideal. Hover a bar for what it was.</p>\n</body></html>\n")  # fmt: skip


def _shorten(text: str, most: int) -> str:
    """``text``, or its end after an ellipsis when longer than ``most`` characters (a path's end says most)."""
    return text if len(text) <= most else "…" + text[-(most - 1) :]


def _ticks(end: float) -> list[float]:
    step = 10 ** math.floor(math.log10(max(end, 1e-3) / 5))
    for factor in (1, 2, 5, 10):
        if end / (step * factor) <= 10:
            step *= factor
            break
    return [round(i * step, 6) for i in range(int(end / step) + 1)]
