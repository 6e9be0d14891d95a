"""The Plan: what a run will send, decided before anything is sent.

From a document, what the user asked (``PlanSettings``) and what the store knows of the document's earlier
sessions, a plain value: the chunks (their boundaries kept where the text is unchanged), each chunk's cards,
which chunks are answered already and by which answer, the summary to keep or make, how the text changed, and
the estimate (tokens and cost; time once the server's speed is known). Session continuity lives here alone:
``job.py`` and the faces ask it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import fitting, quality
from .allot import allot_cards, cards_for_size
from .cards import bound_drafts, make_cards
from .chunking import chunk_document, legacy_chunks
from .deck import note_guid
from .models import Card, Chunk, Document, Summary
from .pricing import BATCH_DISCOUNT, cost_usd
from .pricing import context_tokens as model_context_tokens
from .prompts import CardRequest, fixed_prompt_tokens
from .store import Store, StoredChunk, cache_key
from .tokens import Encoding, encoding_for_model

OUTPUT_TOKENS_PER_CARD = 60
SUMMARY_TOKENS = 150


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """What the user asked that shapes a plan."""

    online: bool
    model: str
    base_url: str | None
    chunk_tokens: int
    overlap_tokens: int
    cards: int | None  # a total for the document (None: by each chunk's size)
    context_tokens: int | None = None
    no_cache: bool = False  # the summary is made again
    drop_flagged: bool = False

    @property
    def identity(self) -> tuple[str, ...]:
        """The provider's ``cache_identity``, without making the provider."""
        if self.online:
            return ("openai", self.base_url or "https://api.openai.com/v1", self.model)
        return ("offline", "", "offline")

    def encoding(self) -> Encoding:
        return encoding_for_model(self.model if self.online else "gpt-4o-mini")


@dataclass(frozen=True, slots=True)
class Estimate:
    chunks: int
    cards: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: the model's price is unknown (or the run is offline and free)
    batch_cost_usd: float | None = None  # the same through a batch engine: the summary live, the chunks at half


@dataclass(slots=True)
class Previous:
    """The session an earlier run of the same source (and settings) left, as this run continues it."""

    session_id: str
    chunks: list[StoredChunk]
    summary: Summary | None
    legacy: bool = False  # made by a version before 0.2: its rows are rewritten when it is continued
    legacy_text: tuple[str, list[Chunk]] | None = None  # (its text's hash, its chunks) for a legacy session

    @property
    def finished(self) -> dict[str, StoredChunk]:
        return {c.id: c for c in self.chunks if c.state in ("done", "skipped")}


@dataclass(frozen=True, slots=True)
class Changes:
    """How the source differs from the session's last run, by chunk."""

    unchanged: int  # the same text, answered last time: not sent
    changed: int  # new or edited text: sent
    removed: int  # answered last time, gone now: their cards become stale
    summary_kept: bool
    pending: int = 0  # the same text, not answered last time (the run was stopped): sent

    def describe(self) -> str:
        summary = "summary kept" if self.summary_kept else "summary renewed"
        waiting = f", {self.pending} not yet answered" if self.pending else ""
        return (f"chunks {self.unchanged} answered before{waiting}, {self.changed} new or changed, "
                f"{self.removed} removed; {summary}")


@dataclass(slots=True)
class Plan:
    """What a run will send. ``known_keys``: an unchanged chunk's answer, by its cache key; ``previous_cards``: the
    cards of chunks gone or changed (a card made again with the same text takes its id); ``exported_ids``: the
    cards the last run would have exported; ``written_ids``: cards already written to a deck file."""

    chunks: list[Chunk]
    estimate: Estimate
    previous: Previous | None = None
    changes: Changes | None = None
    known_keys: dict[str, str] = field(default_factory=dict)
    previous_cards: list[Card] = field(default_factory=list)
    exported_ids: set[str] = field(default_factory=set)
    written_ids: set[str] = field(default_factory=set)
    kept_summary: Summary | None = None

    @property
    def cards_total(self) -> int:
        return sum(c.cards_wanted or 0 for c in self.chunks)

    @property
    def stored_cards(self) -> dict[str, list[Card]]:
        """The cards the session kept for the chunks answered before, whose ids the cards made again take."""
        if self.previous is None or self.changes is None:
            return {}
        finished = self.previous.finished
        return {c.id: list(finished[c.id].cards or ()) for c in self.chunks
                if c.id in finished and c.id in self.known_keys}  # fmt: skip

    @property
    def done_earlier(self) -> int:
        """Chunks a continued session answered before: not sent, not priced."""
        return self.changes.unchanged if self.changes else 0

    def seconds(self, seconds_per_1k: float, slots: int, *, compact: bool) -> float:
        """How long the calls take at ``seconds_per_1k`` (an earlier run's speed on the server), ``slots`` at once."""
        answered = self.previous.finished if self.previous and self.changes else {}
        chunks = [c for c in self.chunks if c.id not in answered]
        if not chunks:
            return 0.0
        tokens = sum(2 * c.tokens + fitting.request_overhead(compact) for c in chunks) / len(chunks)
        per_call = seconds_per_1k * tokens / 1000
        return fitting.wall_seconds(len(chunks), slots, per_call, summary=self.kept_summary is None)


