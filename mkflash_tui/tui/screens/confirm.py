"""ConfirmScreen: what a run on a paid provider will send and cost, before anything is sent."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from ... import format as fmt
from ...config import BATCH_PRESETS
from ...core import fitting
from ...core.prompts import DEFAULT_STYLE
from ...core.providers.presets import is_local_url
from ...job import Job
from ...shelf import Shelf
from ..text import plain
from ..widgets.key_bar import KeyBar
from .base import DismissOnce


class ConfirmScreen(DismissOnce, Screen[bool]):
    """Enter starts the run; Esc goes back. Dismisses with True to start."""

    BINDINGS = [
        Binding("enter", "start", "Start"),
        Binding("b", "batch", "Batch", tooltip="live calls, or the provider's batch engine (half the price, 24 h)"),
        Binding("escape", "back", "Back"),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        settings = job.settings
        self.batchable = settings.online and settings.preset in BATCH_PRESETS  # OpenAI's and Groq's batch engines

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.batchable if action == "batch" else True

    def action_batch(self) -> None:
        """Switch between live calls and the batch engine; the prices and the question follow."""
        if self.job.taken_up:  # sending live what a batch is answering would pay for it twice
            self.app.bell()
            self.app.notify(self.job.taken_up[0].upper() + self.job.taken_up[1:] + ".", timeout=8)
            return
        self.job.settings.batch = not self.job.settings.batch
        self.refresh(recompose=True)
        self.refresh_bindings()

    def compose(self) -> ComposeResult:
        job, estimate, settings = self.job, self.job.estimate, self.job.settings
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", justify="right")
        table.add_column()
        table.add_row("Document", plain(f"{job.document.title}  ({job.document.name})"))
        table.add_row("Model", plain(settings.server()))
        if settings.language or settings.style != DEFAULT_STYLE:
            table.add_row("Cards in", plain(f"{settings.language or 'the source language'}, style {settings.style}"))
        earlier = f" ({job.done_earlier} of {len(job.chunks)} done earlier, from the store)" if job.done_earlier else ""
        if job.changes and (job.changes.changed or job.changes.removed):
            table.add_row("Since last run", plain(job.changes.describe()))
        table.add_row("Chunks", f"{estimate.chunks} to send, of up to {settings.chunk_tokens} tokens, "
                      f"{settings.concurrency} at a time{earlier}")  # fmt: skip
        if job.server is not None and (job.server.window or job.server.slots):
            table.add_row("Server", plain(f"{job.server.kind}: context {job.server.describe_window()}, "
                                          f"slots {job.server.describe_slots()}"))  # fmt: skip
        if settings.batch:
            table.add_row("Time", plain("within 24 h (the provider's batch engine; often much sooner)"))
        elif job.describe_time():
            table.add_row("Time", plain(job.describe_time()))
        table.add_row("Cards", f"about {estimate.cards}" + (" more" if job.done_earlier else ""))
        table.add_row("Input tokens", f"{estimate.input_tokens:,} (estimated)")
        table.add_row("Output tokens", f"{estimate.output_tokens:,} (estimated)")
        self._cost_rows(table, estimate.cost_usd, estimate.batch_cost_usd)
        if settings.key_source:
            table.add_row("Key", plain(f"from {settings.key_source}"))
        if settings.remembered:
            from ...config_file import config_path

            names = ", ".join("provider" if k == "provider" else k.replace("_", " ") for k in settings.remembered)
            table.add_row("Remembered", plain(f"{names}: your last choices in the app (change them in Settings, or "
                                              f"under [app] in {config_path()}); mkflash-tui generate does not use "
                                              "them"))  # fmt: skip
        yield from self._box("Send this document to the model?", table)

    def _cost_rows(self, table: Table, live: float | None, batch: float | None) -> None:
        """The price as the run will be sent and, where a batch engine is offered, the other way's beside it."""
        settings = self.job.settings
        if not self.batchable:
            table.add_row("Cost", _price(live, settings))
            return
        if settings.batch and self.job.taken_up:
            table.add_row("Send", plain(self.job.taken_up[0].upper() + self.job.taken_up[1:], "bold"))
            table.add_row("Cost", _price(batch, settings))
        elif settings.batch:
            table.add_row("Send", Text("through the provider's batch engine: answers within 24 h; quitting only "
                                       "detaches, and reopening the session collects them", style="bold"))
            table.add_row("Cost", _price(batch, settings))
            table.add_row("Live", plain(f"{_bare(live)}, answered as they go (b switches)"))
        else:
            table.add_row("Send", plain("live calls, answered as they go"))
            table.add_row("Cost", _price(live, settings))
            table.add_row("Batch", plain(f"{_bare(batch)} through the batch engine, within 24 h (b switches)"))

    @property
    def over_budget(self) -> bool:
        return self.job.over_budget

    def _box(self, title: str, table: Table) -> ComposeResult:
        if self.over_budget:
            hint = Text(f"This is above --max-cost {fmt.usd(self.job.settings.max_cost)}: Esc to go back.",
                        style="bold red")  # fmt: skip
        else:
            hint = Text("Enter starts the run" + (" · b: live or batch" if self.batchable else "") + " · Esc goes back",
                        style="bold")  # fmt: skip
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield Static(table)
            yield Static(hint, id="confirm-hint")
        yield KeyBar()

    def action_start(self) -> None:
        if self.over_budget:
            self.app.bell()
            return
        self.dismiss(True)

    def action_back(self) -> None:
        self.dismiss(False)


