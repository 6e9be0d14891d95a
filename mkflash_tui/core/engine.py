"""The Run: one generation job over one document, owned entirely by the engine.

A face (the headless CLI or the TUI) builds a ``Run``, awaits ``summarize()``, then schedules one
``process_chunk(chunk_id)`` coroutine per chunk however it likes (a TaskGroup, Textual workers) and draws the
typed events the run reports. Limiter, retries, cancellation, retry-failed and results all live here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import fitting, quality
from .limiter import Limiter
from .models import (
    Card,
    CardDraft,
    Chunk,
    ChunkFailed,
    ChunkFinished,
    ChunkProgress,
    ChunkQueued,
    ChunkRetrying,
    ChunkStarted,
    ChunkState,
    Document,
    Event,
    LimitChanged,
    Notice,
    RunFinished,
    RunStats,
    Summary,
    SummaryFailed,
    SummaryFinished,
    SummaryStarted,
    Usage,
    make_card_id,
)
from .parsing import OutputError, excerpt
from .pricing import context_tokens as model_context_tokens
from .prompts import COMPACT_SUMMARY_CHARS, DEFAULT_STYLE, PROMPT_VERSION, CardRequest
from .providers.base import (
    ContextTooLong,
    GenerationResult,
    Provider,
    RequestRejected,
    RunRefused,
    TransientError,
)
from .store import StoreError, cache_key
from .text import sentences, strip_controls, words
from .throttle import Throttle

DEFAULT_CONCURRENCY = 64
TOKENS_PER_CARD = 80  # default card density: one card per this many tokens of text
MAX_CARDS_PER_CHUNK = 40
SUMMARY_RESERVE_TOKENS = 1200  # prompt and answer room kept free when shrinking a document for the summary
UNREACHABLE_ATTEMPTS = 3  # a server that refuses connections is tried this often, not max_attempts times
TINY_HINT = 0.01  # a Retry-After shorter than this (0, as some servers send) is no hint: our backoff applies
MAX_ADAPTATIONS = 8  # attempts one call may spend on the server's refusals of how we ask, or on cut streams
ONE_AT_A_TIME = (
    "the server ends a running answer whenever another request arrives (llama-cpp-python does, unless started "
    "with --interrupt_requests False): sending one request at a time"
)
MAX_FIELD_CHARS = 2000  # a card's front or back; longer text is cut (and reported)
MAX_QUOTE_CHARS = 1000
SUMMARY_TRIES = 3  # a summary refused for its length is asked again this often, with less of the document
SPLIT_DEPTH = 3  # a chunk refused for its length is cut in parts this many times over at most
MIN_PART_CHARS = 300  # a part smaller than this is not cut again
CUT_PROMPT_SHARE = 0.5  # a server reading less than this share of the prompt we sent cut it (Ollama, silently)


@dataclass(slots=True)
class RunSettings:
    """What a run needs beyond its document and provider."""

    concurrency: int = DEFAULT_CONCURRENCY
    cards_total: int | None = None
    instructions: str = ""
    language: str | None = None
    style: str = DEFAULT_STYLE
    context_tokens: int | None = None
    max_attempts: int = 6  # attempts for server errors, timeouts and dropped connections
    max_rate_limited: int = 30  # 429s one call may wait out (the throttle adapts meanwhile)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_total_wait: float = 300.0
    output_repairs: int = 1  # extra attempts for output that could not be parsed
    cut_off_retries: int = 2  # extra attempts for a half-chunk whose answer was cut off again
    attempt_timeout: float | None = None  # seconds one attempt may take end to end (None: no limit)
    max_timeouts: int = 2  # attempts that timed out or went silent before the call gives up
    drop_flagged: bool = False  # drop every card the quality gate flagged (else only clearly broken ones)
    progress_interval: float = 0.1
    window: int | None = None  # tokens one request may hold, as the server said (None: it did not say)
    compact: bool = False  # the short card prompt, for a small window
    summary_input_tokens: int | None = None  # the document's share of the summary call (None: by the model)
    server_slots: int | None = None  # requests the server serves at once, as it said
    queue_prone: bool = False  # a server that queues what it cannot serve yet (local): deadlines allow for the wait


@dataclass(slots=True)
class ChunkStatus:
    """What the run knows about one chunk right now."""

    chunk: Chunk
    cards_wanted: int
    state: ChunkState = ChunkState.QUEUED
    attempt: int = 0
    tokens: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    cards: list[Card] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    reason: str = ""
    raw_output: str = ""
    trimmed: list[str] = field(default_factory=list)  # what was cut from the answer (cards over the budget, …)


class RunCancelled(Exception):
    """Raised by ``summarize`` when the run was cancelled or refused before it had a summary."""


class RunHalted(Exception):
    """No new requests: the session store could not be written (the run's ``halted`` says why)."""


def default_cards_total(chunks: Iterable[Chunk]) -> int:
    """A sensible number of cards for a text: about one per ``TOKENS_PER_CARD`` tokens, at least 3."""
    tokens = sum(c.tokens * len(c.body) / max(1, len(c.text)) for c in chunks)
    return max(3, round(tokens / TOKENS_PER_CARD))


def allot_cards(chunks: list[Chunk], total: int) -> list[int]:
    """Spread ``total`` cards over chunks in proportion to their size (largest remainder, capped)."""
    if not chunks:
        return []
    sizes = [max(1, c.tokens) for c in chunks]
    whole = sum(sizes)
    shares = [total * s / whole for s in sizes]
    counts = [math.floor(x) for x in shares]
    order = sorted(range(len(chunks)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return [min(MAX_CARDS_PER_CHUNK, c) for c in counts]


def allot_cards_by_size(sizes: list[int], total: int) -> list[int]:
    """``total`` cards over parts of these sizes (largest remainder), at least one each while cards last."""
    whole = max(1, sum(sizes))
    shares = [total * size / whole for size in sizes]
    counts = [max(1, math.floor(x)) if total >= len(sizes) else math.floor(x) for x in shares]
    order = sorted(range(len(sizes)), key=lambda i: (-(shares[i] - math.floor(shares[i])), i))
    for i in order:
        if sum(counts) >= total:
            break
        counts[i] += 1
    while sum(counts) > total:
        counts[counts.index(max(counts))] -= 1
    return counts


def bound_drafts(drafts: list[CardDraft], wanted: int) -> tuple[list[CardDraft], list[str]]:
    """At most ``wanted`` drafts (first in answer order), each field cut to its limit; and what was cut."""
    notes: list[str] = []
    if len(drafts) > wanted:
        notes.append(f"kept the first {wanted} of {len(drafts)} cards in the answer")
        drafts = drafts[:wanted]
    bounded: list[CardDraft] = []
    cut = 0
    for draft in drafts:
        front, back = _cut(draft.front, MAX_FIELD_CHARS), _cut(draft.back, MAX_FIELD_CHARS)
        quote = _cut(draft.quote, MAX_QUOTE_CHARS)
        if (front, back, quote) != (draft.front, draft.back, draft.quote):
            cut += 1
            draft = dataclasses.replace(draft, front=front, back=back, quote=quote)
        bounded.append(draft)
    if cut:
        notes.append(
            f"shortened {cut} {'card' if cut == 1 else 'cards'} with a field over {MAX_FIELD_CHARS} characters"
        )
    return bounded, notes


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def shrink_for_summary(chunks: list[Chunk], budget_tokens: int) -> str:
    """The document's text if it fits ``budget_tokens``; else its start and end with evenly sampled middle."""
    bodies = [(c.body, max(1, c.tokens - (c.tokens * c.overlap_chars) // max(1, len(c.text)))) for c in chunks]
    if sum(t for _, t in bodies) <= budget_tokens:
        return "\n\n".join(b for b, _ in bodies)
    picked: set[int] = set()
    used = 0

    def take(i: int) -> bool:
        nonlocal used
        if i in picked or used + bodies[i][1] > budget_tokens:
            return False
        picked.add(i)
        used += bodies[i][1]
        return True

    head_budget, tail_budget = budget_tokens * 0.4, budget_tokens * 0.2
    i = 0
    while i < len(bodies) and used + bodies[i][1] <= head_budget and take(i):
        i += 1
    j = len(bodies) - 1
    tail_start = used
    while j > i and used - tail_start + bodies[j][1] <= tail_budget and take(j):
        j -= 1
    middle = list(range(i, j + 1))
    if middle:
        room = budget_tokens - used
        average = sum(bodies[k][1] for k in middle) / len(middle)
        wanted = max(1, int(room // max(1.0, average)))
        step = max(1.0, len(middle) / wanted)
        position = step / 2
        while position < len(middle):
            take(middle[int(position)])
            position += step
    if not picked:
        # A single chunk larger than the budget: keep its start.
        return bodies[0][0][: budget_tokens * 3]
    parts, previous = [], None
    for k in sorted(picked):
        if previous is not None and k != previous + 1:
            parts.append("[…]")
        parts.append(bodies[k][0])
        previous = k
    return "\n\n".join(parts)


Listener = Callable[[Event], None]


class Journal(Protocol):
    """Where a run keeps its answers (``core.store.Store`` in practice): read before calling, written before
    a chunk is reported finished."""

    def cached_summary(self, key: str) -> Summary | None: ...

    def save_summary(self, key: str, summary: Summary) -> None: ...

    def set_session_summary(self, session_id: str | None, summary: Summary) -> None: ...

    def cached_chunk(self, key: str) -> Any: ...

    def save_chunk(self, session_id: str | None, chunk: Chunk, key: str, drafts: Iterable[CardDraft], raw: str,
                   usage: Usage, cards: list[Card], wanted: int) -> None: ...  # fmt: skip

    def chunk_done(self, session_id: str | None, chunk: Chunk, key: str, cards: list[Card], wanted: int) -> None: ...

    def chunk_state(self, session_id: str | None, chunk_id: str, index: int, state: str, reason: str = "",
                    cards: int = 0) -> None: ...  # fmt: skip

    def save_server_facts(self, key: str, facts: dict) -> None: ...


class Run:
    """One generation job. Not thread-safe: use it from one event loop."""

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
    ) -> None:
        self.document = document
        self.journal = journal
        self.session_id = session_id
        self.use_cache = use_cache  # False (--fresh, --no-cache): ask again, but still keep the answers
        self.chunks = chunks
        self.provider = provider
        self.settings = settings or RunSettings()
        self.clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._t0 = clock()
        self._listeners: list[Listener] = []
        if chunks and all(c.cards_wanted is not None for c in chunks):
            wanted = [int(c.cards_wanted or 0) for c in chunks]
        else:
            wanted = allot_cards(chunks, self.settings.cards_total or default_cards_total(chunks))
        self.cards_total = sum(wanted)
        self.status: dict[str, ChunkStatus] = {c.id: ChunkStatus(c, n) for c, n in zip(chunks, wanted, strict=True)}
        # A continued session: the answers its unchanged chunks were given (by cache key), and the cards of its
        # chunks that are gone or changed, whose ids a regenerated card with the same text takes over; the rest
        # are stale.
        self.known_keys = dict(known_keys or {})
        self.previous_cards = [dataclasses.replace(c, stale=True) for c in previous_cards]
        self._adoptable: dict[str, str] = {}
        for card in self.previous_cards:
            self._adoptable.setdefault(card.dedup_key(), card.id)
        self._adopted: set[str] = set()
        self._exported = set(exported_ids)  # the cards the session's last run would have exported
        self._keep = set(keep_ids)  # cards already in a deck file: the quality gate never drops them
        self.quality: dict = {"gate": quality.GATE_VERSION, "flagged": {}, "dropped": {}}
        self.stats = RunStats()
        self.from_cache = 0  # chunks answered from the store by an earlier run, with no call
        self.repeats = 0  # chunks whose text (and request) another chunk of this run had: answered by that one
        self._saved_keys: set[str] = set()
        self._inflight: dict[str, asyncio.Future] = {}  # cache key -> the answer of the chunk sending it now
        self.summary: Summary | None = None
        self.summary_kept = summary  # a continued session's summary, used again with no call
        self.fatal: str | None = None
        self.refusal: RunRefused | None = None  # the refusal behind ``fatal``, when the provider gave one
        self.halted: str | None = None  # the store failed: no new requests; what is in flight finishes in memory
        self.cancelled = False
        self._throttle: Throttle | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._summary_lock: asyncio.Lock | None = None
        self._finished_reported = False
        self._finished_count = 0  # chunks that have finished so far (what ``cards()`` depends on)
        self._cards_cache: tuple[int, list[Card]] | None = None
        self._tally: dict[str, int] = {"made": 0, "kept": 0, "repeats": 0, "broken": 0}
        self._kept_at_finish: dict[str, int] = {}
        self._seen_keys: set[str] = set()
        # The window as the server's refusals revealed it, and how its tokenizer counts against ours.
        self.window = self.settings.window
        self.compact = self.settings.compact
        self._token_ratio = fitting.TOKENIZER_MARGIN
        self._window_said = False
        self._speeds: list[float] = []  # seconds per 1,000 tokens of each answered call
        self._cut_prompts = 0  # answers whose server read far less of the prompt than was sent
        self._tell_window()

    # ------------------------------------------------------------------ events

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

    # ------------------------------------------------------------------ limiter

    @property
    def throttle(self) -> Throttle:
        """The run's adaptive limits (created inside the running loop, on first use)."""
        if self._throttle is None:
            self._throttle = Throttle(
                self.settings.concurrency, on_change=lambda n: self._emit(LimitChanged(self.now(), n))
            )
        return self._throttle

    @property
    def limiter(self) -> Limiter:
        return self.throttle.limiter

    def set_concurrency(self, limit: int) -> None:
        """Resize the shared limiter (and the most it may grow back to) while the run goes on."""
        self.throttle.ceiling = max(1, limit)
        self.limiter.set_limit(limit)

    # ------------------------------------------------------------------ summary

    async def summarize(self) -> Summary:
        """Make (once) the title and summary every chunk call carries. Raises RunCancelled if refused."""
        if self._summary_lock is None:
            self._summary_lock = asyncio.Lock()
        async with self._summary_lock:
            if self.summary is not None:
                return self.summary
            if self.fatal or self.cancelled:
                raise RunCancelled(self.fatal or "cancelled")
            self._start()
            if self.summary_kept is not None:
                self.summary = self.summary_kept
                self._emit(SummaryFinished(self.now(), self.summary, Usage()))
                return self.summary
            key = cache_key("summary", self.provider.cache_identity, PROMPT_VERSION, self.document.hash)
            cached = self._journal_read("cached_summary", key) if self.use_cache else None
            if cached is not None:
                self.summary = cached
                self._journal_write("set_session_summary", self.session_id, cached)
                self._emit(SummaryFinished(self.now(), cached, Usage()))
                return cached
            self._track(asyncio.current_task())
            self._emit(SummaryStarted(self.now()))
            budget = self.settings.summary_input_tokens or (
                model_context_tokens(self.provider.model, self.settings.context_tokens) - SUMMARY_RESERVE_TOKENS)
            fallback = Summary(self.document.title, "")
            try:
                result = await self._summary_call(max(256, budget))
            except RunRefused as exc:
                self._refuse(str(exc), exc)
                self._emit(SummaryFailed(self.now(), str(exc)))
                raise RunCancelled(str(exc)) from None
            except RunHalted:
                raise RunCancelled(self.halted or "cancelled") from None
            except TransientError as exc:
                if exc.unreachable or exc.wrong_server:
                    # The first call of the run found no server, or something that is not a chat-completions
                    # API: every chunk would too. Stop once.
                    reason = str(exc)
                    self._refuse(reason, RunRefused(reason, field="base_url"))
                    self._emit(SummaryFailed(self.now(), reason))
                    raise RunCancelled(reason) from None
                self.summary = fallback
                self._emit(SummaryFailed(self.now(), str(exc)))
                return self.summary
            except (RequestRejected, OutputError) as exc:
                # The summary is context, not a product: go on with the title alone.
                self.summary = fallback
                self._emit(SummaryFailed(self.now(), str(exc)))
                return self.summary
            except asyncio.CancelledError:
                raise RunCancelled("cancelled") from None
            finally:
                self._untrack(asyncio.current_task())
            self.summary = Summary(result.summary.title or fallback.title, result.summary.summary)
            self._journal_write("save_summary", key, self.summary)
            self._journal_write("set_session_summary", self.session_id, self.summary)
            self.stats.usage += result.usage
            self._emit(SummaryFinished(self.now(), self.summary, result.usage))
            return self.summary

    async def _summary_call(self, budget: int):
        """The summary call; refused for its length, it is asked again with less of the document."""
        for attempt in range(SUMMARY_TRIES):
            text = shrink_for_summary(self.chunks, budget)
            try:
                return await self._with_retries(lambda text=text: self.provider.summarize(text, self.document.title),
                                                on_retry=None)  # fmt: skip
            except ContextTooLong as exc:
                if attempt + 1 == SUMMARY_TRIES:
                    raise
                self._learn_window(exc, tokens=budget + fitting.SUMMARY_PROMPT_TOKENS)
                fitted = self.window and fitting.largest_summary(self.window, self._token_ratio)
                budget = max(128, min(budget // 2, fitted or budget))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ the server's window

    def _learn_window(self, exc: ContextTooLong, *, tokens: int) -> None:
        """A refusal for length tells the window (and, with the request's size as the server counted it, how
        its tokenizer counts against ours): said once, and every later request is shaped to it."""
        window = exc.window or (int(exc.prompt_tokens * 0.8) if exc.prompt_tokens else None)
        if window is None:
            window = int(tokens * 0.6)  # the server said no number: assume a good deal less than was sent
        if self.window is None or window < self.window:
            self.window = window
        if exc.prompt_tokens and tokens:
            self._token_ratio = max(self._token_ratio, exc.prompt_tokens / tokens)
        if self.window < fitting.COMPACT_BELOW:
            self.compact = True
        self._tell_window()
        if not self._window_said:
            self._window_said = True
            self._emit(Notice(self.now(), f"the server's context is {self.window:,} tokens per request: what does "
                                          "not fit is sent in parts"))  # fmt: skip

    def _tell_window(self) -> None:
        if self.window is not None and hasattr(self.provider, "window"):
            self.provider.window = self.window  # type: ignore[attr-defined]

    def _request_tokens(self, text_tokens: int) -> int:
        """Our count of a card request carrying ``text_tokens`` of a chunk."""
        return text_tokens + fitting.request_overhead(self.compact)

    def _part_limit(self) -> int | None:
        """The most chunk tokens one request may carry in the known window (None: no window known)."""
        if self.window is None:
            return None
        return max(fitting.MIN_CHUNK_TOKENS, fitting.largest_chunk(self.window, self.compact, self._token_ratio))

    def _parts(self, request: CardRequest, tokens: int, *, at_least: int = 1) -> list[tuple[CardRequest, int]]:
        """``request`` as one or more requests that each fit the known window, cards shared by their size;
        with their chunk tokens."""
        limit = self._part_limit()
        if limit is None or (tokens <= limit and at_least == 1):
            return [(request, tokens)]
        texts = fitting.split_for_window(request.chunk_text, tokens, min(limit, max(1, tokens // at_least)))
        sizes = [len(t) for t in texts]
        wanted = allot_cards_by_size(sizes, request.cards_wanted)
        total = max(1, sum(sizes))
        return [(dataclasses.replace(request, chunk_text=text, cards_wanted=n, repair_of="", overlap_chars=0,
                                     compact=self.compact), max(1, tokens * len(text) // total))
                for text, n in zip(texts, wanted, strict=True) if n > 0]  # fmt: skip

    # ------------------------------------------------------------------ chunks

    def queue_all(self) -> list[str]:
        """Report every chunk as queued; returns their ids in input order."""
        for status in self.status.values():
            self._emit(ChunkQueued(self.now(), status.chunk.id, status.chunk.index))
        return [c.id for c in self.chunks]

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
        if self.fatal or self.cancelled or self.halted:
            return self._fail_unsent(status)
        if status.cards_wanted == 0:
            status.state = ChunkState.SKIPPED
            status.finished_at = self.now()
            self._emit(ChunkFinished(self.now(), chunk.id, chunk.index, (), Usage(), 0.0, skipped=True))
            return status
        assert self.summary is not None
        summary = self.summary.summary
        if self.compact and len(summary) > COMPACT_SUMMARY_CHARS:
            summary = summary[: COMPACT_SUMMARY_CHARS - 1].rstrip() + "…"
        request = CardRequest(
            chunk_text=chunk.text,
            location=chunk.location,
            cards_wanted=status.cards_wanted,
            title=self.summary.title,
            summary=summary,
            compact=self.compact,
            instructions=self.settings.instructions,
            language=self.settings.language,
            style=self.settings.style,
            overlap_chars=chunk.overlap_chars,
        )
        key = cache_key("chunk", self.provider.cache_identity, request.key_material())
        cached = None
        if self.use_cache and chunk.id in self.known_keys:
            # Unchanged since the session's last run: its answer then, whatever the summary is now.
            cached = self._journal_read("cached_chunk", self.known_keys[chunk.id])
            if cached is not None:
                key = self.known_keys[chunk.id]
        if cached is None and self.use_cache:
            cached = self._journal_read("cached_chunk", key)
        if cached is not None:
            # Answered before (an earlier run or the one a crash interrupted): no call, same cards, same ids. An
            # answer this run made for another chunk of the same text is a repeat, not an earlier run's.
            if key in self._saved_keys:
                self.repeats += 1
            else:
                self.from_cache += 1
            status.started_at = status.finished_at = self.now()
            return await self._finish(status, key, GenerationResult(cached.drafts, Usage(), cached.raw), store=False)
        shared = self._inflight.get(key) if self.use_cache else None
        if shared is not None:
            # Another chunk of this run with the same text is being answered: its answer is this one's too.
            answer = await asyncio.shield(shared)
            if answer is not None:
                self.repeats += 1
                status.started_at = status.finished_at = self.now()
                return await self._finish(status, key, GenerationResult(answer.drafts, Usage(), answer.raw),
                                          store=False)  # fmt: skip
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight.setdefault(key, future)
        task = asyncio.current_task()
        self._track(task)
        status.started_at = None
        status.reason = ""
        last_progress = [0.0]

        def on_tokens(tokens: int) -> None:
            status.tokens = tokens
            now = self.now()
            if now - last_progress[0] >= self.settings.progress_interval:
                last_progress[0] = now
                self._emit(ChunkProgress(now, chunk.id, chunk.index, tokens))

        def on_attempt(attempt: int) -> None:
            status.attempt = attempt
            status.state = ChunkState.RUNNING
            status.tokens = 0
            if status.started_at is None:
                status.started_at = self.now()
            self._emit(ChunkStarted(self.now(), chunk.id, chunk.index, attempt))

        def on_retry(attempt: int, wait: float, reason: str) -> None:
            status.state = ChunkState.RETRYING
            self._emit(ChunkRetrying(self.now(), chunk.id, chunk.index, attempt, wait, reason))

        current = [request]

        def repair(error: OutputError) -> None:
            if getattr(error, "runaway", False):
                return  # showing a loop back to the model only feeds it: ask again as at first
            current[0] = dataclasses.replace(request, repair_of=error.raw or "(empty)")

        parts = self._parts(request, chunk.tokens)
        try:
            try:
                if len(parts) > 1:  # the window the server revealed is smaller than this chunk
                    result = await self._generate_parts(parts, on_tokens, on_retry, on_attempt)
                else:
                    result = await self._with_retries(
                        lambda: self.provider.generate(current[0], on_tokens),
                        on_retry=on_retry,
                        on_attempt=on_attempt,
                        on_output_error=repair,
                    )
            except OutputError as exc:
                if not getattr(exc, "truncated", False) or len(chunk.body) < 200:
                    raise
                # Cut off at the model's output limit: ask for the two halves of the chunk separately.
                on_retry(status.attempt + 1, 0.0, "answer cut off at the output limit; asking for each half")
                result = await self._generate_halves(request, on_tokens, on_retry, on_attempt)
            except ContextTooLong as exc:
                # Longer than the server's window: cut the chunk to fit, and send its parts.
                self._learn_window(exc, tokens=self._request_tokens(chunk.tokens))
                if len(chunk.text) < 2 * MIN_PART_CHARS:
                    raise
                on_retry(status.attempt + 1, 0.0, f"{exc}; sending the chunk in parts")
                parts = self._parts(request, chunk.tokens, at_least=2)
                result = await self._generate_parts(parts, on_tokens, on_retry, on_attempt)
            cut = self._prompt_cut(result, chunk.tokens)
            if cut:
                raise RunRefused(cut)
            if not future.done():
                future.set_result(result)
        except asyncio.CancelledError:
            self._fail(status, self.fatal or "cancelled", cancelled=self.fatal is None)
            raise
        except RunRefused as exc:
            self._refuse(str(exc), exc)
            return self._fail(status, str(exc))
        except RunHalted:
            return self._fail_unsent(status)
        except OutputError as exc:
            status.usage += getattr(exc, "usage", Usage())
            return self._fail(status, f"unreadable model output: {exc}", raw=exc.raw)
        except ContextTooLong as exc:
            # Even its smallest part does not fit: the run cannot succeed as planned. Say it once, with the numbers.
            reason = f"{exc}; lower --chunk-tokens, or give the server a larger context"
            self._refuse(reason)
            return self._fail(status, self.fatal or reason)
        except (TransientError, RequestRejected) as exc:
            return self._fail(status, str(exc))
        finally:
            self._untrack(task)
            if not future.done():
                future.set_result(None)  # failed or cancelled: a chunk waiting on it sends its own request
            if self._inflight.get(key) is future:
                del self._inflight[key]
        status.usage += result.usage
        self.stats.usage += result.usage
        return await self._finish(status, key, result)

    async def _generate_halves(self, request: CardRequest, on_tokens, on_retry, on_attempt) -> GenerationResult:
        """Two calls, one per half of the chunk, each for half the cards; their cards together."""
        text = request.chunk_text
        middle = len(text) // 2
        cut = text.rfind("\n\n", 0, middle + 1)
        if cut < len(text) // 4:
            cut = text.rfind(". ", 0, middle + 1) + 1 or middle
        halves = (text[:cut].strip(), text[cut:].strip())
        wanted = request.cards_wanted
        parts = [(dataclasses.replace(request, chunk_text=half, cards_wanted=count, repair_of=""), 0)
                 for half, count in zip(halves, (wanted - wanted // 2, max(1, wanted // 2)), strict=True)]  # fmt: skip
        return await self._generate_parts(parts, on_tokens, on_retry, on_attempt,
                                          cut_off_retries=self.settings.cut_off_retries)  # fmt: skip

    async def _generate_parts(self, parts: list[tuple[CardRequest, int]], on_tokens, on_retry, on_attempt, *,
                              cut_off_retries: int = 0, depth: int = 0) -> GenerationResult:  # fmt: skip
        """One call per part of a chunk (each with its share of the cards); their cards together. A part the
        server still finds too long is cut again."""
        drafts: list[CardDraft] = []
        raws: list[str] = []
        notes: list[str] = []
        usage = Usage()
        for part, tokens in parts:
            try:
                result = await self._with_retries(
                    lambda part=part: self.provider.generate(part, on_tokens),
                    on_retry=on_retry,
                    on_attempt=on_attempt,
                    cut_off_retries=cut_off_retries,
                )
            except ContextTooLong as exc:
                if depth >= SPLIT_DEPTH or len(part.chunk_text) < 2 * MIN_PART_CHARS:
                    raise
                tokens = tokens or len(part.chunk_text) // 4
                self._learn_window(exc, tokens=self._request_tokens(tokens))
                result = await self._generate_parts(self._parts(part, tokens, at_least=2), on_tokens, on_retry,
                                                    on_attempt, cut_off_retries=cut_off_retries, depth=depth + 1)
            drafts.extend(result.drafts)
            raws.append(result.raw)
            usage += result.usage
            notes.extend(result.notes)
        return GenerationResult(drafts, usage, "\n".join(raws), "stop", notes=tuple(notes))

    def _prompt_cut(self, result: GenerationResult, tokens: int) -> str:
        """Why the run must stop when the server read far less of the prompt than was sent (it cut the prompt to
        its window, silently: Ollama does, and then the card rules at its start are gone), else ""."""
        reported = result.usage.prompt_tokens
        expected = self._request_tokens(tokens)
        if not reported or expected < 300 or reported >= CUT_PROMPT_SHARE * expected:
            return ""
        self._cut_prompts += 1
        if self._cut_prompts < 2:
            return ""  # one odd count may be a server's mistake; two are its habit
        where = getattr(self.provider, "where", "the server")
        return (f"the server at {where} read only {reported:,} of the about {expected:,} tokens of a request: it cut "
                "the prompt to fit its context window, dropping the card rules at its start; raise the server's "
                "context (Ollama: OLLAMA_CONTEXT_LENGTH, or num_ctx in a Modelfile) or lower --chunk-tokens")

    async def _finish(self, status: ChunkStatus, key: str, result: GenerationResult, *,
                      store: bool = True) -> ChunkStatus:  # fmt: skip
        """Make the cards, commit them (when there is a journal), and only then report the chunk finished."""
        chunk = status.chunk
        drafts, trimmed = bound_drafts(result.drafts, status.cards_wanted)
        trimmed[:0] = result.notes
        raw = excerpt(result.raw)
        cards = self._make_cards(chunk, drafts)
        if store:
            self._saved_keys.add(key)
            self._journal_write("save_chunk", self.session_id, chunk, key, drafts, raw, result.usage, cards,
                                status.cards_wanted)  # fmt: skip
            await asyncio.sleep(0)  # let the loop breathe between commits when many chunks finish at once
        else:
            self._journal_write("chunk_done", self.session_id, chunk, key, cards, status.cards_wanted)
        status.cards = cards
        self._count_kept(chunk, cards)
        self._finished_count += 1
        status.raw_output = raw
        status.trimmed = trimmed
        status.state = ChunkState.DONE
        status.finished_at = self.now()
        seconds = status.finished_at - (status.finished_at if status.started_at is None else status.started_at)
        note = "" if cards else (result.nothing or "the model gave no cards for this passage")
        self._emit(ChunkFinished(self.now(), chunk.id, chunk.index, tuple(cards), result.usage, seconds, note=note))
        return status

    # ------------------------------------------------------------------ the store

    def _journal_read(self, method: str, *args: Any) -> Any:
        """A read from the store, or None when there is none (or it failed: then the run goes on without it)."""
        if self.journal is None or self.halted:
            return None
        try:
            return getattr(self.journal, method)(*args)
        except StoreError as exc:
            self._halt(str(exc))
            return None

    def _journal_write(self, method: str, *args: Any) -> None:
        """A write to the store. If it fails, the run halts: nothing new is sent, calls in flight finish in
        memory and keep their cards, and the face writes the deck."""
        if self.journal is None or self.halted:
            return
        try:
            getattr(self.journal, method)(*args)
        except StoreError as exc:
            self._halt(str(exc))

    def _halt(self, reason: str) -> None:
        if not self.halted:
            self.halted = reason

    async def _with_retries(self, call, *, on_retry, on_attempt=None, on_output_error=None, cut_off_retries=0):
        """The single retry layer: backoff with full jitter, Retry-After honoured, slot released while waiting.

        ``call`` makes one attempt, bounded by ``attempt_timeout``; ``on_output_error(error)`` may adjust the
        next attempt (a repair request). An answer cut off at the output limit is retried ``cut_off_retries``
        times (the caller of a whole chunk splits it instead).
        """
        settings = self.settings
        waited = 0.0
        repairs = 0
        cut_offs = 0
        attempt = 0
        failures = 0  # attempts that failed for a reason other than a rate limit
        limited = 0
        timeouts = 0
        adaptations = 0  # attempts the server's refusal of how we asked made us repeat at once
        while True:
            attempt += 1
            if self.fatal:
                raise RunRefused(self.fatal)
            if self.halted:
                raise RunHalted(self.halted)
            async with self.limiter:
                if self.fatal or self.halted:  # decided while this call waited for its slot
                    raise RunRefused(self.fatal) if self.fatal else RunHalted(self.halted)
                generation = self.throttle.generation()
                await self.throttle.pace()
                self.stats.max_concurrency_reached = max(self.stats.max_concurrency_reached, self.limiter.in_use)
                if on_attempt:
                    on_attempt(attempt)
                if self.provider.online:
                    self.stats.requests += 1
                deadline = self._attempt_deadline()
                sent = self.clock()
                try:
                    async with asyncio.timeout(deadline):
                        result = await call()
                except TimeoutError:
                    timeouts += 1
                    failures += 1
                    limit = f"{deadline:g} s"
                    error: Exception = TransientError(f"no complete answer within {limit} (--timeout)", timed_out=True)
                    hint = None
                except TransientError as exc:
                    if (exc.adapted or (exc.cut_stream and self._cut_by_others())) and adaptations < MAX_ADAPTATIONS:
                        # Not the server failing: it refused how we asked (the provider now asks another way),
                        # or it cut this answer because another request arrived. Send again at once.
                        adaptations += 1
                        self.stats.retries += 1
                        if on_retry:
                            on_retry(attempt + 1, 0.0, str(exc))
                        continue
                    if exc.rate_limited:
                        self.throttle.rate_limited(generation, exc.rate_info)
                        limited += 1
                    else:
                        failures += 1
                    timeouts += exc.timed_out
                    error = exc
                    hint = exc.retry_after
                except OutputError as exc:
                    self.stats.usage += getattr(exc, "usage", Usage())
                    if getattr(exc, "truncated", False):
                        if cut_offs >= cut_off_retries:
                            raise
                        cut_offs += 1
                        self.stats.retries += 1
                        if on_retry:
                            on_retry(attempt + 1, 0.0, str(exc))
                        continue
                    if repairs >= settings.output_repairs:
                        raise
                    repairs += 1
                    failures += 1
                    if on_output_error:
                        on_output_error(exc)
                    error, hint = exc, 0.0
                else:
                    self.throttle.succeeded(getattr(result, "rate_info", None))
                    used = getattr(result, "usage", None)
                    tokens = used.prompt_tokens + used.completion_tokens if used else 0
                    if self.provider.online and tokens >= 100:
                        self._speeds.append((self.clock() - sent) * 1000 / tokens)
                    return result
            if timeouts >= settings.max_timeouts:
                if timeouts > 1:
                    error = TransientError(f"{error}, {timeouts} times", timed_out=True)
                raise error
            if failures >= settings.max_attempts or limited >= settings.max_rate_limited:
                raise error
            stop_early = getattr(error, "unreachable", False) or getattr(error, "wrong_server", False)
            if stop_early and failures >= UNREACHABLE_ATTEMPTS:
                raise error
            backoff = min(settings.backoff_cap, settings.backoff_base * 2 ** (attempt - 1))
            if hint is not None and hint >= TINY_HINT:
                wait = hint + self._rng.uniform(0, min(1.0, 0.1 + hint * 0.1))
            elif hint is not None:
                # "Retry-After: 0" from every call at once would be a storm in lockstep: a zero or tiny hint still
                # gets the growing backoff, half of it fixed and half jittered.
                wait = max(hint, backoff / 2 + self._rng.uniform(0, backoff / 2))
            else:
                wait = self._rng.uniform(0, backoff)
            if waited + wait > settings.max_total_wait:
                raise error
            waited += wait
            self.stats.retries += 1
            if on_retry:
                on_retry(attempt + 1, wait, str(error))
            if wait > 0:
                await self._sleep(wait)

    def server_report(self) -> dict | None:
        """What the run knows of how its server takes requests (``--json``'s ``server``), None offline."""
        capabilities = getattr(self.provider, "capabilities", None)
        if capabilities is None:
            return None
        return {**capabilities.as_dict(), "learned": "an earlier run" if capabilities.from_store else "this run"}

    def _remember_server(self) -> None:
        """Keep what this run learned about its server for the next run (nothing is kept from a refused run)."""
        capabilities = getattr(self.provider, "capabilities", None)
        if capabilities is None or not capabilities.confirmed or self.fatal:
            return
        facts: dict = capabilities.as_dict()
        if self._speeds:
            facts["seconds_per_1k"] = round(sorted(self._speeds)[len(self._speeds) // 2], 3)
        key = cache_key("server", *self.provider.cache_identity)
        self._journal_write("save_server_facts", key, facts)

    def _start(self) -> None:
        """What an earlier run learned about the server applies from the first call."""
        capabilities = getattr(self.provider, "capabilities", None)
        if capabilities is not None and capabilities.one_at_a_time and self.throttle.ceiling > 1:
            self.set_concurrency(1)
            self._emit(Notice(self.now(), ONE_AT_A_TIME + " (as learned in an earlier run)"))

    def _attempt_deadline(self) -> float | None:
        """Seconds one attempt may take: ``--timeout``, times the requests ahead of it in the server's queue on a
        server that queues (a llama.cpp server sends no byte until a slot is free; Ollama serves one at a time),
        so a call that only waited its turn is never taken for a dead one."""
        base = self.settings.attempt_timeout
        if base is None:
            return None
        slots = self.settings.server_slots or (1 if self.settings.queue_prone else None)
        if not slots:
            return base
        return base * max(1, math.ceil(self.limiter.in_use / slots))

    def _cut_by_others(self) -> bool:
        """A stream ended without its end while other calls were in flight: the server interrupts a running
        answer when another request arrives. From now on the run sends one request at a time (said once)."""
        capabilities = getattr(self.provider, "capabilities", None)
        if capabilities is None or (self.limiter.in_use <= 1 and not capabilities.one_at_a_time):
            return False
        if not capabilities.one_at_a_time or self.throttle.ceiling > 1:
            capabilities.one_at_a_time = True
            self.set_concurrency(1)
            self._emit(Notice(self.now(), ONE_AT_A_TIME))
        return True

    def _make_cards(self, chunk: Chunk, drafts: list) -> list[Card]:
        cards = make_cards(chunk, drafts, markdown=self.provider.online)
        self._adopt(cards)
        return cards

    def _adopt(self, cards: Iterable[Card]) -> None:
        """A card with the same text as one made of the source before it changed takes that card's id (its note,
        its review history in Anki, the user's decisions about it), unless it is itself one Anki may have."""
        if not self._adoptable:
            return
        for card in cards:
            earlier = self._adoptable.get(card.dedup_key())
            if earlier is not None and earlier not in self._adopted and card.id not in self._exported:
                card.id = earlier
                self._adopted.add(earlier)

    def _fail_unsent(self, status: ChunkStatus) -> ChunkStatus:
        """A chunk that will not be sent: the run was refused, halted or cancelled."""
        if self.fatal:
            return self._fail(status, self.fatal)
        if self.halted:
            return self._fail(status, f"not sent: {self.halted}", cancelled=True)
        return self._fail(status, "cancelled", cancelled=True)

    def _fail(self, status: ChunkStatus, reason: str, *, raw: str = "", cancelled: bool = False) -> ChunkStatus:
        reason = strip_controls(reason)  # shown on the board, in the log and on stderr
        status.state = ChunkState.CANCELLED if cancelled else ChunkState.FAILED
        self._journal_write("chunk_state", self.session_id, status.chunk.id, status.chunk.index,
                            status.state.value, reason)  # fmt: skip
        status.reason = reason
        status.raw_output = raw
        status.finished_at = self.now()
        chunk = status.chunk
        self._emit(ChunkFailed(self.now(), chunk.id, chunk.index, reason, raw, cancelled=cancelled))
        return status

    # ------------------------------------------------------------------ control

    def _track(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
            self._tasks.add(task)

    def _untrack(self, task: asyncio.Task[object] | None) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]

    def _refuse(self, reason: str, error: RunRefused | None = None) -> None:
        """The server refused the whole run: stop every other call once. ``error``: the refusal as the provider
        gave it (its reason without the command-line fix, and the setting to correct), for the app."""
        if self.fatal:
            return
        self.fatal = strip_controls(reason)
        self.refusal = error
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def cancel(self) -> None:
        """Cancel every outstanding call; finished chunks keep their cards."""
        self.cancelled = True
        for task in list(self._tasks):
            task.cancel()

    def replace_provider(self, provider: Provider) -> None:
        """Go on with another provider after a refusal (the user fixed the key, the address or the model):
        the refusal is forgotten and finished chunks keep their cards; ``retry_failed`` then sends the rest.
        The caller closes the old provider."""
        self.provider = provider
        self._tell_window()
        self.fatal = None
        self.refusal = None
        self.cancelled = False

    def retry_failed(self) -> list[str]:
        """Put failed and cancelled chunks back in the queue; returns their ids for the face to schedule."""
        if self.fatal:
            return []
        self.cancelled = False
        self._finished_reported = False
        ids = []
        for status in self.status.values():
            if status.state in (ChunkState.FAILED, ChunkState.CANCELLED):
                status.state = ChunkState.QUEUED
                status.reason = ""
                status.raw_output = ""
                status.attempt = 0
                ids.append(status.chunk.id)
                self._emit(ChunkQueued(self.now(), status.chunk.id, status.chunk.index))
        return ids

    async def run(self, chunk_ids: Iterable[str] | None = None) -> None:
        """Convenience for headless use: summary, then every chunk concurrently in a TaskGroup."""
        ids = list(chunk_ids) if chunk_ids is not None else self.queue_all()
        try:
            await self.summarize()
        except RunCancelled:
            for chunk_id in ids:
                status = self.status[chunk_id]
                if not status.state.finished:
                    self._fail_unsent(status)
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for chunk_id in ids:
                        group.create_task(self.process_chunk(chunk_id))
            except asyncio.CancelledError:
                self.cancel()
                raise
        self.report_finished()

    def report_finished(self) -> None:
        """Emit RunFinished once all scheduled work is over (faces call this when their workers are done)."""
        if self._finished_reported:
            return
        self._finished_reported = True
        self._remember_server()
        counts = self.counts()
        self._emit(
            RunFinished(
                self.now(),
                done=counts["done"],
                failed=counts["failed"],
                cards=len(self.cards()),
                fatal=self.fatal,
                cancelled=self.cancelled,
            )
        )

    async def aclose(self) -> None:
        """Close the provider's connections."""
        await self.provider.aclose()

    # ------------------------------------------------------------------ results

    def counts(self) -> dict[str, int]:
        """Chunks by state: done (or skipped), failed, cancelled (or not sent), running, and the total."""
        states = [s.state for s in self.status.values()]
        return {
            "done": sum(1 for s in states if s.finished),
            "failed": states.count(ChunkState.FAILED),
            "cancelled": states.count(ChunkState.CANCELLED),
            "running": states.count(ChunkState.RUNNING) + states.count(ChunkState.RETRYING),
            "total": len(states),
        }

    def failures(self) -> list[ChunkStatus]:
        return [s for s in self.status.values() if s.state in (ChunkState.FAILED, ChunkState.CANCELLED)]

    def cards(self) -> list[Card]:
        """Every card made so far, in input order; a card identical to one from an earlier chunk is dropped.

        Duplicates are decided by chunk order, not by finishing order, so the result is deterministic. The list
        is made again only after a chunk has finished (the faces ask for it many times a second).
        """
        if self._cards_cache is not None and self._cards_cache[0] == self._finished_count:
            return list(self._cards_cache[1])
        seen: dict[str, int] = {}
        out: list[Card] = []
        made = repeats = 0
        for chunk in self.chunks:
            for card in self.status[chunk.id].cards:
                made += 1
                key = card.dedup_key()
                if key not in seen:
                    seen[key] = len(out)
                    out.append(card)
                else:
                    repeats += 1
                    if self._exported and card.id in self._exported and out[seen[key]].id not in self._exported:
                        out[seen[key]] = card  # the one of two identical cards that Anki already has a note for
        before = out
        out = self._gate(out)
        near = self.quality["dropped"].get(str(quality.Flag.DUPLICATE), 0)
        gated = len(before) - len(out)
        self._tally = {"made": made, "kept": len(out), "repeats": repeats + near, "broken": gated - near}
        # A card that was a duplicate last time (never exported) and is the only one of its text now takes the id
        # of the earlier card with its text, so Anki does not get that text twice.
        self._adopt(out)
        out.extend(self._stale(set(seen)))
        self._cards_cache = (self._finished_count, out)
        return list(out)

    def tally(self) -> dict[str, int]:
        """How the finished chunks' cards became the deck: made = kept + repeats (of a card in an earlier chunk,
        or nearly so) + broken (left out by the quality gate); stale cards are counted apart."""
        self.cards()
        return dict(self._tally)

    def kept_of(self, chunk_id: str) -> int:
        """The cards this chunk added to the deck when it finished: less the repeats of cards finished before it
        and the clearly broken ones. Counted once, as it finishes (the deck's own count, ``tally``, settles
        near-duplicates and document order at the end)."""
        return self._kept_at_finish.get(chunk_id, 0)

    def _count_kept(self, chunk: Chunk, cards: list[Card]) -> None:
        kept = 0
        for card in cards:
            if any(flag in quality.BROKEN or self.settings.drop_flagged for flag in card.flags):
                continue
            key = card.dedup_key()
            if key not in self._seen_keys:
                self._seen_keys.add(key)
                kept += 1
        self._kept_at_finish[chunk.id] = kept

    def _gate(self, cards: list[Card]) -> list[Card]:
        """The quality gate over the run's cards, in document order: near-duplicates and clearly broken cards
        dropped (and counted), every other flagged card kept with its flags unless ``drop_flagged``. A card the
        user edited or that was exported before is never dropped."""
        keep = {c.id for c in cards if c.edited or c.id in self._keep}
        out, self.quality = quality.gate(cards, keep, drop_flagged=self.settings.drop_flagged)
        return out

    def stale_cards(self) -> list[Card]:
        """Cards of the session's earlier text that this run has not made again (kept, marked stale)."""
        return [c for c in self.cards() if c.stale]

    def _stale(self, current: set[str]) -> list[Card]:
        """Earlier cards no chunk of this run made again: none of an unfinished chunk's cards count yet."""
        out = []
        for card in self.previous_cards:
            if card.id in self._adopted or card.dedup_key() in current:
                continue
            out.append(card)
        return out


def make_cards(chunk: Chunk, drafts: Iterable[CardDraft], *, markdown: bool = False) -> list[Card]:
    """A chunk's cards from its drafts: ids from the chunk's card key, quotes checked against its text, a card
    identical to an earlier one of the same chunk dropped. ``markdown``: a model wrote them (not the document)."""
    cards: list[Card] = []
    seen: set[str] = set()
    for draft in drafts:
        quote_found = quality.quote_in(draft.quote, chunk.text)  # the model's own quote, before any substitution
        quote = _verbatim_quote(draft.quote, chunk.text, draft.front + " " + draft.back)
        where = _offset_of(quote, chunk.text, default=chunk.overlap_chars)
        headings, page = chunk.place_of(where) if chunk.places else (chunk.headings, chunk.page)
        card = Card(
            id=make_card_id(chunk.card_key, len(cards), draft.front, draft.back),
            chunk_id=chunk.id,
            chunk_index=chunk.index,
            ordinal=len(cards),
            front=draft.front,
            back=draft.back,
            quote=quote,
            kind=draft.kind,
            headings=headings,
            page=page,
            markdown=markdown,
        )
        key = card.dedup_key()
        if key in seen:
            continue
        seen.add(key)
        card.flags = tuple(str(f) for f in quality.check(card, quote_found=quote_found))
        cards.append(card)
    return cards


def _offset_of(quote: str, text: str, *, default: int) -> int:
    """Where ``quote`` (whitespace collapsed) starts in ``text``, by its first words; ``default`` (where the
    chunk's own text starts, after its overlap) if it has no quote or the quote is not found."""
    found = re.search(r"\s+".join(re.escape(w) for w in quote.split()[:8]), text) if quote.strip() else None
    return found.start() if found else default


def _verbatim_quote(quote: str, chunk_text: str, card_text: str) -> str:
    """The model's quote if it really occurs in the chunk, else the chunk sentence that best supports the card."""
    flat_chunk = " ".join(chunk_text.split())
    flat_quote = " ".join(quote.split()).strip().strip('"“”')
    if flat_quote and flat_quote in flat_chunk:
        return flat_quote
    target = set(words(card_text + " " + quote))
    best, best_score = "", 0.0
    for sentence in sentences(chunk_text):
        overlap = len(target & set(words(sentence)))
        if overlap > best_score:
            best, best_score = sentence, overlap
    return best
