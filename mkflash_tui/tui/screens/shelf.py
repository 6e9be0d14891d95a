"""ShelfScreen: a shelf of documents in one run screen — a line per document, the highlighted document's chunks,
one review of every document's cards (filtered by document with ``o``), and one export of the whole job.

It is the run screen over a ``ShelfProgress`` (every document's runs seen as one by the bar and the quit
dialog); what differs is here: one worker per document for its summary (all at once, under the one throttle),
the chunks of each document scheduled as its summary is made, the cards of all documents checked for repeats in
document order, and each card's decisions kept in its own document's session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
from collections import Counter
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Static
from textual.worker import Worker, WorkerState

from ... import format as fmt
from ...core.deck import ExportFormat, ExportOptions, NoteStamps, clean_deck_name
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
from ...core.near import NearIndex
from ...core.review import Decisions
from ...core.store import Store, StoreError
from ...job import forget_unused_session
from ...shelf import Shelf, ShelfProgress, subdeck_titles
from ..text import plain
from ..widgets.cards import CardTable
from ..widgets.chunk_board import ChunkBoard
from ..widgets.document_list import DocumentList
from ..widgets.key_bar import KeyBar
from ..widgets.run_bar import RunBar
from ..widgets.run_log import RunLog
from ..widgets.timeline import TimelineView
from .run import GC_THRESHOLDS, MAX_FAILURE_NOTICES, START_BATCH, ReviewView, RunScreen, _provider_label, view_tabs


class ShelfScreen(RunScreen):
    """Drives every document's Run and shows them as one job."""

    BINDINGS = [
        *RunScreen.BINDINGS,
        Binding("o", "pick_document", "Document", tooltip="show one document's chunks and cards (again: all)"),
    ]

    def __init__(self, shelf: Shelf, runs: list[Run], *, store: Store | None = None,
                 decisions: dict[str, Decisions] | None = None, continued: list[bool] | None = None,
                 view: str = "generate") -> None:  # fmt: skip
        self.shelf = shelf
        self.runs = runs
        self.continued = continued or [True] * len(runs)
        # What a document is called here: its title, and its file when the title does not say which it is.
        self.names = [f"{job.document.title} · {Path(job.settings.input).name or job.settings.input}"
                      if Path(job.settings.input).stem != job.document.title else job.document.title
                      for job in shelf.jobs]  # fmt: skip
        self.names += [f"{gone.title} (removed)" for gone in shelf.gone]
        self._doc_of_card: dict[str, int] = {}
        self._doc_pending: Counter[int] = Counter()
        self._doc_of_worker: dict[Worker, tuple[int, str]] = {}
        self._cards_key: tuple | None = None
        self._cards: list[Card] = []
        self._shelf_failures: list[tuple[int, ChunkFailed]] = []
        self.kept_by_doc: Counter[int] = Counter()
        self._kept_by_doc_chunk: dict[int, Counter[str]] = {}
        self.document: int | None = None  # the document Review shows (None: all of them)
        self.current = 0  # the document the board shows
        merged: Decisions = {}
        for session_decisions in (decisions or {}).values():
            merged.update(session_decisions)
        progress = ShelfProgress(shelf.deck, runs, job_id=shelf.job_id)
        super().__init__(shelf.jobs[0], progress, store=store, decisions=merged, view=view, resumed=True,  # type: ignore[arg-type]
                         desk=shelf.desk)
        if merged:
            for gone in shelf.gone:  # a removed document's own decisions are applied already
                self.review.adopt(gone.cards, {})

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield RunBar(self.run, _provider_label(self.job), cards=lambda: self.card_count, id="run-bar")  # type: ignore[arg-type]
        yield view_tabs()
        with ContentSwitcher(initial="generate", id="views"):
            with Vertical(id="generate"):
                yield Static("", id="batch-lines")
                yield DocumentList(self.runs, self.names, kept=lambda index: self.kept_by_doc.get(index, 0),
                                   id="documents")  # fmt: skip
                yield ChunkBoard(self.runs[0], kept=self._kept_on_board, id="board")
                yield RunLog(id="log", max_lines=5000)
            yield ReviewView(id="review")
            yield TimelineView(self.runs[0], self.timelines[self.runs[0]], id="timeline")
        yield KeyBar()

    def drawn_runs(self) -> list[Run]:
        return self.runs

    def focus_first(self) -> None:
        self.query_one(DocumentList).focus()

    def _kept_on_board(self, chunk_id: str) -> int:
        return self._kept_by_doc_chunk.get(self.current, Counter()).get(chunk_id, 0)

    @on(DocumentList.Highlighted)
    def _document_highlighted(self, event: DocumentList.Highlighted) -> None:
        if event.index != self.current and event.index < len(self.runs):
            self.current = event.index
            run = self.runs[event.index]
            self.query_one(ChunkBoard).show(run)
            self.query_one(TimelineView).show(run, self.timelines[run])

    @on(DocumentList.Chosen)
    def _document_chosen(self) -> None:
        self.query_one(ChunkBoard).focus()

    def _show_view(self, name: str) -> None:
        switcher = self.query_one(ContentSwitcher)
        if name == "generate" and switcher.current != name:
            switcher.current = name
            self.query_one(DocumentList).focus()
            return
        super()._show_view(name)

    # ------------------------------------------------------------------ driving the runs

    async def close_run(self) -> None:
        self.record_count()
        self.run.cancel()
        await self.run.aclose()
        for run, continued in zip(self.runs, self.continued, strict=True):
            forget_unused_session(self.store, run.session_id, run, resumed=continued)

    async def _summary_then_chunks(self) -> None:
        if self.runs[0].provider.online:
            await asyncio.to_thread(importlib.import_module, "openai")  # ~0.7 s, off the loop
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.finished = False
        self._pending += len(self.runs)  # each document's worker holds one until its chunks are scheduled
        for index in range(len(self.runs)):
            worker = self.run_worker(self._document(index), group="documents", name=f"document {index + 1}",
                                     exit_on_error=False)  # fmt: skip
            self._doc_of_worker[worker] = (index, "")
            self._doc_pending[index] += 1

    async def _document(self, index: int) -> None:
        """One document: its summary (every document's at once, under the one throttle), then its chunks."""
        run = self.runs[index]
        try:
            await run.summarize()
        except RunCancelled:
            pass  # its chunks are marked cancelled or refused by their workers
        await self.schedule_document(index, [c.id for c in run.chunks])

    async def schedule_document(self, index: int, chunk_ids: list[str]) -> None:
        """One worker per chunk of document ``index``, a batch per loop turn (as ``RunScreen.schedule``)."""
        self.finished = False
        self.query_one(RunBar).start()
        self._pending += len(chunk_ids)
        self._doc_pending[index] += len(chunk_ids)
        run = self.runs[index]
        for start in range(0, len(chunk_ids), START_BATCH):
            if start:
                await asyncio.sleep(0)
            for chunk_id in chunk_ids[start : start + START_BATCH]:
                worker = self.run_worker(run.process_chunk(chunk_id), group="chunks",
                                         name=f"{self.names[index]}: chunk {run.status[chunk_id].chunk.index + 1}",
                                         exit_on_error=False)  # fmt: skip
                self._doc_of_worker[worker] = (index, chunk_id)

    def worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group not in ("chunks", "documents") or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        index, chunk_id = self._doc_of_worker.pop(worker, (None, ""))
        if index is None:
            return
        if event.state is WorkerState.ERROR:
            self._log_lines.append(f"{self.run.now():7.2f}s FAILED {worker.name}: {worker.error!r}")
            self.app.notify(f"{worker.name} failed: {worker.error!r}", title="Internal error", severity="error")
            if chunk_id:
                status = self.runs[index].status[chunk_id]
                status.state, status.reason = ChunkState.FAILED, f"internal error: {worker.error}"
                status.finished_at = self.run.now()
            else:  # the document's worker: its chunks were never scheduled
                self.runs[index].cancel()
        self._doc_pending[index] -= 1
        if self._doc_pending[index] == 0:
            self.runs[index].report_finished()
        self._pending -= 1
        if self._pending == 0:
            self._all_done()

    def _all_done(self) -> None:
        super()._all_done()
        self._log_lines.append(f"{self.run.now():7.2f}s DONE  all {fmt.plural(len(self.runs), 'document')}: "
                               f"{fmt.plural(len(self.cards()), 'card')}")  # fmt: skip
        if self.run.fatal:
            return
        counts, cards = self.run.counts(), len(self.cards())
        documents = fmt.plural(len(self.runs), "document")
        if self.run.cancelled:
            self.app.notify(f"Run cancelled; {fmt.plural(cards, 'card')} kept. Press r to resume the rest.")
        elif counts["failed"]:
            self.app.notify(f"{fmt.plural(counts['failed'], 'chunk')} failed; press r to retry them. "
                            f"{fmt.plural(cards, 'card')} of {documents} ready; x exports.",
                            severity="warning")  # fmt: skip
        else:
            self.app.notify(f"Done: {fmt.plural(cards, 'card')} from {documents}. x exports the deck, a subdeck "
                            "per document.")  # fmt: skip

    def _on_event(self, event: Event, index: int = 0) -> None:  # type: ignore[override]
        """Every document's events, on this loop: record, never draw."""
        run = self.runs[index]
        name, stamp, total = self.names[index], f"{event.at:7.2f}s", len(run.chunks)
        if isinstance(event, ChunkStarted):
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._log_lines.append(f"{stamp} START {name}: chunk {event.index + 1}/{total}{attempt}")
        elif isinstance(event, SummaryStarted):
            self._log_lines.append(f"{stamp} START {name}: summary")
        elif isinstance(event, ChunkFinished):
            what = fmt.plural(len(event.cards), "card") if event.cards else f"no cards ({event.note})"
            self._log_lines.append(f"{stamp} END   {name}: chunk {event.index + 1}/{total} {what}")
            if self.decisions:
                self.review.adopt(event.cards, self.decisions)
            self._dirty_cards = True
        elif isinstance(event, ChunkRetrying):
            self._log_lines.append(f"{stamp} RETRY {name}: chunk {event.index + 1}/{total} in {event.wait:.1f}s: "
                                   f"{event.reason}")  # fmt: skip
        elif isinstance(event, ChunkFailed):
            word = "CANCELLED" if event.cancelled else "FAILED"
            self._log_lines.append(f"{stamp} {word} {name}: chunk {event.index + 1}/{total}: {event.reason}")
            if not event.cancelled and not run.fatal:
                self._shelf_failures.append((index, event))
        elif isinstance(event, SummaryFinished):
            self._log_lines.append(f"{stamp} END   {name}: summary: {event.summary.title}")
        elif isinstance(event, SummaryFailed) and not run.fatal:
            self._log_lines.append(f"{stamp} {name}: summary failed ({event.reason}); going on with the title alone")
        elif isinstance(event, LimitChanged):
            self._log_lines.append(f"{stamp} LIMIT concurrency now {event.limit}")
        elif isinstance(event, Notice):
            self._log_lines.append(f"{stamp} NOTE  {name}: {event.text}")
            self.call_later(self.app.notify, event.text, timeout=8)
        elif isinstance(event, RunFinished):
            self._log_lines.append(f"{stamp} DONE  {name}: {event.done}/{total} chunks"
                                   + (f", {event.failed} failed" if event.failed else ""))  # fmt: skip

    def refresh_views(self) -> None:
        self.query_one(DocumentList).tick()
        if self._shelf_failures:
            failures, self._shelf_failures = self._shelf_failures, []
            for index, failure in failures[:MAX_FAILURE_NOTICES]:
                self.app.notify(f"{self.names[index]}: chunk {failure.index + 1} failed: {failure.reason}",
                                severity="error")  # fmt: skip
            if len(failures) > MAX_FAILURE_NOTICES:
                self.app.notify(f"… and {len(failures) - MAX_FAILURE_NOTICES} more chunks failed.", severity="error")
        super().refresh_views()

    def action_retry_failed(self) -> None:
        if self.run.fatal and self.job.settings.online and self.finished:
            self._offer_fix()
            return
        if not self.finished:
            self.app.notify("Wait for the run to finish (or press c), then r retries what failed.", timeout=3)
            return
        todo = [(index, run.retry_failed()) for index, run in enumerate(self.runs)]
        todo = [(index, ids) for index, ids in todo if ids]
        if not todo:
            self.app.notify(self.run.fatal or "No failed chunks to retry.", timeout=4)
            return
        count = sum(len(ids) for _, ids in todo)
        self.app.notify(f"Retrying {fmt.plural(count, 'chunk')} of {fmt.plural(len(todo), 'document')}.", timeout=3)
        for index, ids in todo:
            self.run_worker(self.schedule_document(index, ids), group="schedule")

    async def go_on_with(self, fix) -> None:
        """Carry on with the corrected key, address or model: one new provider for every document."""
        from ...job import make_provider

        while not self.finished:
            await asyncio.sleep(0.05)
        settings = self.job.settings
        if fix.api_key:
            settings.api_key, settings.key_source = fix.api_key, "typed in the app"
        settings.base_url, settings.model = fix.base_url, fix.model
        old = self.runs[0].provider
        provider = make_provider(settings, self.job.document, stream=True)
        for job, run in zip(self.shelf.jobs, self.runs, strict=True):
            job.settings.api_key, job.settings.base_url, job.settings.model = (settings.api_key, settings.base_url,
                                                                               settings.model)  # fmt: skip
            run.replace_provider(provider)
            if self.store is not None and run.session_id and not run.halted:
                try:
                    self.store.set_session_spec(run.session_id, job.session_spec(), job.source)
                except StoreError:
                    pass
        await old.aclose()
        self._fatal_shown = False
        self.query_one(RunBar).provider = _provider_label(self.job)
        todo = [(index, run.retry_failed()) for index, run in enumerate(self.runs)]
        count = sum(len(ids) for _, ids in todo)
        self.app.notify(f"Going on with {settings.server()}: {fmt.plural(count, 'chunk')} to send.", timeout=4)
        for index, ids in todo:
            if ids:
                await self.schedule_document(index, ids)

    # ------------------------------------------------------------------ the cards of every document

    def cards(self) -> list[Card]:
        """What an export writes now: each document's cards (its deletions and edits applied) in document order,
        less those that repeat a card of an earlier document, then the stale cards of removed documents."""
        key = (tuple(r.chunk_states.finished for r in self.runs), self.review.version)
        if key != self._cards_key:
            index, out, of = NearIndex(), [], {}
            for doc, (job, run) in enumerate(zip(self.shelf.jobs, self.runs, strict=True)):
                for card in self.review.keep(run.cards()):
                    if index.check(card, keep=card.edited or card.id in job.written_ids) is None:
                        out.append(card)
                        of[card.id] = doc
            for offset, gone in enumerate(self.shelf.gone, len(self.runs)):
                for card in self.review.keep(gone.cards):
                    out.append(card)
                    of[card.id] = offset
            self._cards_key, self._cards, self._doc_of_card = key, out, of
        if self.shelf.settings.skip_known:
            return [c for c in self._cards if not c.known]
        return list(self._cards)

    def run_of(self, card: Card) -> Run | None:
        """The document's run that made ``card`` (None: a stale card, or one of a removed document)."""
        doc = self._doc_of_card.get(card.id)
        return self.runs[doc] if doc is not None and doc < len(self.runs) and not card.stale else None

    def _visible(self, cards=None):
        cards = self.cards() if cards is None else cards
        if self.document is not None:
            cards = [c for c in cards if self._doc_of_card.get(c.id) == self.document]
        return super()._visible(cards)

    def _count_on_tab(self, cards) -> None:
        super()._count_on_tab(cards)
        self.kept_by_doc = Counter(self._doc_of_card.get(c.id, -1) for c in cards)
        by_chunk: dict[int, Counter[str]] = {}
        for card in cards:
            if not card.stale:
                by_chunk.setdefault(self._doc_of_card.get(card.id, -1), Counter())[card.chunk_id] += 1
        self._kept_by_doc_chunk = by_chunk
        if self.document is not None and not self._filter:
            self._show_filter_count(len(self._visible(cards)), len(cards))

    def _show_filter_count(self, shown: int, total: int) -> None:
        if self.document is None:
            super()._show_filter_count(shown, total)
            return
        words = f" matching “{self._filter}”" if self._filter else ""
        text = f"{self.names[self.document]}: {shown} of {fmt.plural(total, 'card')}{words} · o: all documents"
        self.query_one("#filter-row").display = True
        self.query_one("#filter-count", Static).update(plain(text))

    def action_pick_document(self) -> None:
        """Choose the document whose chunks the board and whose cards Review show (or all of them)."""
        from .dialogs import DocumentPicker

        counts = [self.kept_by_doc.get(i, 0) for i in range(len(self.names))]
        self._open(DocumentPicker(self.names, counts, self.document), self._document_picked)

    def _document_picked(self, choice: int | None) -> None:
        if choice is None:
            return
        self.document = None if choice < 0 else choice
        if self.document is not None and self.document < len(self.runs):
            self.query_one(DocumentList).cursor = self.document
        if self.document is None and not self._filter:
            self.query_one("#filter-row").display = False
        shown = self._visible()
        self.query_one(CardTable).show(shown)
        self._update_detail()
        self._show_filter_count(len(shown), len(self.cards()))

    # ------------------------------------------------------------------ export and the store

    @property
    def output(self) -> Path:
        return self.shelf.output

    def export_options(self, *, force: bool | None = None) -> ExportOptions:
        """The whole job's defaults: the shelf's deck and file."""
        options = self.job.export_options(force=force, title=self.shelf.deck)
        chosen = ExportFormat.for_path(self.shelf.output, self.job.settings.format)
        return dataclasses.replace(options, deck=self.shelf.deck, format=chosen)

    def deck_title(self) -> str:
        return self.shelf.deck

    def deck_groups(self, options: ExportOptions) -> list[tuple[list[Card], ExportOptions]]:
        """A group per document with cards, in its subdeck ``options.deck::Document``; the dialog's choices
        (reversed cards, chapter subdecks, the format, overwriting) for all of them."""
        cards = self.cards()
        by_doc: dict[int, list[Card]] = {}
        for card in cards:
            by_doc.setdefault(self._doc_of_card[card.id], []).append(card)
        titles = subdeck_titles(self.shelf, self.runs)
        own = [self.shelf.export_options(job, title) for job, title in zip(self.shelf.jobs, titles, strict=True)]
        own += [self.shelf.gone_options(gone) for gone in self.shelf.gone]
        names = titles + [gone.title for gone in self.shelf.gone]
        groups = []
        for doc, (doc_options, title) in enumerate(zip(own, names, strict=True)):
            if by_doc.get(doc):
                deck = f"{options.deck}::{clean_deck_name(title).replace('::', ' ')}"
                groups.append((by_doc[doc], dataclasses.replace(doc_options, deck=deck, reverse=options.reverse,
                                                                subdecks=options.subdecks, format=options.format,
                                                                force=options.force)))  # fmt: skip
        return groups

    @property
    def unsaved(self) -> int:
        cards = self.cards()
        if not cards or self.exported == (self.review.version, len(cards)):
            return 0
        if self.exported is None:
            written = set().union(*(job.written_ids for job in self.shelf.jobs))
            return sum(1 for c in cards if c.id not in written and not c.stale)
        return len(cards)

    def mark_exported(self, path: Path, stamps: NoteStamps | None = None) -> None:
        self.exported = (self.review.version, len(self.cards()))
        if self.store is not None:
            try:
                if stamps:
                    self.store.save_note_stamps(stamps)
                for run in self.runs:
                    self.store.mark_exported(run.session_id, path)
                if self.shelf.job_id:
                    self.store.mark_exported(self.shelf.job_id, path)
            except StoreError:
                pass
        self.record_count()

    def record_count(self) -> None:
        if self.store is None:
            return
        self.cards()
        counts = Counter(self._doc_of_card.values())
        try:
            for doc, run in enumerate(self.runs):
                if not run.halted and run.session_id:
                    self.store.set_cards(run.session_id, counts.get(doc, 0))
        except StoreError:
            pass

    def _commit_decision(self, what: str, card: Card) -> None:
        assert self.store is not None
        doc = self._doc_of_card.get(card.id)
        if doc is None or doc >= len(self.runs):
            session = self.shelf.gone[doc - len(self.runs)].session_id if doc is not None else None
        else:
            session = self.runs[doc].session_id
        if session is None:
            return
        try:
            self.store.record_decision(session, card, deleted=what == "delete")
        except StoreError as exc:
            self.app.notify(f"{exc}. The change holds until you quit; export to keep it.", severity="error")
            return
        self._count_stale = True

    def help_page(self) -> tuple[str, list]:
        intro, sections = super().help_page()
        intro = ("mkflash-tui turns a shelf of documents into one Anki deck, a subdeck per document. Every "
                 "document's chunks are sent at once under one limit; the list shows each document, the board the "
                 "highlighted one's chunks, Review every card.")  # fmt: skip
        documents = ("Documents", [
            ("↑ ↓ in the list", "the document whose chunks the board shows"),
            ("Enter", "move among its chunks (Tab: back to the list)"),
            ("o", "one document's chunks and cards (Review), or all of them again"),
            ("3", "the Timeline of the document the board shows"),
        ])  # fmt: skip
        return intro, [sections[0], documents, *sections[1:]]

