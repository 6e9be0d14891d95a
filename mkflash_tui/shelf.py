"""A shelf: many documents in one run. One Job (and one session) per document, so each resumes, continues after
edits and keeps its GUIDs on its own; one limiter, one throttle and one client for all of them; one deck with a
subdeck per document. ``mkflash-tui generate notes/ a.pdf b.md -o course.apkg`` comes here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .core import fitting
from .core.chunking import ChunkingError
from .core.deck import ExportOptions, clean_deck_name, note_guid
from .core.engine import Run
from .core.models import Card, ChunkStatus, RunStats, Usage
from .core.near import NearIndex
from .core.plan import Estimate
from .core.providers.discovery import ServerInfo
from .core.review import apply_decisions
from .core.sources import SourceError, read_source
from .core.sources.gather import Gathered
from .core.store import Store, StoreError
from .core.throttle import Throttle
from .job import Job, make_provider, prepare


@dataclass(frozen=True, slots=True)
class Gone:
    """A document an earlier run of the job read that this one no longer has: its session's cards, all stale."""

    session_id: str
    title: str
    stem: str  # its file's name without the suffix: the tag its cards had
    cards: list[Card]


@dataclass(slots=True)
class Shelf:
    """The documents of one run, in order, each its own Job, and what could not be read."""

    settings: Settings
    inputs: list[str]  # what the user asked to read (paths, folders, addresses), as the job's identity
    jobs: list[Job]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, the sentence saying why)
    deck: str = ""
    job_id: str | None = None
    desk: Any = None  # with --batch: the job's batches (core.batch.BatchDesk), once its runs are made
    gone: list[Gone] = field(default_factory=list)  # documents the job read before that are no longer given

    @property
    def output(self) -> Path:
        return self.settings.output or Path(f"{_file_stem(self.deck)}.apkg")

    def estimate(self) -> Estimate:
        """The documents' estimates together (the price unknown if any one's is)."""
        parts = [j.estimate for j in self.jobs]
        costs = [p.cost_usd for p in parts]
        batch_costs = [p.batch_cost_usd for p in parts]
        return Estimate(
            chunks=sum(p.chunks for p in parts),
            cards=sum(p.cards for p in parts),
            input_tokens=sum(p.input_tokens for p in parts),
            output_tokens=sum(p.output_tokens for p in parts),
            cost_usd=None if any(c is None for c in costs) else sum(costs),  # type: ignore[arg-type]
            batch_cost_usd=None if any(c is None for c in batch_costs) else sum(batch_costs),  # type: ignore[arg-type]
        )

    def read(self, name: str, server: ServerInfo | None) -> Job | None:
        """Read ``name`` into its Job and add it (None, and skipped with its sentence, when it cannot be read)."""
        settings = self.settings
        own = dataclasses.replace(settings, input=name, output=None, deck=None, remembered=list(settings.remembered))
        try:
            job = prepare(own, read_source(name), server=server)
        except (SourceError, ChunkingError) as exc:
            self.skipped.append((name, str(exc)))
            return None
        if not self.jobs:
            # The run's own settings take what fitting the server changed (the same for every document).
            settings.chunk_tokens, settings.overlap_tokens = job.settings.chunk_tokens, job.settings.overlap_tokens
            settings.concurrency = job.settings.concurrency
        self.jobs.append(job)
        return job

    def estimated_seconds(self) -> float | None:
        """How long the calls of every document take together: one wave of summaries, then every document's
        calls in waves of the server's slots (None: the server's speed is not known)."""
        times = [j.estimated_seconds() for j in self.jobs]
        if not self.jobs or any(t is None for t in times):
            return None
        slots = max(1, self.jobs[0].slots)
        per_call, pending, summary = [], 0, False
        for job, seconds in zip(self.jobs, times, strict=True):
            answered = job.plan.done_earlier
            todo = len(job.chunks) - answered
            waves = math.ceil(todo / slots) + (1 if job.kept_summary is None and todo else 0)
            if waves:
                per_call.append(seconds / waves)  # type: ignore[operator]
            pending += todo
            summary = summary or (job.kept_summary is None and todo > 0)
        if not per_call:
            return 0.0
        return fitting.wall_seconds(pending, slots, sum(per_call) / len(per_call), summary=summary)

    @property
    def over_budget(self) -> bool:
        cost, limit = self.price, self.settings.max_cost
        return limit is not None and cost is not None and cost > limit

    @property
    def price(self) -> float | None:
        """The estimated price of every document as it will be sent (through the batch engine with --batch)."""
        total = self.estimate()
        return total.batch_cost_usd if self.settings.batch else total.cost_usd

    def continue_from(self, store: Store) -> None:
        """Each document continues its own earlier session (``Job.continue_from``). Raises StoreError."""
        for job in self.jobs:
            job.continue_from(store)
            job.learn_speed(store)
        self.gone = [] if self.settings.fresh else gone_documents(self, store)

    def open(self, store: Store) -> list[tuple[str, bool]]:
        """Open each document's session and the job that lists them. Returns (session id, continued) per
        document. Raises StoreError."""
        opened = [job.open_session(store) for job in self.jobs]
        # A removed document's session stays in the job, so its stale cards stay in the deck until pruned.
        sessions = [s for s, _ in opened] + [g.session_id for g in self.gone]
        self.job_id = store.open_job(self.inputs, title=self.deck, deck=self.deck, sessions=sessions)
        return opened

    def make_runs(self, store: Store | None, sessions: list[str | None], *, stream: bool = False, pace: float = 0.0,
                  batch_emit=None, **run_kwargs) -> list[Run]:  # fmt: skip
        """One Run per document, sharing one throttle (the calls in flight across all documents) and, online,
        one provider (one connection pool, one learned dialect); ``run_kwargs`` go to every Run. With ``--batch``,
        one ``BatchDesk`` (``self.desk``) for all of them, telling ``batch_emit`` how its batches go."""
        throttle = Throttle(self.settings.concurrency)
        shared = None
        if self.settings.online:
            shared = make_provider(self.settings, self.jobs[0].document, stream=stream)
            if store is not None and not self.settings.fresh:
                from .job import learn_server

                learn_server(shared, store)
        if self.settings.batch and shared is not None and store is not None and self.job_id is not None:
            # One desk for the job: every document's chunks in the same input files (custom_id session:chunk).
            from .core.batch import BatchTransport
            from .core.transport import LiveTransport
            from .job import batch_desk

            self.desk = batch_desk(self.settings, shared, store, self.job_id, emit=batch_emit)
            return [job.make_run(stream=stream, pace=pace, store=store, session_id=session, throttle=throttle,
                                 provider=shared, transport=BatchTransport(LiveTransport(shared), self.desk, session),
                                 **run_kwargs)
                    for job, session in zip(self.jobs, sessions, strict=True)]  # fmt: skip
        return [job.make_run(stream=stream, pace=pace, store=store, session_id=session, throttle=throttle,
                             provider=shared, **run_kwargs)
                for job, session in zip(self.jobs, sessions, strict=True)]  # fmt: skip

    def gone_options(self, gone: Gone) -> ExportOptions:
        """A removed document's options: the first document's, in the removed one's own subdeck."""
        options = self.export_options(self.jobs[0], gone.title)
        return dataclasses.replace(options, source_stem=gone.stem)

    def export_options(self, job: Job, title: str) -> ExportOptions:
        """A document's options: its subdeck ``Deck::Document`` (and its chapters under it with --subdecks)."""
        options = job.export_options(title=title)
        return dataclasses.replace(options, deck=f"{self.deck}::{clean_deck_name(title).replace('::', ' ')}",
                                   format=type(options.format).for_path(self.output, self.settings.format))  # fmt: skip


