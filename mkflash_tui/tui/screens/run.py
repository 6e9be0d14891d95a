"""RunScreen: the Generate view (key 1), the Review view (key 2) and the Timeline (key 3) over one Run.

The screen schedules the Run's coroutines as Textual workers (the summary, then one worker per chunk, all in
named groups on the app's loop) and draws the run's events. Events only mark things dirty and queue log lines;
a 10 Hz timer repaints, so a burst of hundreds of events costs one frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Input, Static, Tab, Tabs
from textual.worker import Worker, WorkerState

from ... import format as fmt
from ...core import remake
from ...core.deck import ExportOptions, NoteStamps
from ...core.engine import Run, RunCancelled
from ...core.models import (
    Card,
    ChunkFailed,
    ChunkFinished,
    ChunkRetrying,
    ChunkStarted,
    ChunkState,
    Event,
    LimitChanged,
    Notice,
    RunFinished,
    SummaryFailed,
    SummaryFinished,
    SummaryStarted,
)
from ...core.providers.presets import PRESETS
from ...core.review import Decisions, Review, matches
from ...core.store import Store, StoreError
from ...core.timeline import Timeline
from ...job import Job, forget_unused_session, make_provider
from ..text import plain
from ..widgets.cards import CardDetail, CardTable
from ..widgets.chunk_board import ChunkBoard
from ..widgets.key_bar import KeyBar
from ..widgets.run_bar import RunBar
from ..widgets.run_log import RunLog
from ..widgets.timeline import TimelineView

if TYPE_CHECKING:
    from .dialogs import ServerFix

REFRESH_SECONDS = 0.1
GC_THRESHOLDS = (20_000, 50, 100)  # fewer collector passes while hundreds of calls allocate (default 700, 10, 10)
START_BATCH = 4  # chunk workers started per event-loop turn
MAX_FAILURE_NOTICES = 3  # per refresh; more are summed up in one notification


class ReviewView(Vertical):
    """The card table, a filter line and the detail pane. Its keys work only while it has the focus."""

    BINDINGS = [
        Binding("d", "delete", "Delete", tooltip="delete the highlighted card (it will not be exported)"),
        Binding("u", "undo", "Undo", tooltip="bring back the last deleted card (several levels)"),
        Binding("e", "edit", "Edit", tooltip="edit the card's front and back (Ctrl+S saves)"),
        Binding("g", "again", "Again", tooltip="make the card again, with an optional note to the model"),
        Binding("G", "again_chunk", "Chunk again", tooltip="make the card's whole chunk again, with an optional note"),
        Binding("slash", "filter", "Filter", tooltip="show only cards containing all the words typed"),
        Binding("f", "flagged", "Flagged", tooltip="show only the cards the quality gate flagged (again: all)"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="clear the filter"),
    ]

    def compose(self) -> ComposeResult:
        with Horizontal(id="filter-row"):
            yield Input(placeholder="filter: words that must all appear (Esc clears)", id="filter")
            yield Static("", id="filter-count")
        with Horizontal(id="review-body"):
            yield CardTable(id="cards")
            with VerticalScroll(id="detail-scroll"):
                yield CardDetail(id="detail")

    def action_delete(self) -> None:
        self.screen.delete_card()

    def action_undo(self) -> None:
        self.screen.undo_delete()

    def action_flagged(self) -> None:
        self.screen.toggle_flagged()

    def action_edit(self) -> None:
        self.screen.edit_card()

    def action_again(self) -> None:
        self.screen.remake_card(whole_chunk=False)

    def action_again_chunk(self) -> None:
        self.screen.remake_card(whole_chunk=True)

    def action_filter(self) -> None:
        self.query_one("#filter-row").display = True
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if field.value or self.query_one("#filter-row").display:
            field.value = ""
            self.query_one("#filter-row").display = False
            self.screen.apply_filter("")
            self.query_one(CardTable).focus()


class ViewTabs(Tabs):
    """The view tabs. The underline jumps to the active tab: Tabs animates it for 0.3 s, eighteen frames that a
    key pressed next had to wait behind."""

    def _highlight_active(self, animate: bool = True) -> None:
        super()._highlight_active(animate=False)


def view_tabs() -> ViewTabs:
    tabs = ViewTabs(Tab("1 Generate", id="generate"), Tab("2 Review", id="review"), Tab("3 Timeline", id="timeline"),
                    id="view-tabs")  # fmt: skip
    tabs.can_focus = False
    return tabs


class RunScreen(Screen):
    """Drives one Run and shows it. ``job`` carries the settings, the document and the export defaults."""

    BINDINGS = [
        Binding("1", "view('generate')", "Generate", tooltip="the chunks, their calls and the log"),
        Binding("2", "view('review')", "Review", tooltip="the cards so far, while the rest are generated"),
        Binding("3", "view('timeline')", "Timeline", tooltip="every call on a time axis: attempts, waits, the limit"),
        Binding("x", "export", "Export", tooltip="write the deck (.apkg, .csv, .md or .json)"),
        Binding("c", "cancel_run", "Cancel", tooltip="stop every call; finished cards stay"),
        Binding("r", "retry_failed", "Retry", tooltip="send the failed or cancelled chunks again"),
        Binding("question_mark", "app.help", "Help", tooltip="this screen"),
        Binding("q", "app.quit", "Quit", tooltip="quit (asks first if generating or cards are unexported)"),
    ]

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self, job: Job, run: Run, *, store: Store | None = None,
                 decisions: Decisions | None = None, view: str = "generate",
                 resumed: bool = True, desk=None) -> None:  # fmt: skip
        super().__init__()
        self.desk = desk  # batch mode: the job's batches (core.batch.BatchDesk), one line each above the board
        self._batch_lines: dict[str, str] = {}
        self._batches_dirty = False
        if desk is not None:
            desk.emit = self._on_batch
        self.initial_view = view
        self.resumed = resumed  # False: this run made its session (removed again if nothing was ever sent)
        self.job = job
        self.run = run
        self.store = store
        self.decisions = decisions or {}  # from the resumed session, applied to cards as they arrive
        self.review = Review()
        if self.decisions:
            self.review.adopt(run.previous_cards, self.decisions)  # stale cards never arrive as chunks finish
        if store is not None:
            self.review.listeners.append(self._commit_decision)
        self.exported: tuple[int, int] | None = None  # (review version, card count) of the last export
        self.finished = False
        self._log_lines: list[str] = []
        self._dirty_cards = False
        self._failures: list[ChunkFailed] = []
        self._chunk_of_worker: dict[Worker, str] = {}
        self._pending = 0
        self._filter = ""
        self.flagged_only = False
        self._fatal_shown = False
        self.card_count = 0
        self.kept_by_chunk: Counter[str] = Counter()
        self._halt_shown = False
        self._count_stale = False
        self._remaking: set[str] = set()  # chunks whose cards are being made again
        self._known_asked = False  # the user's collection is read once, when the run is over
        self.timelines: dict[Run, Timeline] = {}  # each run's calls, for the Timeline view, from its first event
        for each in self.drawn_runs():
            self.timelines[each] = Timeline(job.settings.concurrency)
            each.subscribe(self.timelines[each].add)
        run.subscribe(self._on_event)

    def drawn_runs(self) -> list[Run]:
        """The runs the Timeline view can show (a shelf: every document's)."""
        return [self.run]

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield RunBar(self.run, _provider_label(self.job), cards=lambda: self.card_count, id="run-bar")
        yield view_tabs()
        with ContentSwitcher(initial="generate", id="views"):
            with Vertical(id="generate"):
                yield Static("", id="batch-lines")
                yield ChunkBoard(self.run, kept=lambda chunk_id: self.kept_by_chunk.get(chunk_id, 0), id="board")
                yield RunLog(id="log", max_lines=5000)
            yield ReviewView(id="review")
            yield TimelineView(self.run, self.timelines[self.run], id="timeline")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#filter-row").display = False
        self.query_one("#batch-lines").display = False
        self.query_one(CardDetail).show(None)
        self.set_interval(REFRESH_SECONDS, self.refresh_views)
        self.focus_first()
        self.start()
        if self.initial_view != "generate":
            self.call_after_refresh(self.action_view, self.initial_view)

    def focus_first(self) -> None:
        self.query_one(ChunkBoard).focus()

    # Textual calls a handler of every class on the way up: a subclass changes these methods, not the handlers.

    async def on_unmount(self) -> None:
        await self.close_run()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_changed(event)

    async def close_run(self) -> None:
        """Leaving the app (or this run) stops every call and closes the client's connections."""
        self.record_count()
        self.run.cancel()
        await self.run.aclose()
        forget_unused_session(self.store, self.run.session_id, self.run, resumed=self.resumed)

    # ------------------------------------------------------------------ driving the run

    def start(self) -> None:
        """Summary first (as a worker), then one worker per chunk."""
        self.query_one(RunBar).start()
        self.run_worker(self._summary_then_chunks(), group="summary", name="summary", exit_on_error=False)

    async def _summary_then_chunks(self) -> None:
        if self.run.provider.online:
            # The SDK takes ~0.7 s to import; doing it in a thread keeps the screen responsive meanwhile.
            await asyncio.to_thread(importlib.import_module, "openai")
        # What is loaded by now (Textual, the SDK, the document) lives as long as the app. Frozen, it is left
        # out of the collector's full passes, which otherwise rescan it all and stall the loop for 100+ ms.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            await self.run.summarize()
        except RunCancelled:
            pass  # the chunk workers mark every chunk cancelled or refused, and the bar says why
        await self.schedule([c.id for c in self.run.chunks])

    async def schedule(self, chunk_ids: list[str]) -> None:
        """One worker per chunk, started a batch per loop turn.

        Each call spends ~2 ms in the SDK building its request before its first await; started all at once,
        500 of them would hold the loop for a second. A batch per turn keeps every turn short.
        """
        self.finished = False
        self.query_one(RunBar).start()
        self._pending += len(chunk_ids)
        if not chunk_ids:
            self._all_done()
            return
        for start in range(0, len(chunk_ids), START_BATCH):
            if start:
                await asyncio.sleep(0)
            for chunk_id in chunk_ids[start : start + START_BATCH]:
                index = self.run.status[chunk_id].chunk.index
                worker = self.run_worker(
                    self.run.process_chunk(chunk_id), group="chunks", name=f"chunk {index + 1}", exit_on_error=False
                )
                self._chunk_of_worker[worker] = chunk_id

    def worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "summary" and event.state is WorkerState.ERROR:
            self.app.notify(f"The summary step failed: {worker.error}", title="Error", severity="error")
            self.run_worker(self.schedule([c.id for c in self.run.chunks]), group="schedule")
            return
        if worker.group != "chunks" or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        chunk_id = self._chunk_of_worker.pop(worker, None)
        if event.state is WorkerState.ERROR and chunk_id is not None:
            # A bug, not a server fault: show it on the chunk's panel and tell the user.
            status = self.run.status[chunk_id]
            status.state = ChunkState.FAILED
            status.reason = f"internal error: {worker.error}"
            status.finished_at = self.run.now()
            self._log_lines.append(f"{self.run.now():7.2f}s FAILED {worker.name}: {worker.error!r}")
            self.app.notify(f"{worker.name} failed: {worker.error!r}", title="Internal error", severity="error")
        self._pending -= 1
        if self._pending == 0:
            self._all_done()

    def _all_done(self) -> None:
        self.finished = True
        self.query_one(RunBar).stop()
        self.run.report_finished()
        self.record_count()
        if not self._known_asked and self.cards():
            self._known_asked = True
            self.run_worker(self._read_known, thread=True, group="known", exit_on_error=False)

    def _read_known(self) -> None:
        """In a thread: the notes of the user's collection (--against, or the Anki behind AnkiConnect)."""
        from ...core.known import KnownError
        from ...job import read_known

        try:
            read = read_known(self.job.settings)
        except KnownError as exc:
            self.app.call_from_thread(self.app.notify, f"{exc}.", title="--against", severity="error", timeout=10)
            return
        if read is not None:
            self.app.call_from_thread(self._mark_known, read)

    def _mark_known(self, read) -> None:
        """Mark the cards the user's collection has already; with --skip-known they leave Review and the deck."""
        from ...job import known_index

        cards = self.cards()
        index = known_index(read, self.store, cards)
        count = index.mark(cards)
        self.review.version += 1  # what an export writes may change (--skip-known)
        where = "your collection" if read[1] is None else "the Anki at " + read[1]
        self._log_lines.append(f"{self.run.now():7.2f}s KNOWN {fmt.plural(count, 'card')} repeat notes already in "
                               f"{where} ({fmt.plural(len(index), 'note')} compared)")  # fmt: skip
        if count:
            left = " and are left out (--skip-known)" if self.job.settings.skip_known else "; f lists them"
            self.app.notify(f"{fmt.plural(count, 'card')} repeat notes already in {where}{left}.", timeout=6)
        self.query_one(CardTable).show(self._visible())
        self._after_change()

    def _on_event(self, event: Event) -> None:
        """Called by the run for every event, on this loop: record, never draw."""
        run = self.run
        total = len(run.chunks)
        stamp = f"{event.at:7.2f}s"
        if isinstance(event, ChunkStarted):
            label = run.chunks[event.index].label
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._log_lines.append(f"{stamp} START chunk {event.index + 1}/{total}{attempt} {label}")
        elif isinstance(event, ChunkFinished):
            if event.skipped:
                what = "skipped (no cards allotted)"
            else:
                what = fmt.plural(len(event.cards), "card") if event.cards else f"no cards ({event.note})"
            self._log_lines.append(f"{stamp} END   chunk {event.index + 1}/{total} {what} in {event.seconds:.1f}s")
            if self.decisions:
                self.review.adopt(event.cards, self.decisions)
            self._dirty_cards = True
        elif isinstance(event, ChunkRetrying):
            self._log_lines.append(
                f"{stamp} RETRY chunk {event.index + 1}/{total} in {event.wait:.1f}s: {event.reason}"
            )
        elif isinstance(event, ChunkFailed):
            word = "CANCELLED" if event.cancelled else "FAILED"
            self._log_lines.append(f"{stamp} {word} chunk {event.index + 1}/{total}: {event.reason}")
            if not event.cancelled and not run.fatal:
                self._failures.append(event)
        elif isinstance(event, SummaryStarted):
            self._log_lines.append(f"{stamp} START summary of the whole document")
        elif isinstance(event, SummaryFinished):
            self._log_lines.append(f"{stamp} END   summary: {event.summary.title}")
        elif isinstance(event, SummaryFailed):
            if not run.fatal:
                self._log_lines.append(f"{stamp} summary failed ({event.reason}); going on with the title alone")
        elif isinstance(event, LimitChanged):
            self._log_lines.append(f"{stamp} LIMIT concurrency now {event.limit}")
        elif isinstance(event, Notice):
            self._log_lines.append(f"{stamp} NOTE  {event.text}")
            self.call_later(self.app.notify, event.text, timeout=8)
        elif isinstance(event, RunFinished):
            cancelled = run.counts()["cancelled"]
            self._log_lines.append(
                f"{stamp} DONE  {event.done}/{total} chunks, {fmt.plural(len(self.cards()), 'card')}"
                + (f", {event.failed} failed" if event.failed else "")
                + (f", {cancelled} cancelled" if cancelled else "")
            )
            stale = sum(1 for c in self.cards() if c.stale)
            if stale:
                self._log_lines.append(
                    f"{stamp} STALE {fmt.plural(stale, 'card')} made of text the source no longer has: listed last "
                    "in Review, tagged mkflash::stale in the deck"
                )
            self.call_later(self._announce_finish, event)

    def _announce_finish(self, event: RunFinished) -> None:
        if event.fatal:
            return
        cards = len(self.cards())
        if event.cancelled:
            self.app.notify(f"Run cancelled; {fmt.plural(cards, 'card')} kept. Press r to resume the rest.")
        elif event.failed:
            self.app.notify(
                f"{fmt.plural(event.failed, 'chunk')} failed; press r to retry them. "
                f"{fmt.plural(cards, 'card')} ready; x exports.",
                severity="warning",
            )
        else:
            self.app.notify(f"Done: {fmt.plural(cards, 'card')} from {fmt.plural(event.done, 'chunk')}. x exports.")

    def _on_batch(self, event: Event) -> None:
        """The desk's events: a batch's progress becomes its line; a notice goes to the log and a toast."""
        describe = getattr(event, "describe", None)
        if describe is None:
            self._on_event(event)
            return
        self._batch_lines[event.batch] = describe()  # type: ignore[attr-defined]
        self._batches_dirty = True

    def refresh_views(self) -> None:
        """The timer: flush queued log lines, repaint the board and the bar, add new cards to the table."""
        if self._batches_dirty:
            self._batches_dirty = False
            lines = self.query_one("#batch-lines", Static)
            lines.update(plain("\n".join(self._batch_lines.values())))
            lines.display = True
        if self._log_lines:
            lines, self._log_lines = self._log_lines, []
            self.query_one(RunLog).write_lines(lines)
        self.query_one(ChunkBoard).tick()
        self.query_one(RunBar).tick()
        if self.query_one(ContentSwitcher).current == "timeline":
            self.query_one(TimelineView).tick()
        if self.run.fatal and not self._fatal_shown:
            self._fatal_shown = True
            if self.job.settings.online and self.app.screen is self:
                self._offer_fix()  # the dialog says why, and how to go on
            else:
                self.app.notify(self.run.fatal, title="The run stopped", severity="error", timeout=30)
        if self.run.halted and not self._halt_shown:
            self._halt_shown = True
            self.app.notify(
                f"{self.run.halted}. Nothing new is sent; the cards made so far stay here: x exports them.",
                title="Cannot save the session",
                severity="error",
                timeout=30,
            )
        if self._failures:
            failures, self._failures = self._failures, []
            for failure in failures[:MAX_FAILURE_NOTICES]:
                self.app.notify(f"Chunk {failure.index + 1} failed: {failure.reason}", severity="error")
            if len(failures) > MAX_FAILURE_NOTICES:
                self.app.notify(f"… and {len(failures) - MAX_FAILURE_NOTICES} more chunks failed.", severity="error")
        if self._dirty_cards:
            self._dirty_cards = False
            self._sync_cards()
        if self._count_stale:
            self._count_stale = False
            self.record_count()

    # ------------------------------------------------------------------ review

    def cards(self):
        """What an export would write right now: the run's cards minus deletions, edits applied (and, with
        --skip-known, minus the cards the user's collection has already)."""
        cards = self.review.keep(self.run.cards())
        return [c for c in cards if not c.known] if self.job.settings.skip_known else cards

    def _visible(self, cards=None):
        """The cards the table shows: what would be exported, narrowed by the filter."""
        cards = self.cards() if cards is None else cards
        if self.flagged_only:
            cards = [c for c in cards if c.flags or c.known]
        return [c for c in cards if matches(c, self._filter)] if self._filter else cards

    def _count_on_tab(self, cards) -> None:
        if self._filter:
            self._show_filter_count(len(self._visible(cards)), len(cards))
        self.card_count = len(cards)  # the one count of cards: what an export would write now
        self.kept_by_chunk = Counter(c.chunk_id for c in cards if not c.stale)  # each panel's share of it
        self.query_one("#view-tabs", Tabs).get_tab("review").label = f"2 Review ({len(cards)})"

    def _sync_cards(self) -> None:
        """Bring the table up to date. While the Review view is hidden only its tab's count changes: the table
        is built once when it is shown. The table keeps document order: cards that belong after every row are
        appended; cards from earlier chunks (they finish in any order) are put in their place, with the cursor
        kept on the card it was on."""
        cards = self.cards()
        self._count_on_tab(cards)
        if self.query_one(ContentSwitcher).current != "review":
            return
        table = self.query_one(CardTable)
        visible = self._visible(cards)
        # A continued session: a stale card's id passes to the card made again with the same text.
        taken_over = bool(self.run.previous_cards) and any(table.cards.get(c.id, c) is not c for c in visible)
        if len(visible) == len(table.cards) and not taken_over:
            return
        visible_ids = {c.id for c in visible}
        if taken_over or any(card_id not in visible_ids for card_id in table.cards):
            table.show(visible)  # a card was superseded by an identical one from an earlier chunk
        else:
            table.append(visible)
        self._update_detail()

    def _update_detail(self) -> None:
        table = self.query_one(CardTable)
        note = ""
        if self._filter and not table.row_count:
            note = f"No card matches “{self._filter}”. Esc clears the filter."
        elif self.flagged_only and not table.row_count:
            note = "No card is flagged. f shows all cards."
        self.query_one(CardDetail).show(table.current, note=note)

    @on(CardTable.Highlighted, "#cards")
    def _row_highlighted(self) -> None:
        self._update_detail()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one(CardTable).focus()

    def toggle_flagged(self) -> None:
        """Show only the cards the quality gate flagged, or all of them again."""
        self.flagged_only = not self.flagged_only
        shown = self._visible()
        self.query_one(CardTable).show(shown)
        self._update_detail()
        if self.flagged_only:
            self.app.notify(f"{fmt.plural(len(shown), 'flagged card')}; f shows all again.", timeout=3)

    def apply_filter(self, query: str) -> None:
        self._filter = query.strip()
        shown = self._visible()
        self.query_one(CardTable).show(shown)
        self._update_detail()
        self._show_filter_count(len(shown), len(self.cards()))

    def _show_filter_count(self, shown: int, total: int) -> None:
        """The filter's one live count, beside it: of the same cards the bar counts."""
        text = f"{shown} of {fmt.plural(total, 'card')} match" if self._filter else ""
        self.query_one("#filter-count", Static).update(plain(text))

    def delete_card(self) -> None:
        table = self.query_one(CardTable)
        card = table.current
        if card is None:
            self.app.bell()
            return
        self.review.delete(card)
        table.remove(card.id)
        self._after_change()
        # No notice: the row goes, the count drops and the key bar shows u Undo. A toast here cost a layout of
        # its own, a third of the key's time under load.

    def undo_delete(self) -> None:
        entry = self.review.undo()
        if entry is None:
            self.app.notify("Nothing to undo.", timeout=2)
            return
        if isinstance(entry, tuple):  # cards made again: the ones they replaced go back
            run, remade = entry
            remake.undo(run, remade)
            self.query_one(CardTable).show(self._visible(), focus_id=remade.replaced[0].id)
            self._after_change()
            self.app.notify(f"{fmt.plural(len(remade.replaced), 'card')} back as before.", timeout=2)
            return
        assert isinstance(entry, Card)
        self.query_one(CardTable).show(self._visible(), focus_id=entry.id)
        self._after_change()
        self.app.notify("Card restored.", timeout=2)

    def run_of(self, card: Card) -> Run | None:
        """The run that made ``card`` (None: a stale card, whose text is gone)."""
        return self.run if not card.stale and card.chunk_id in self.run.status else None

    def remake_card(self, *, whole_chunk: bool) -> None:
        """``g`` and ``G``: ask for the highlighted card (or its chunk's cards) again, with an optional note."""
        from .dialogs import RemakeDialog

        card = self.query_one(CardTable).current
        run = self.run_of(card) if card is not None else None
        if card is None or run is None:
            self.app.notify("A stale card's text is gone from the source: it cannot be made again." if card else
                            "No card to make again.", timeout=4)  # fmt: skip
            return
        if card.chunk_id in self._remaking:
            self.app.notify("This chunk's cards are being made again; wait for them.", timeout=3)
            return
        ask, notes = remake.for_provider(run, remake.Ask(card.chunk_id, None if whole_chunk else card.id))
        shown = self.review.keep(run.status[card.chunk_id].cards)
        try:
            replaced = remake.replaceable(run, ask, shown)
        except remake.RemakeError as exc:
            self.app.notify(f"Cannot make it again: {exc}.", severity="warning", timeout=5)
            return
        tokens, cost = remake.price(run, ask, replaced)
        number = card.chunk_index + 1
        cards = fmt.plural(len(replaced), "card")
        title = "Make this card again" if ask.card_id or ask.first else f"Make chunk {number}'s {cards} again"
        online = run.provider.online
        line = remake.priced(tokens, cost, online=online)
        confirm = online and (cost is None or cost >= remake.ONE_CENT)

        def chosen(note: str | None) -> None:
            if note is not None:
                asked = dataclasses.replace(ask, note=note)
                self.run_worker(self._remake(run, asked, shown, notes), group="remake", exit_on_error=False)

        self._open(RemakeDialog(title, card, line, takes_note=online, confirm=confirm), chosen)

    async def _remake(self, run: Run, ask: remake.Ask, shown: list[Card], notes: list[str]) -> None:
        what = "the card" if ask.card_id or ask.first else f"chunk {run.status[ask.chunk_id].chunk.index + 1}'s cards"
        self._log_lines.append(f"{run.now():7.2f}s AGAIN {what}" + (f" (note: {ask.note})" if ask.note else ""))
        self.app.notify(f"Making {what} again…", timeout=2)
        self._remaking.add(ask.chunk_id)
        try:
            remade = await remake.remake(run, ask, shown)
        except remake.RemakeError as exc:
            self._log_lines.append(f"{run.now():7.2f}s AGAIN failed: {exc}")
            self.app.notify(f"Not made again: {exc}.", severity="error", timeout=8)
            return
        finally:
            self._remaking.discard(ask.chunk_id)
        self.review.replaced((run, remade))
        self._count_stale = True
        self.query_one(CardTable).show(self._visible(), focus_id=remade.made[0].id)
        self._after_change()
        kept = {c.id for c in self.cards()}
        left_out = sum(1 for c in remade.made if c.id not in kept)
        flagged = sorted({flag for c in remade.made for flag in c.flags})
        message = f"{fmt.plural(len(remade.made), 'card')} made again"
        if remade.from_cache:
            message += " (asked before with this note: no call; another note asks anew)"
        if flagged:
            message += f"; flagged: {', '.join(flagged)}"
        if left_out:
            message += f"; {left_out} left out by the quality gate (it repeats another card)"
        self._log_lines.append(f"{run.now():7.2f}s AGAIN {message}")
        for note in dict.fromkeys(notes + remade.notes):
            self.app.notify(note[:1].upper() + note[1:] + ".", timeout=8)
        self.app.notify(message + ". u puts the old back.", timeout=5)

    def edit_card(self) -> None:
        from .dialogs import EditCardDialog

        card = self.query_one(CardTable).current
        if card is None:
            self.app.bell()
            return

        def save(result: tuple[str, str] | None) -> None:
            if result is None:
                return
            try:
                changed = self.review.edit(card, *result)
            except ValueError as exc:
                self.app.notify(f"Not saved: {exc}.", severity="error")
                return
            if changed:
                self.query_one(CardTable).refresh_card(card)
                self._after_change()

        self._open(EditCardDialog(card), save)

    def _after_change(self) -> None:
        self._update_detail()
        self._count_on_tab(self.cards())

    # ------------------------------------------------------------------ actions

    def action_view(self, name: str) -> None:
        # The view first, then its tab: the new view's layout is then asked for before the tab's repaint, and
        # both reach the screen in one frame instead of two.
        self._show_view(name)
        self.query_one("#view-tabs", Tabs).active = name

    @on(Tabs.TabActivated, "#view-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        self._show_view(event.tab.id or "generate")  # a click on a tab

    def _show_view(self, name: str) -> None:
        switcher = self.query_one(ContentSwitcher)
        if switcher.current == name:
            return
        switcher.current = name
        if name == "review":
            self._sync_cards()
            table = self.query_one(CardTable)
            table.focus()
            if table.row_count and table.cursor_row >= table.row_count:
                table.move_cursor(row=0)
            self._update_detail()
        elif name == "timeline":
            timeline = self.query_one(TimelineView)
            timeline.focus()
            timeline.tick()
        else:
            self.query_one(ChunkBoard).focus()

    def action_cancel_run(self) -> None:
        if self.finished:
            self.app.notify("Nothing is running.", timeout=2)
            return
        self.run.cancel()
        self.app.notify("Cancelling: finished cards stay.", timeout=3)

    def action_retry_failed(self) -> None:
        if self.run.fatal and self.job.settings.online and self.finished:
            self._offer_fix()
            return
        if not self.finished:
            self.app.notify("Wait for the run to finish (or press c), then r retries what failed.", timeout=3)
            return
        ids = self.run.retry_failed()
        if not ids:
            message = self.run.fatal or "No failed chunks to retry."
            self.app.notify(message, timeout=4)
            return
        self.app.notify(f"Retrying {fmt.plural(len(ids), 'chunk')}.", timeout=3)
        self.run_worker(self.schedule(ids), group="schedule")

    def _offer_fix(self) -> None:
        """The server refused the run: offer to correct the key, the address or the model, and go on."""
        from .dialogs import FixServerDialog

        refusal = self.run.refusal
        reason = refusal.reason if refusal is not None else self.run.fatal or ""
        self._open(FixServerDialog(self.job.settings, reason, refusal.field if refusal else ""), self._server_fixed)

    def _server_fixed(self, fix: ServerFix | None) -> None:
        if fix is not None:
            self.run_worker(self.go_on_with(fix), group="fix", exclusive=True)

    async def go_on_with(self, fix: ServerFix) -> None:
        """Carry on in this session with the corrected key, address or model: the run's chunks that finished
        keep their cards, the review keeps every decision, and only unfinished chunks are sent."""
        while not self.finished:  # the refused run's calls are still being stopped
            await asyncio.sleep(0.05)
        settings = self.job.settings
        if fix.api_key:
            settings.api_key, settings.key_source = fix.api_key, "typed in the app"
        settings.base_url, settings.model = fix.base_url, fix.model
        settings.preset = "openai" if fix.base_url != PRESETS[settings.preset].base_url else settings.preset
        old = self.run.provider
        self.run.replace_provider(make_provider(settings, self.job.document, stream=True))
        await old.aclose()
        if self.store is not None and self.run.session_id and not self.run.halted:
            try:
                self.store.set_session_spec(self.run.session_id, self.job.session_spec(), self.job.source)
            except StoreError:
                pass  # the cards are still made; only a later run will not find this session by the new settings
        self._fatal_shown = False
        self.query_one(RunBar).provider = _provider_label(self.job)
        ids = self.run.retry_failed()
        self.app.notify(f"Going on with {settings.server()}: {fmt.plural(len(ids), 'chunk')} to send.", timeout=4)
        await self.schedule(ids)

    def help_page(self) -> tuple[str, list]:
        """What the help screen lists here: every key of the run screen, its views and its dialogs."""
        intro = ("mkflash-tui turns a text into an Anki deck. Chunks are sent to the model all at once; watch them "
                 "in Generate, review cards in Review while the rest are still coming, then export.")  # fmt: skip
        return intro, [
            ("Everywhere", list(RunScreen.BINDINGS)),
            ("Generate view", [
                ("Enter / click", "show a chunk in full (text, error, raw output)"),
                ("arrows, PgUp/PgDn", "move between chunks"),
                ("Home/End", "the first and the last chunk (Ctrl+Home / Ctrl+End too)"),
                ("f", "the next failed or cancelled chunk"),
            ]),
            ("Review view", [
                ("↑ ↓, PgUp/PgDn", "move between cards; the detail pane shows the highlighted one in full"),
                ("Home/End", "the first and the last card (Ctrl+Home / Ctrl+End too)"),
                *ReviewView.BINDINGS,
            ]),
            ("Timeline view", [
                ("↑ ↓, PgUp/PgDn", "move between lanes: the summary, then a lane per chunk"),
                ("Enter / click", "show the lane's chunk in full"),
                ("+ / −", "zoom in and out in time (the view's middle stays)"),
                ("← →", "move along the time axis, when zoomed in"),
                ("0", "fit the whole run in the width again (it follows the run live)"),
            ]),
            ("Fields and dialogs", [
                ("Tab / Shift+Tab", "the next and the previous field or button"),
                ("Enter", "the dialog's main button (export, go on, save)"),
                ("Esc", "close the dialog without doing anything"),
                ("Ctrl+C / Ctrl+V", "copy and paste in a text field (Ctrl+C never quits: q or Ctrl+Q do)"),
            ]),
            ("Export dialog", [("Enter", "export (a second Enter overwrites an existing file)"),
                               ("Send to Anki", "push the cards into a running Anki through AnkiConnect"),
                               ("q", "once the deck is written: quit")]),
            ("App", [("Ctrl+P", "command palette: every action by name"), ("Ctrl+Q", "quit, from any screen")]),
        ]  # fmt: skip

    def action_export(self, then_quit: bool = False) -> None:
        from .dialogs import ExportDialog

        self._open(ExportDialog(self, then_quit=then_quit))

    @on(ChunkBoard.Opened)
    def _open_chunk(self, event: ChunkBoard.Opened) -> None:
        from .dialogs import ChunkDialog

        self._open(ChunkDialog(self.query_one(ChunkBoard).run, event.chunk_id))  # a shelf: the board's document

    @on(TimelineView.Opened)
    def _open_lane(self, event: TimelineView.Opened) -> None:
        from .dialogs import ChunkDialog

        self._open(ChunkDialog(event.run, event.chunk_id))

    def _open(self, dialog: Screen, callback=None) -> None:
        """Open a dialog over this screen, unless another already is (keys come in bursts: a second Enter or x
        arrives before the first dialog is on screen)."""
        if self.app.screen is self:
            self.app.push_screen(dialog, callback)

    # ------------------------------------------------------------------ state for quitting

    @property
    def unsaved(self) -> int:
        """Cards never written to a deck: none once this screen's last export is current; before any export
        here, those an earlier run of the session did not write either (a resumed, exported session has none)."""
        cards = self.cards()
        if not cards or self.exported == (self.review.version, len(cards)):
            return 0
        if self.exported is None:
            return sum(1 for c in cards if c.id not in self.job.written_ids)
        return len(cards)

    def mark_exported(self, path: Path, stamps: NoteStamps | None = None) -> None:
        self.exported = (self.review.version, len(self.cards()))
        if self.store is not None:
            try:
                if stamps:
                    self.store.save_note_stamps(stamps)
                self.store.mark_exported(self.run.session_id, path)
            except StoreError:
                pass  # the deck is written; only the "exported" mark in the sessions list is missing
        self.record_count()

    def deck_title(self) -> str:
        """The title the deck is named after: the document's, else the summary's (``Run.title``)."""
        return self.run.title

    @property
    def output(self) -> Path:
        return self.job.output

    def export_options(self, *, force: bool | None = None) -> ExportOptions:
        """The export's defaults: the settings', the deck named after the run's title."""
        return self.job.export_options(force=force, title=self.deck_title())

    def deck_groups(self, options: ExportOptions) -> list[tuple[list[Card], ExportOptions]]:
        return [(self.cards(), options)]

    def mark_sent(self) -> None:
        """The cards as they are now are in Anki: quitting loses nothing."""
        self.exported = (self.review.version, len(self.cards()))

    def record_count(self) -> None:
        """Keep the session's card count (sessions list, resume question) equal to what an export writes."""
        if self.store is not None and not self.run.halted:
            try:
                self.store.set_cards(self.run.session_id, len(self.cards()))
            except StoreError:
                pass

    def _commit_decision(self, what: str, card: Card) -> None:
        assert self.store is not None
        try:
            self.store.record_decision(self.run.session_id, card, deleted=what == "delete")
        except StoreError as exc:
            self.app.notify(f"{exc}. The change holds until you quit; export to keep it.", severity="error")
            return
        self._count_stale = True  # written on the next refresh: a burst of deletes costs one write


def _provider_label(job: Job) -> str:
    settings = job.settings
    if not settings.online:
        return "offline generator" + (" (demo)" if settings.demo else "")
    host = urlsplit(settings.base_url).netloc if settings.base_url else "api.openai.com"
    return f"{settings.model} · {host or settings.base_url}"