class ShelfConfirmScreen(ConfirmScreen):
    """The same question for a shelf: every document's chunks and price, and the total."""

    def __init__(self, shelf: Shelf) -> None:
        super().__init__(shelf.jobs[0])
        self.shelf = shelf

    def compose(self) -> ComposeResult:
        shelf, settings, total = self.shelf, self.shelf.settings, self.shelf.estimate()
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", justify="right")
        table.add_column()
        table.add_row("Deck", plain(f"{shelf.deck}: {fmt.plural(len(shelf.jobs), 'document')}, a subdeck each"))
        shown = shelf.jobs[:8]
        for job in shown:
            est = job.estimate
            cost = "" if est.cost_usd is None else f", {fmt.usd(est.cost_usd)}"
            earlier = f" ({job.done_earlier} done earlier)" if job.done_earlier else ""
            table.add_row("", plain(f"{job.document.name}: {fmt.plural(est.chunks, 'chunk')}{earlier}, "
                                    f"~{est.input_tokens:,} tokens{cost}"))  # fmt: skip
        if len(shelf.jobs) > len(shown):
            table.add_row("", plain(f"… and {fmt.plural(len(shelf.jobs) - len(shown), 'more document')}"))
        if shelf.skipped:
            table.add_row("Skipped", plain(f"{fmt.plural(len(shelf.skipped), 'input')} that cannot be read"))
        table.add_row("Model", plain(settings.server()))
        table.add_row("Chunks", f"{total.chunks} to send, {settings.concurrency} at a time across all documents")
        seconds = shelf.estimated_seconds()
        if settings.batch:
            table.add_row("Time", plain("within 24 h (the provider's batch engine; often much sooner)"))
        elif seconds is not None:
            table.add_row("Time", plain(fitting.describe_seconds(seconds)))
        table.add_row("Cards", f"about {total.cards}")
        table.add_row("Input tokens", f"{total.input_tokens:,} (estimated)")
        self._cost_rows(table, total.cost_usd, total.batch_cost_usd)
        if settings.key_source:
            table.add_row("Key", plain(f"from {settings.key_source}"))
        yield from self._box("Send these documents to the model?", table)

    @property
    def over_budget(self) -> bool:
        return self.shelf.over_budget


def _price(cost: float | None, settings) -> Text:
    if cost is None:
        return plain(f"unknown: no price on file for {settings.model}", "yellow")
    if cost == 0 and is_local_url(settings.base_url):
        return Text("free (a server on this machine or network)", style="bold")
    return Text(f"about {fmt.usd(cost)}", style="bold")


def _bare(cost: float | None) -> str:
    return "unknown" if cost is None else fmt.usd(cost)