def plan_document(asked: PlanSettings, document: Document) -> Plan:
    """A new session's plan: every chunk sent. Raises ChunkingError."""
    chunks = chunk_document(document, asked.encoding(), asked.chunk_tokens, asked.overlap_tokens)
    return fresh_plan(asked, chunks)


def fresh_plan(asked: PlanSettings, chunks: list[Chunk]) -> Plan:
    """These chunks, each with its cards, all to be sent."""
    chunks = plan_chunks(chunks, asked.cards, {})
    return Plan(chunks, estimate(asked, chunks, sum(c.cards_wanted or 0 for c in chunks)))


def start_over(asked: PlanSettings, plan: Plan) -> Plan:
    """The plan with the earlier session forgotten: a new one, every chunk sent."""
    return fresh_plan(asked, [dataclasses.replace(c, card_prefix="", cards_wanted=None) for c in plan.chunks])


def continue_session(asked: PlanSettings, store: Store, document: Document, previous: Previous) -> Plan | None:
    """The plan of a run that continues ``previous``: chunk boundaries kept where the text is unchanged, those
    chunks answered from the store, the summary kept after a small edit, and only new or changed chunks priced.
    None: ``previous`` (a session of an old version) has nothing of this text. Raises StoreError."""
    if previous.legacy_text and previous.legacy_text[0] == document.hash:
        chunks = previous.legacy_text[1]  # the same text: its chunks as they were, every card id kept
    else:
        anchors = [c.anchor for c in previous.chunks if c.anchor]
        chunks = chunk_document(document, asked.encoding(), asked.chunk_tokens, asked.overlap_tokens,
                                anchors=anchors)  # fmt: skip
    finished = previous.finished
    if previous.legacy and previous.chunks and not any(c.id in finished for c in chunks):
        return None  # not this input's session after all: nothing of its text is here
    chunks = plan_chunks(chunks, asked.cards, finished)
    kept = [c for c in chunks if c.id in finished]
    current = {c.id for c in chunks}
    kept_card_ids = {card.id for c in kept for card in (finished[c.id].cards or ())}
    earlier = {card.id for stored in previous.chunks for card in (stored.cards or ())}
    stamps = store.note_stamps(note_guid(card_id) for card_id in earlier)
    # The summary stays while most of the text is the same, answered or not (a run resumed after a crash keeps it
    # however few chunks it had finished).
    seen = {c.id for c in previous.chunks}
    if not previous.legacy and store.session_text_hash(previous.session_id) == document.hash:
        same = list(chunks)  # the very text of the last run (stopped part way): nothing is new
    else:
        same = [c for c in chunks if c.id in seen]
    summary_kept = previous.summary is not None and not asked.no_cache and 2 * len(same) >= len(chunks)
    removed = sum(1 for c in previous.chunks if c.state in ("done", "skipped") and c.id not in current)
    cards_total = sum(c.cards_wanted or 0 for c in chunks)
    previous_cards = [
        card
        for stored in previous.chunks
        if stored.id not in current and stored.state in ("done", "stale")
        for card in (stored.cards or ())
        if card.id not in kept_card_ids
    ]
    return Plan(
        chunks,
        estimate(asked, chunks, cards_total, done={c.id for c in kept}, summary=not summary_kept),
        previous=previous,
        changes=Changes(len(kept), len(chunks) - len(same), removed, summary_kept, pending=len(same) - len(kept)),
        known_keys={c.id: finished[c.id].key for c in kept if finished[c.id].key},  # type: ignore[misc]
        previous_cards=previous_cards,
        exported_ids=last_exported(previous.chunks, drop_flagged=asked.drop_flagged),
        written_ids={card_id for card_id in earlier if note_guid(card_id) in stamps},
        kept_summary=previous.summary if summary_kept else None,
    )


def plan_chunks(chunks: list[Chunk], cards: int | None, finished: dict[str, StoredChunk]) -> list[Chunk]:
    """Each chunk's card count: its earlier one if it is unchanged, else by its size (``cards``: a total asked
    for, spread over the document by size). An unchanged chunk also keeps the prefix of its cards' ids."""
    spread = allot_cards(chunks, cards) if cards else [cards_for_size(c) for c in chunks]
    out = []
    for chunk, wanted in zip(chunks, spread, strict=True):
        stored = finished.get(chunk.id)
        if stored is not None:
            wanted = stored.wanted if stored.wanted is not None else wanted
            chunk = dataclasses.replace(chunk, card_prefix=stored.card_prefix or chunk.card_prefix)
        out.append(dataclasses.replace(chunk, cards_wanted=wanted))
    return out