def subdeck_titles(shelf: Shelf, runs: list[Run]) -> list[str]:
    """Each document's subdeck title: its title, with its file name after it when another document has the same
    one (two chapters titled "Introduction", or two summaries naming the same subject), so no two merge."""
    titles = [run.title for run in runs]
    seen: dict[str, int] = {}
    for title in titles:
        seen[title.casefold()] = seen.get(title.casefold(), 0) + 1
    out, used = [], set()
    for job, title in zip(shelf.jobs, titles, strict=True):
        name = title
        if seen[title.casefold()] > 1:
            name = f"{title} ({Path(job.settings.input).name or job.settings.input})"
        base, n = name, 2
        while name.casefold() in used:
            name, n = f"{base} {n}", n + 1
        used.add(name.casefold())
        out.append(name)
    return out


def is_shelf(names: list[str], from_list: str | None) -> bool:
    """Whether these inputs are a shelf (more than one, a folder, a list) rather than one document."""
    return bool(from_list) or len(names) > 1 or any(Path(n).expanduser().is_dir() for n in names if n != "-")


def prepare_shelf(settings: Settings, gathered: Gathered, names: list[str], *, server: ServerInfo | None = None,
                  on_read=None) -> Shelf:  # fmt: skip
    """Read every input of ``gathered`` into its Job; one that cannot be read is skipped with its sentence.
    ``on_read(done, total)`` is told as each is read."""
    shelf = Shelf(settings, names, [], list(gathered.skipped))
    for n, name in enumerate(gathered.inputs, 1):
        shelf.read(name, server)
        if on_read:
            on_read(n, len(gathered.inputs))
    shelf.deck = clean_deck_name(settings.deck or default_deck(gathered, shelf.jobs))
    return shelf


