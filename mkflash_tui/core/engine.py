"""The Run: one generation job over one document — orchestration and events.

A face (the headless CLI or the TUI) builds a ``Run``, awaits ``summarize()``, then schedules one
``process_chunk(chunk_id)`` coroutine per chunk however it likes (a TaskGroup, Textual workers) and draws the
typed events the run reports. The stages it joins are rooms of their own: ``calls`` (the retry layer, with the
throttle handed in), ``transport`` (requests to answers), ``card_call`` (a chunk in one request, in parts or in
halves), ``summary``, ``cards`` (drafts to the deck), ``journal`` (answers kept and found again) and
``fitting`` (the server's window).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable

from .allot import wanted_per_chunk
from .calls import Caller
from .card_call import CardCall, PromptCutWatch, card_request
from .cards import CardBook, bound_drafts
from .chunk_states import ChunkStates
from .control import Control, RunCancelled, RunHalted
from .fitting import ServerWindow
from .journal import Journal, RunJournal
from .limiter import Limiter
from .models import (
    DEFAULT_CONCURRENCY,
    Card,
    Chunk,
    ChunkStatus,
    Document,
    Event,
    LimitChanged,
    Notice,
    RunFinished,
    RunSettings,
    RunStats,
    Span,
    SpanKind,
    Summary,
    Usage,
)
from .parsing import OutputError, excerpt
from .providers.base import ContextTooLong, GenerationResult, Provider, RequestRejected, RunRefused, TransientError
from .store import cache_key
from .summary import SummaryMaker
from .throttle import Throttle
from .transport import LiveTransport, Transport

__all__ = ["DEFAULT_CONCURRENCY", "ChunkStatus", "Run", "RunCancelled", "RunHalted", "RunSettings"]

Listener = Callable[[Event], None]


class Run:
    """One generation job. Not thread-safe: use it from one event loop. ``throttle``: one shared with other runs
    (else the run has its own); ``transport``: how requests are answered (else live calls to ``provider``)."""

    def __init__(
        self,
        document: Document,
        chunks: list[Chunk],
        provider: Provider,
        settings: RunSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
        rng: random.Random | None = None,
        journal: Journal | None = None,
        session_id: str | None = None,
        use_cache: bool = True,
        summary: Summary | None = None,
        known_keys: dict[str, str] | None = None,
        previous_cards: Iterable[Card] = (),
        exported_ids: Iterable[str] = (),
        keep_ids: Iterable[str] = (),
        throttle: Throttle | None = None,
        transport: Transport | None = None,
        stored_cards: dict[str, list[Card]] | None = None,
    ) -> None:
        self.document = document
        self.chunks = chunks
        self.provider = provider
        self.settings = settings or RunSettings()
        self.clock = clock
        self._t0 = clock()
        self._listeners: list[Listener] = []
        wanted = wanted_per_chunk(chunks, self.settings.cards_total)
        self.cards_total = sum(wanted)
        self.control = Control()
        self.journal = RunJournal(journal, session_id, self.control, use_cache=use_cache, known_keys=known_keys)
        self.chunk_states = ChunkStates(chunks, wanted, self.settings, self.journal, emit=self._emit, now=self.now)
        self.status = self.chunk_states.status
        self.book = CardBook(previous_cards, exported_ids, keep_ids, drop_flagged=self.settings.drop_flagged,
                             stored=stored_cards)  # fmt: skip
        self.stats = RunStats()
        self.summary: Summary | None = None
        self.throttle = throttle or Throttle(self.settings.concurrency,
                                             on_change=lambda n: self._emit(LimitChanged(self.now(), n)))  # fmt: skip
        self.caller = Caller(transport or LiveTransport(provider), self.settings, self.throttle, self.stats,
                             check=self.control.check, emit=self._emit, now=self.now, clock=clock, sleep=sleep,
                             rng=rng or random.Random())  # fmt: skip
        self.window = ServerWindow(self.settings.window, compact=self.settings.compact)
        self._summary = SummaryMaker(document, chunks, self.settings, caller=self.caller, window=self.window,
                                     journal=self.journal, control=self.control, stats=self.stats, kept=summary,
                                     learn=self._learn_window, emit=self._emit, now=self.now)  # fmt: skip
        self._prompt_cuts = PromptCutWatch()
        self._summary_lock = asyncio.Lock()
        self._finished_reported = False
        self._cards_cache: tuple[int, list[Card]] | None = None
        self.caller.transport.fit(self.window.window)

    # ------------------------------------------------------------------ state, events and the limiter

    session_id = property(lambda self: self.journal.session_id)
    halted = property(lambda self: self.control.halted, doc="the store failed: no new requests")
    from_cache = property(lambda self: self.journal.from_cache, doc="chunks answered by an earlier run")
    repeats = property(lambda self: self.journal.repeats, doc="chunks answered by another of the same text")
    fatal = property(lambda self: self.control.fatal, doc="why the server refused the whole run")
    refusal = property(lambda self: self.control.refusal)
    cancelled = property(lambda self: self.control.cancelled)
    quality = property(lambda self: self.book.quality, doc="what the quality gate flagged and dropped")
    previous_cards = property(lambda self: self.book.previous_cards)
    limiter: Limiter = property(lambda self: self.throttle.limiter)  # type: ignore[assignment]

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every event from now on (synchronously, on the run's loop)."""
        self._listeners.append(listener)

    def now(self) -> float:
        return self.clock() - self._t0

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    @property
    def title(self) -> str:
        """The one title shown and exported: the document's own when it has one, else the summary's."""
        if self.document.has_title or self.summary is None or not self.summary.title:
            return self.document.title
        return self.summary.title

    def set_concurrency(self, limit: int) -> None:
        """Resize the shared limiter (and the most it may grow back to) while the run goes on."""
        self.caller.set_concurrency(limit)

    def _learn_window(self, exc: ContextTooLong, tokens: int) -> None:
        """A refusal for length tells the window: said once, and every later request is shaped to it."""
        sentence = self.window.learn(window=exc.window, prompt_tokens=exc.prompt_tokens, tokens=tokens)
        self.caller.transport.fit(self.window.window)
        if sentence:
            self._emit(Notice(self.now(), sentence))

    # ------------------------------------------------------------------ summary

    async def summarize(self) -> Summary:
        """Make (once) the title and summary every chunk call carries. Raises RunCancelled if refused."""
        async with self._summary_lock:
            if self.summary is not None:
                return self.summary
            if self.fatal or self.cancelled:
                raise RunCancelled(self.fatal or "cancelled")
            self.caller.start()
            self.summary = await self._summary.make(self.provider)
            return self.summary

    # ------------------------------------------------------------------ chunks

    def queue_all(self) -> list[str]:
        return self.chunk_states.queue_all()  # every chunk reported queued; their ids in document order

    async def process_chunk(self, chunk_id: str) -> ChunkStatus:
        """Generate one chunk's cards: limiter, retries and typed events included.

        Never raises for a failed chunk (its status says why); re-raises ``CancelledError`` after marking the
        chunk cancelled.
        """
        status = self.status[chunk_id]
        chunk = status.chunk
        if status.state.finished:
            return status
        if self.summary is None:
            try:
                await self.summarize()
            except RunCancelled:
                return self._fail_unsent(status)
        if self.control.stopped():
            return self._fail_unsent(status)
        if status.cards_wanted == 0:
            return self.chunk_states.skipped(status)
        request = card_request(status, self.summary, self.settings, compact=self.window.compact)
        asked = self.now()
        key = cache_key("chunk", self.provider.cache_identity, request.key_material())
        key, cached, where = await self.journal.answer(chunk.id, key)
        if cached is not None:
            # Answered before (an earlier run, the one a crash interrupted, or another chunk of the same text):
            # no call, same cards, same ids.
            status.started_at = status.finished_at = self.now()
            self._emit(Span(self.now(), asked, SpanKind.CACHE, chunk.id, chunk.index, where))
            return await self._finish(status, key, GenerationResult(cached.drafts, Usage(), cached.raw), store=False)
        future = self.journal.sending(key)
        task = asyncio.current_task()
        self.control.track(task)
        status.started_at = None
        status.reason = ""
        states = self.chunk_states
        call = CardCall(self.caller, self.window, status, request, on_tokens=states.progress(status),
                        on_attempt=lambda attempt: states.started(status, attempt),
                        on_retry=lambda attempt, wait, reason: states.retrying(status, attempt, wait, reason),
                        learn=self._learn_window, emit=self._emit, now=self.now,
                        cut_off_retries=self.settings.cut_off_retries)  # fmt: skip
        try:
            result = await call.run()
            cut = self._prompt_cuts.reason(result, self.window.request_tokens(chunk.tokens),
                                           getattr(self.provider, "where", "the server"))  # fmt: skip
            if cut:
                raise RunRefused(cut)
            if not future.done():
                future.set_result(result)
        except asyncio.CancelledError:
            states.fail(status, self.fatal or "cancelled", cancelled=self.fatal is None)
            raise
        except RunRefused as exc:
            self.control.refuse(str(exc), exc)
            return states.fail(status, str(exc))
        except RunHalted:
            return self._fail_unsent(status)
        except OutputError as exc:
            status.usage += getattr(exc, "usage", Usage())
            return states.fail(status, f"unreadable model output: {exc}", raw=exc.raw)
        except ContextTooLong as exc:
            # Even its smallest part does not fit: the run cannot succeed as planned. Say it once, with the numbers.
            reason = f"{exc}; lower --chunk-tokens, or give the server a larger context"
            self.control.refuse(reason)
            return states.fail(status, self.fatal or reason)
        except (TransientError, RequestRejected) as exc:
            return states.fail(status, str(exc))
        finally:
            self.control.untrack(task)
            self.journal.sent(key, future)
        status.usage += result.usage
        self.stats.usage += result.usage
        return await self._finish(status, key, result)

    async def _finish(self, status: ChunkStatus, key: str, result: GenerationResult, *,
                      store: bool = True) -> ChunkStatus:  # fmt: skip
        """Make the cards, commit them (when there is a journal), and only then report the chunk finished."""
        chunk = status.chunk
        drafts, trimmed = bound_drafts(result.drafts, status.cards_wanted)
        trimmed[:0] = result.notes
        raw = excerpt(result.raw)
        cards = self.book.make(chunk, drafts, markdown=self.provider.online)
        status.key = key
        if store:
            self.journal.save_chunk(chunk, key, drafts, raw, result.usage, cards, status.cards_wanted)
            await asyncio.sleep(0)  # let the loop breathe between commits when many chunks finish at once
        else:
            self.journal.chunk_done(chunk, key, cards, status.cards_wanted)
        return self.chunk_states.done(status, cards, result.usage, raw=raw, trimmed=trimmed, nothing=result.nothing)

    def _fail_unsent(self, status: ChunkStatus) -> ChunkStatus:
        """A chunk that will not be sent: the run was refused, halted or cancelled."""
        reason, cancelled = self.control.unsent_reason()
        return self.chunk_states.fail(status, reason, cancelled=cancelled)

    # ------------------------------------------------------------------ control

    def cancel(self) -> None:
        """Cancel every outstanding call; finished chunks keep their cards."""
        self.control.cancel()

    def replace_provider(self, provider: Provider) -> None:
        """Go on with another provider after a refusal (the user fixed the key, the address or the model):
        the refusal is forgotten and finished chunks keep their cards; ``retry_failed`` then sends the rest.
        The caller closes the old provider."""
        self.provider = provider
        self.caller.transport = LiveTransport(provider)
        self.caller.transport.fit(self.window.window)
        self.control.forgive()

    def retry_failed(self) -> list[str]:
        """Put failed and cancelled chunks back in the queue; returns their ids for the face to schedule."""
        if self.fatal:
            return []
        self.control.cancelled = False
        self._finished_reported = False
        return self.chunk_states.requeue_failed()

    async def run(self, chunk_ids: Iterable[str] | None = None) -> None:
        """Convenience for headless use: summary, then every chunk concurrently in a TaskGroup."""
        ids = list(chunk_ids) if chunk_ids is not None else self.queue_all()
        try:
            await self.summarize()
            async with asyncio.TaskGroup() as group:
                for chunk_id in ids:
                    group.create_task(self.process_chunk(chunk_id))
        except RunCancelled:
            for chunk_id in ids:
                if not self.status[chunk_id].state.finished:
                    self._fail_unsent(self.status[chunk_id])
        except asyncio.CancelledError:
            self.cancel()
            raise
        self.report_finished()

    def report_finished(self) -> None:
        """Emit RunFinished once all scheduled work is over (faces call this when their workers are done), and
        keep what the run learned about its server for the next (nothing is kept from a refused run)."""
        if self._finished_reported:
            return
        self._finished_reported = True
        if not self.fatal:
            self.journal.save_server_facts(self.provider.cache_identity, self.caller.server_facts())
        counts = self.counts()
        self._emit(RunFinished(self.now(), done=counts["done"], failed=counts["failed"], cards=len(self.cards()),
                               fatal=self.fatal, cancelled=self.cancelled))  # fmt: skip

    async def aclose(self) -> None:
        """Close the provider's connections."""
        await self.provider.aclose()

    # ------------------------------------------------------------------ results

    def server_report(self) -> dict | None:
        """What the run knows of how its server takes requests (``--json``'s ``server``), None offline."""
        return self.caller.server_report()

    def counts(self) -> dict[str, int]:
        """Chunks by state: done (or skipped), failed, cancelled (or not sent), running, and the total."""
        return self.chunk_states.counts()

    def failures(self) -> list[ChunkStatus]:
        return self.chunk_states.failures()

    def cards(self) -> list[Card]:
        """Every card made so far, in input order, as the deck has them (``CardBook.deck``); made again only after
        a chunk has finished (the faces ask for it many times a second)."""
        revision = self.chunk_states.revision
        if self._cards_cache is None or self._cards_cache[0] != revision:
            self._cards_cache = (revision, self.book.deck(self.status[c.id].cards for c in self.chunks))
        return list(self._cards_cache[1])

    def tally(self) -> dict[str, int]:
        """How the finished chunks' cards became the deck (``CardBook.tally``)."""
        self.cards()
        return self.book.tally()

    def kept_of(self, chunk_id: str) -> int:
        """The cards this chunk added to the deck when it finished (``CardBook.kept_of``)."""
        return self.book.kept_of(chunk_id)