def last_exported(chunks: list[StoredChunk], *, drop_flagged: bool = False) -> set[str]:
    """The ids of the cards a session's last run would have exported: one card per text, the first in document
    order, through the quality gate (as ``CardBook.deck`` chooses), and its stale cards."""
    seen: set[str] = set()
    current: list[Card] = []
    for stored in sorted((c for c in chunks if c.state == "done"), key=lambda c: c.index):
        for card in stored.cards or ():
            if card.dedup_key() not in seen:
                seen.add(card.dedup_key())
                current.append(card)
    kept, _ = quality.gate(current, set(), drop_flagged=drop_flagged)
    stale = [card for c in chunks if c.state == "stale" for card in (c.cards or ())]
    return {c.id for c in kept} | {c.id for c in stale}


def find_previous(store: Store, asked: PlanSettings, spec: dict, source: str, document: Document) -> Previous | None:
    """The session a run continues: the latest of its ``source`` with its settings (``spec``), else one made by a
    version before 0.2 of the same input (read again as that version chunked it). Raises StoreError."""
    session_id = store.find_session(spec, source)
    if session_id is not None:
        return Previous(session_id, store.stored_chunks(session_id), store.session_summary(session_id))
    for session_id, old in store.legacy_sessions(document.name, document.hash):
        same = all(old.get(k) == spec[k] for k in ("provider", "base_url", "model", "chunk_tokens",
                                                   "overlap_tokens", "instructions"))  # fmt: skip
        if not same or (spec["cards"] is not None and old.get("cards") != spec["cards"]):
            continue
        found = store.session_source(session_id)
        if found is None:
            continue  # kept without its text: cannot be read again
        return legacy_previous(store, session_id, old, found[1], asked)
    return None


def legacy_previous(store: Store, session_id: str, spec: dict, document: Document, asked: PlanSettings) -> Previous:
    """A session made before 0.2, as this version keeps sessions: its chunks made again from its stored text as
    that version made them (ids by position), each with its answer's cache key and its cards, by their old ids."""
    chunks = legacy_chunks(document, asked.encoding(), spec["chunk_tokens"], spec["overlap_tokens"])
    wanted = allot_cards(chunks, int(spec.get("cards") or 1))
    rows = {c.id: c for c in store.stored_chunks(session_id)}
    prompt = spec.get("prompt", "1")  # the prompt that session's answers were made with
    summary = store.cached_summary(cache_key("summary", asked.identity, prompt, document.hash))
    context = summary or Summary(document.title, "")  # what its chunks were given when the summary failed
    out = []
    for chunk, n in zip(chunks, wanted, strict=True):
        row = rows.get(chunk.card_key)
        state = row.state if row else "queued"
        key, cards = None, None
        if state == "done":
            request = CardRequest(chunk.text, chunk.location, n, context.title, context.summary,
                                  spec.get("instructions", ""))  # fmt: skip
            key = cache_key("chunk", asked.identity, request.key_material(prompt))
            cached = store.cached_chunk(key)
            if cached is None:
                state, key = "queued", None
            else:
                cards = make_cards(chunk, bound_drafts(cached.drafts, n)[0], markdown=asked.online)
        out.append(StoredChunk(chunk.id, chunk.index, state, key, chunk.anchor, chunk.card_key, n, cards))
    return Previous(session_id, out, summary, legacy=True, legacy_text=(document.hash, chunks))


def estimate(asked: PlanSettings, chunks: list[Chunk], cards_total: int, *, done: set[str] | None = None,
             summary: bool = True) -> Estimate:  # fmt: skip
    """Tokens in and out and the price of a run, before anything is sent; ``done``: chunks answered already
    (a continued session), which are neither sent nor priced; ``summary``: whether a summary is made."""
    done = done or set()
    if chunks and all(c.cards_wanted is not None for c in chunks):
        allotted = [int(c.cards_wanted or 0) for c in chunks]
    else:
        allotted = allot_cards(chunks, cards_total)
    requested = [(c, n) for c, n in zip(chunks, allotted, strict=True) if n > 0 and c.id not in done]
    input_tokens = output_tokens = 0
    if summary and len(done) < len(chunks):
        summary_in = min(sum(c.tokens for c in chunks), model_context_tokens(asked.model, asked.context_tokens))
        input_tokens, output_tokens = summary_in + 200, SUMMARY_TOKENS
    summary_price = cost_usd(asked.model, input_tokens, output_tokens, asked.base_url) if asked.online else 0.0
    input_tokens += sum(c.tokens + SUMMARY_TOKENS + fixed_prompt_tokens() for c, _ in requested)
    cards = sum(n for _, n in requested)
    output_tokens += cards * OUTPUT_TOKENS_PER_CARD
    price = cost_usd(asked.model, input_tokens, output_tokens, asked.base_url) if asked.online else 0.0
    batch_price = None if price is None or summary_price is None else (
        summary_price + (price - summary_price) * BATCH_DISCOUNT)  # fmt: skip
    return Estimate(len(chunks) - len(done), cards, input_tokens, output_tokens, price, batch_price)
