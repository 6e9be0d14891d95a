"""RunBar: the overall state of a run in two lines (title and provider; progress, cards, time, tokens, cost)."""

from __future__ import annotations

from collections.abc import Callable

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from ... import format as fmt
from ...core.engine import Run
from ...core.pricing import model_info, spent_usd
from ...core.providers.presets import is_local_url
from ...core.text import strip_controls


class RunBar(Widget):
    """Redrawn by its screen on a timer; reads the run directly.

    The clock counts only while chunks are being worked on: ``start()`` when work is scheduled, ``stop()``
    when it is all over (a retry later adds its own time, not the idle time in between).
    """

    DEFAULT_CSS = """
    RunBar { height: 2; padding: 0 1; background: $panel; }
    """

    def __init__(self, run: Run, provider: str, *, cards: Callable[[], int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.provider = provider
        self.cards = cards  # the cards an export would write now (the review's count, not the run's)
        self._busy_since: float | None = None
        self._busy_total = 0.0
        self._shown = ""  # the text last painted

    def start(self) -> None:
        if self._busy_since is None:
            self._busy_since = self.run.now()

    def stop(self) -> None:
        if self._busy_since is not None:
            self._busy_total += self.run.now() - self._busy_since
            self._busy_since = None

    def tick(self) -> None:
        """Repaint if what the bar says changed since it was painted (the screen's timer)."""
        if self.size.width and self._text().plain != self._shown:
            self.refresh()

    @property
    def elapsed(self) -> float:
        running = self.run.now() - self._busy_since if self._busy_since is not None else 0.0
        return self._busy_total + running

    def render(self) -> Text:
        text = self._text()
        self._shown = text.plain
        return text

    def _text(self) -> Text:
        run = self.run
        theme = self.app.current_theme
        head = Text.assemble((strip_controls(run.title), "bold"), "  ", (strip_controls(self.provider), "dim"))
        if run.fatal:
            head.append("  stopped: ", style=f"bold {theme.error}")
            head.append(run.fatal, style=theme.error or "")
        elif run.halted:
            head.append("  not saving: ", style=f"bold {theme.error}")
            head.append(strip_controls(run.halted), style=theme.error or "")
        elif run.cancelled:
            head.append("  cancelled", style=f"bold {theme.warning}")
        head.truncate(self.size.width, overflow="ellipsis")
        return Text("\n").join([head, self._status_line(self.size.width)])

    def _status_line(self, width: int) -> Text:
        """Progress, cards, time, tokens and cost, in long forms when they fit and short ones when they don't."""
        run = self.run
        theme = self.app.current_theme
        counts = run.counts()
        total, done = counts["total"], counts["done"]
        usage = run.stats.usage
        streamed = usage.completion_tokens or sum(s.tokens for s in run.status.values())
        in_flight, limit = run.limiter.in_use, run.limiter.limit
        base_url = getattr(run.provider, "base_url", None)
        # "free" only for a model with no price on a server of one's own: a priced model costs from its first token.
        free = is_local_url(base_url) and model_info(run.provider.model) is None
        price = fmt.usd(spent_usd(run.provider.model, usage, run.stats.batch_usage, base_url), free=free)
        error, warning = f"bold {theme.error}", f"bold {theme.warning}"
        online = run.provider.online
        cards = self.cards()
        # (long form, short form, style); a part whose long form is "" is left out. Short forms keep the words.
        parts = [
            (f" {done}/{total} chunks", f" {done}/{total}", ""),
            (f" · {counts['failed']} failed" if counts["failed"] else "", f" · {counts['failed']} failed", error),
            (f" · {counts['cancelled']} cancelled" if counts["cancelled"] else "",
             f" · {counts['cancelled']} cancelled", warning),
            ((f" · {in_flight}/{limit} in flight" if in_flight <= limit else
              f" · {in_flight} in flight (limit {limit})") if online else "", f" · {in_flight}/{limit} calls", "dim"),
            (f" · {fmt.plural(cards, 'card')}", f" · {fmt.plural(cards, 'card')}", ""),
            (f" · {fmt.seconds(self.elapsed)}", f" · {fmt.seconds(self.elapsed)}", ""),
            (f" · {fmt.tokens(usage.prompt_tokens)}↑ {fmt.tokens(streamed)}↓ tok" if online else "",
             f" · {fmt.tokens(usage.prompt_tokens)}↑{fmt.tokens(streamed)}↓", ""),
            (f" · {price}" if online else "", f" · {price}", ""),
        ]  # fmt: skip
        parts = [p for p in parts if p[0]]
        short = [p for p in parts if p[1]]
        long_text = "".join(p[0] for p in parts)
        bar_width = max(8, min(40, width // 6))
        if cell_len(long_text) + bar_width > width:
            use = [(text, style) for _, text, style in short]
            bar_width = max(4, min(bar_width, width - cell_len("".join(s for s, _ in use))))
        else:
            use = [(long, style) for long, _, style in parts]
        line = self._bar(bar_width, counts)
        for text, style in use:
            line.append(text, style=style)
        line.truncate(width, overflow="ellipsis")
        return line

    def _bar(self, width: int, counts: dict[str, int]) -> Text:
        theme = self.app.current_theme
        total = counts["total"]
        filled = round(width * counts["done"] / total) if total else width
        failed_cells = round(width * (counts["failed"] + counts["cancelled"]) / total) if total else 0
        bar = Text()
        bar.append("━" * filled, style=theme.success or "")
        bar.append("━" * failed_cells, style=theme.error or "")
        bar.append("━" * max(0, width - filled - failed_cells), style="dim")
        return bar