def default_deck(gathered: Gathered, jobs: list[Job]) -> str:
    """The deck's name: the folder's, when one folder was given; else the first document's title."""
    if len(gathered.folders) == 1:
        return gathered.folders[0].resolve().name or "Deck"
    return jobs[0].document.title if jobs else "Deck"


def shelf_cards(shelf: Shelf, runs: list[Run], store: Store | None) -> tuple[list[list[Card]], int]:
    """Each document's cards as an export writes them (its review decisions applied), less the cards that
    repeat a card of an earlier document (``NearIndex``, in document order; an edited or exported card is never
    a repeat). Returns the cards per document and how many repeats across documents were left out."""
    index = NearIndex()
    out: list[list[Card]] = []
    repeats = 0
    for job, run in zip(shelf.jobs, runs, strict=True):
        try:
            decisions = store.decisions(run.session_id) if store is not None and run.session_id else {}
        except StoreError:
            decisions = {}
        kept = []
        for card in apply_decisions(run.cards(), decisions):
            if index.check(card, keep=card.edited or card.id in job.written_ids) is not None:
                repeats += 1
                continue
            kept.append(card)
        out.append(kept)
    return out, repeats


def gone_documents(shelf: Shelf, store: Store) -> list[Gone]:
    """The documents the job's earlier run had that this run does not (removed from the folder or the list): the
    cards of theirs that were written to a deck or sent to Anki, their review decisions applied, each marked
    stale. Raises StoreError."""
    earlier = store.find_job(shelf.inputs)
    if earlier is None:
        return []
    current = {j.previous.session_id for j in shelf.jobs if j.previous is not None}
    out = []
    for session_id in earlier.sessions:
        if session_id in current:
            continue
        info = store.session_info(session_id)
        if info is None:
            continue
        cards = [dataclasses.replace(card, stale=True)
                 for stored in store.stored_chunks(session_id) if stored.state in ("done", "stale")
                 for card in (stored.cards or ())]  # fmt: skip
        written = store.note_stamps(note_guid(c.id) for c in cards)  # only what reached a deck or Anki
        cards = [c for c in apply_decisions(cards, store.decisions(session_id)) if note_guid(c.id) in written]
        if cards:
            out.append(Gone(session_id, info.title or info.input_name, stem_of(info.input_name), cards))
    return out


def stem_of(name: str) -> str:
    """A document's stem (its file's name without the suffix) as the readers make it."""
    return Path(name).stem or "deck"


def _file_stem(deck: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_. " else "-" for c in deck.split("::")[0]).strip(" .")
    return stem or "deck"


class ShelfProgress:
    """A shelf's runs seen as one run by what shows their totals (the app's bar): the chunks by state, the
    tokens, the shared limiter and provider, and why the run stopped if it did."""

    def __init__(self, title: str, runs: list[Run], *, job_id: str | None = None) -> None:
        self.title = title
        self.runs = runs
        self.status = _Statuses(runs)
        self.session_id = job_id  # the job's: what a face names as the place the work is kept

    def subscribe(self, listener) -> None:
        """Call ``listener(event, document index)`` with every event of every document."""
        for index, run in enumerate(self.runs):
            run.subscribe(lambda event, index=index: listener(event, index))

    @property
    def previous_cards(self) -> list[Card]:
        return [card for run in self.runs for card in run.previous_cards]

    def cancel(self) -> None:
        for run in self.runs:
            run.cancel()

    def report_finished(self) -> None:
        for run in self.runs:
            run.report_finished()

    async def aclose(self) -> None:
        """Close every provider once (online, the documents share one)."""
        closed: set[int] = set()
        for run in self.runs:
            if id(run.provider) not in closed:
                closed.add(id(run.provider))
                await run.provider.aclose()

    provider = property(lambda self: self.runs[0].provider)  # one provider online; the first one's offline
    limiter = property(lambda self: self.runs[0].limiter)  # one throttle for every document

    def now(self) -> float:
        return self.runs[0].now()

    @property
    def fatal(self) -> str | None:
        return next((r.fatal for r in self.runs if r.fatal), None)

    @property
    def halted(self) -> str | None:
        return next((r.halted for r in self.runs if r.halted), None)

    @property
    def cancelled(self) -> bool:
        return any(r.cancelled for r in self.runs)

    @property
    def stats(self) -> RunStats:
        usage = batched = Usage()
        for run in self.runs:
            usage += run.stats.usage
            batched += run.stats.batch_usage
        return RunStats(requests=sum(r.stats.requests for r in self.runs), usage=usage, batch_usage=batched)

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for run in self.runs:
            for key, value in run.counts().items():
                total[key] = total.get(key, 0) + value
        return total


class _Statuses:
    """Every document's chunk statuses, for reading through (two documents may hold the same chunk)."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs

    def values(self) -> list[ChunkStatus]:
        return [s for run in self.runs for s in run.status.values()]
