"""RunBar: the overall state of a run in two lines (title and provider; progress, cards, time, tokens, cost)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ... import format as fmt
from ...core.engine import Run
from ...core.models import ChunkState
from ...core.pricing import cost_usd


class RunBar(Widget):
    """Redrawn by its screen on a timer; reads the run directly."""

    DEFAULT_CSS = """
    RunBar { height: 2; padding: 0 1; background: $panel; }
    """

    def __init__(self, run: Run, provider: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.provider = provider
        self.finished_at: float | None = None

    def render(self) -> Text:
        run = self.run
        counts = run.counts()
        total = counts["total"]
        done = counts["done"]
        theme = self.app.current_theme
        title = run.summary.title if run.summary else run.document.title
        head = Text.assemble((title, "bold"), "  ", (self.provider, "dim"))
        if run.fatal:
            head.append("  stopped: ", style=f"bold {theme.error}")
            head.append(run.fatal, style=theme.error or "")
        elif run.cancelled:
            head.append("  cancelled", style=f"bold {theme.warning}")
        width = max(8, min(40, self.size.width // 6))
        filled = round(width * done / total) if total else width
        failed_cells = round(width * counts["failed"] / total) if total else 0
        bar = Text()
        bar.append("━" * filled, style=theme.success or "")
        bar.append("━" * failed_cells, style=theme.error or "")
        bar.append("━" * max(0, width - filled - failed_cells), style="dim")
        cards = len(run.cards())
        elapsed = self.finished_at if self.finished_at is not None else run.now()
        usage = run.stats.usage
        line = Text.assemble(bar, f" {done}/{total} chunks")
        if counts["failed"]:
            line.append(f" · {counts['failed']} failed", style=f"bold {theme.error}")
        running = sum(1 for s in run.status.values() if s.state in (ChunkState.RUNNING, ChunkState.RETRYING))
        line.append(f" · {running}/{run.limiter.limit} in flight", style="dim")
        line.append(f" · {fmt.plural(cards, 'card')} · {fmt.seconds(elapsed)}")
        streamed = usage.completion_tokens or sum(s.tokens for s in run.status.values())
        line.append(f" · {fmt.tokens(usage.prompt_tokens)}↑ {fmt.tokens(streamed)}↓ tok")
        if run.provider.online:
            line.append(f" · {fmt.usd(cost_usd(run.provider.model, usage.prompt_tokens, usage.completion_tokens))}")
        head.truncate(self.size.width, overflow="ellipsis")
        line.truncate(self.size.width, overflow="ellipsis")
        return Text("\n").join([head, line])
