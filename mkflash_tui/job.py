"""Turn Settings into a ready Run: read the source, chunk it, estimate the cost, pick the provider.

Both faces (headless CLI and TUI) call ``prepare``; neither holds run logic of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import Settings
from .core import fitting, quality
from .core.chunking import CHUNKER_VERSION, ChunkingError, chunk_document, legacy_chunks
from .core.deck import ExportFormat, ExportOptions, NoteStamps, note_guid
from .core.engine import (
    MAX_CARDS_PER_CHUNK,
    TOKENS_PER_CARD,
    Run,
    RunSettings,
    allot_cards,
    bound_drafts,
    make_cards,
)
from .core.models import Card, Chunk, Document, Summary
from .core.pricing import context_tokens as model_context_tokens
from .core.pricing import cost_usd
from .core.prompts import DEFAULT_STYLE, CardRequest, fixed_prompt_tokens
from .core.providers.base import Capabilities
from .core.providers.discovery import ServerInfo
from .core.providers.presets import PRESETS, is_local_url
from .core.sources import is_url, parse_bytes, read_source
from .core.store import Store, StoredChunk, StoreError, cache_key
from .core.tokens import Encoding, encoding_for_model

OUTPUT_TOKENS_PER_CARD = 60
SUMMARY_TOKENS = 150


def demo_bytes() -> bytes:
    """The bundled sample text used by ``--demo``."""
    return resources.files("mkflash_tui.data").joinpath("demo.md").read_bytes()


@dataclass(frozen=True, slots=True)
class Estimate:
    chunks: int
    cards: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: the model's price is unknown (or the run is offline and free)


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
class Job:
    settings: Settings
    document: Document
    chunks: list[Chunk]
    encoding_name: str
    cards_total: int
    estimate: Estimate
    source: str = ""  # what finds this input's session again: its path, its --session name, or its text's hash
    previous: Previous | None = None
    changes: Changes | None = None
    known_keys: dict[str, str] = dataclasses.field(default_factory=dict)  # unchanged chunk -> its answer's key
    previous_cards: list[Card] = dataclasses.field(default_factory=list)  # of chunks gone or changed
    exported_ids: set[str] = dataclasses.field(default_factory=set)  # cards the last run would have exported
    written_ids: set[str] = dataclasses.field(default_factory=set)  # cards already written to an .apkg
    kept_summary: Summary | None = None
    server: ServerInfo | None = None  # what the server said about itself (None: offline, or not asked)
    fit: fitting.Fit | None = None  # how the run is shaped to the server's window (None: it did not say one)
    fitted: list[str] = dataclasses.field(default_factory=list)  # what was changed for the server, said once
    seconds_per_1k: float | None = None  # an earlier run's seconds per 1,000 tokens of a call to this server

    @property
    def slots(self) -> int:
        """Requests that run at once: the calls in flight, or fewer if the server serves fewer."""
        stated = self.server.slots if self.server and self.server.slots else None
        return min(self.settings.concurrency, stated) if stated else self.settings.concurrency

    def estimated_seconds(self) -> float | None:
        """How long the calls take, from the slots and an earlier run's speed on this server (None: not known)."""
        if self.seconds_per_1k is None or not self.settings.online:
            return None
        answered = self.previous.finished if self.previous and self.changes else {}
        chunks = [c for c in self.chunks if c.id not in answered]
        if not chunks:
            return 0.0
        compact = bool(self.fit and self.fit.compact)
        tokens = sum(2 * c.tokens + fitting.request_overhead(compact) for c in chunks) / len(chunks)
        per_call = self.seconds_per_1k * tokens / 1000
        return fitting.wall_seconds(len(chunks), self.slots, per_call, summary=self.kept_summary is None)

    def describe_time(self) -> str:
        """"one request at a time: about 6 minutes" (empty when the speed is not known)."""
        seconds = self.estimated_seconds()
        if seconds is None:
            return ""
        at_once = "one request at a time" if self.slots == 1 else f"{self.slots} requests at a time"
        return f"{at_once}: {fitting.describe_seconds(seconds)}"

    @property
    def done_earlier(self) -> int:
        """Chunks a continued session answered before: not sent, not priced."""
        return self.changes.unchanged if self.changes else 0

    def learn_speed(self, store: Store) -> None:
        """How fast this server answered an earlier run, for the time estimate."""
        if not self.settings.online:
            return
        speed = (server_facts(store, provider_identity(self.settings)) or {}).get("seconds_per_1k")
        self.seconds_per_1k = float(speed) if isinstance(speed, (int, float)) and speed > 0 else None

    def continue_from(self, store: Store) -> Previous | None:
        """Find the session an earlier run of this source left and plan this run as its continuation: chunk
        boundaries kept where the text is unchanged, those chunks answered from the store, the summary kept
        after a small edit, and only new or changed chunks priced. Raises StoreError."""
        if self.settings.fresh or self.settings.demo:
            return None
        previous = find_previous(store, self)
        if previous is None:
            return None
        encoding = encoding_for_model(self.settings.model if self.settings.online else "gpt-4o-mini")
        if previous.legacy_text and previous.legacy_text[0] == self.document.hash:
            chunks = previous.legacy_text[1]  # the same text: its chunks as they were, every card id kept
        else:
            anchors = [c.anchor for c in previous.chunks if c.anchor]
            chunks = chunk_document(
                self.document, encoding, self.settings.chunk_tokens, self.settings.overlap_tokens, anchors=anchors
            )
        finished = previous.finished
        if previous.legacy:
            same = [c for c in chunks if c.id in finished]
            if not same and previous.chunks:
                return None  # not this input's session after all: nothing of its text is here
        self.previous = previous
        self.chunks = self._plan(chunks, finished)
        kept = [c for c in self.chunks if c.id in finished]
        current = {c.id for c in self.chunks}
        kept_card_ids = {card.id for c in kept for card in (finished[c.id].cards or ())}
        self.known_keys = {c.id: finished[c.id].key for c in kept if finished[c.id].key}  # type: ignore[misc]
        self.previous_cards = [
            card
            for stored in previous.chunks
            if stored.id not in current and stored.state in ("done", "stale")
            for card in (stored.cards or ())
            if card.id not in kept_card_ids
        ]
        self.exported_ids = last_exported(previous.chunks, drop_flagged=self.settings.drop_flagged)
        earlier = {card.id for stored in previous.chunks for card in (stored.cards or ())}
        stamps = store.note_stamps(note_guid(card_id) for card_id in earlier)
        self.written_ids = {card_id for card_id in earlier if note_guid(card_id) in stamps}
        # The summary stays while most of the text is the same, answered or not (a run resumed after a crash
        # keeps it however few chunks it had finished).
        seen = {c.id for c in previous.chunks}
        if not previous.legacy and store.session_text_hash(previous.session_id) == self.document.hash:
            same = list(self.chunks)  # the very text of the last run (stopped part way): nothing is new
        else:
            same = [c for c in self.chunks if c.id in seen]
        summary_kept = (
            previous.summary is not None and not self.settings.no_cache and 2 * len(same) >= len(self.chunks)
        )
        self.kept_summary = previous.summary if summary_kept else None
        removed = sum(1 for c in previous.chunks if c.state in ("done", "skipped") and c.id not in current)
        self.changes = Changes(len(kept), len(self.chunks) - len(same), removed, summary_kept,
                               pending=len(same) - len(kept))  # fmt: skip
        self.cards_total = sum(c.cards_wanted or 0 for c in self.chunks)
        self.estimate = estimate(self.settings, self.chunks, self.cards_total,
                                 done={c.id for c in kept}, summary=not summary_kept)  # fmt: skip
        return previous

    def start_over(self) -> None:
        """Forget the earlier session: a new one, every chunk sent (the user chose not to continue)."""
        self.settings.fresh = True
        self.previous = self.changes = self.kept_summary = None
        self.known_keys, self.previous_cards, self.exported_ids, self.written_ids = {}, [], set(), set()
        self.chunks = self._plan([dataclasses.replace(c, card_prefix="", cards_wanted=None) for c in self.chunks], {})
        self.cards_total = sum(c.cards_wanted or 0 for c in self.chunks)
        self.estimate = estimate(self.settings, self.chunks, self.cards_total)

    def _plan(self, chunks: list[Chunk], finished: dict[str, StoredChunk]) -> list[Chunk]:
        """Each chunk's card count and card id prefix: an unchanged chunk keeps its earlier ones."""
        return plan_chunks(chunks, self.settings.cards, finished)

    def default_output(self) -> Path:
        return Path("demo.apkg" if self.settings.demo else f"{self.document.stem}.apkg")

    @property
    def output(self) -> Path:
        return self.settings.output or self.default_output()

    @property
    def over_budget(self) -> bool:
        """The estimate is known and above ``--max-cost`` (an unknown price cannot be said to exceed it)."""
        cost, limit = self.estimate.cost_usd, self.settings.max_cost
        return limit is not None and cost is not None and cost > limit

    def export_options(self, *, force: bool | None = None, title: str | None = None) -> ExportOptions:
        """How to export this job's cards; ``title``: the run's title (``Run.title``), when there is a run."""
        title = title or self.document.title
        return ExportOptions(
            deck=self.settings.deck or title,
            title=title,
            source_stem=self.document.stem,
            tags=self.settings.tags,
            reverse=self.settings.reverse,
            subdecks=self.settings.subdecks,
            format=ExportFormat.for_path(self.output, self.settings.format),
            force=self.settings.force if force is None else force,
        )

    def session_spec(self) -> dict:
        """The settings that make two runs of one source the same session (never the key)."""
        return session_spec(self.settings)

    def open_session(self, store: Store) -> tuple[str, bool]:
        """Open this job's session in ``store``: the one it continues (its chunks that are gone become stale),
        or a new one. Returns (id, continued)."""
        previous = None if self.settings.fresh else self.previous
        session_id, continued = store.open_session(
            self.session_spec(),
            self.document,
            source_key=self.source,
            chunks_total=len(self.chunks),
            continue_id=previous.session_id if previous else None,
        )
        if continued and previous is not None:
            if previous.legacy:
                store.replace_chunks(session_id, previous.chunks)
            store.set_chunks(session_id, [c.id for c in self.chunks])
        return session_id, continued

    def make_run(self, *, stream: bool = True, pace: float = 0.0, store: Store | None = None,
                 session_id: str | None = None, **run_kwargs) -> Run:  # fmt: skip
        """A new Run with its provider; the OpenAI client is created later, inside the event loop."""
        provider = make_provider(self.settings, self.document, stream=stream, pace=pace)
        if store is not None and not self.settings.fresh:
            learn_server(provider, store)
        fit = self.fit
        return Run(
            self.document,
            self.chunks,
            provider,
            RunSettings(
                concurrency=self.settings.concurrency,
                cards_total=self.cards_total,
                instructions=self.settings.instructions,
                language=self.settings.language if self.settings.online else None,
                style=self.settings.style if self.settings.online else DEFAULT_STYLE,
                context_tokens=self.settings.context_tokens,
                attempt_timeout=self.settings.timeout if self.settings.online else None,
                drop_flagged=self.settings.drop_flagged,
                window=fit.window if fit else None,
                compact=bool(fit and fit.compact),
                summary_input_tokens=fit.summary_input_tokens if fit else None,
                server_slots=self.server.slots if self.server else None,
                queue_prone=self.settings.online and is_local_url(self.settings.base_url),
            ),
            journal=store,
            session_id=session_id,
            use_cache=not (self.settings.fresh or self.settings.no_cache),
            summary=self.kept_summary,
            known_keys=self.known_keys,
            previous_cards=self.previous_cards,
            exported_ids=self.exported_ids,
            keep_ids=self.written_ids,
            **run_kwargs,
        )


def forget_unused_session(store: Store | None, session_id: str | None, run: Run, *, resumed: bool) -> bool:
    """A new session whose run stopped before any chunk was sent (a refused key, nothing at the address) holds
    nothing: it is removed, so ``sessions`` lists only work. Returns whether it was."""
    if store is None or session_id is None or resumed:
        return False
    if any(s.attempt or s.state.finished for s in run.status.values()):
        return False
    try:
        return store.remove_session(session_id)
    except StoreError:
        return False


def learn_server(provider, store: Store) -> None:
    """Give ``provider`` what an earlier run learned about its server (how it takes structured output, whether
    it takes more than one request at a time), so no request is spent finding it out again."""
    if getattr(provider, "capabilities", None) is None:
        return
    known = Capabilities.from_dict(server_facts(store, provider.cache_identity))
    if known is not None:
        provider.capabilities = known


def server_facts(store: Store, identity: tuple[str, ...]) -> dict | None:
    """What earlier runs learned about this server and model (None: nothing, or the store cannot be read)."""
    try:
        return store.server_facts(cache_key("server", *identity))
    except StoreError:
        return None


def discover_server(settings: Settings) -> ServerInfo | None:
    """Ask the server what it is (a second or two at most, never fatal); None for the offline generator."""
    if not settings.online:
        return None
    from .core.providers.discovery import discover

    return discover(settings.base_url, settings.api_key, settings.model)


def fit_to_server(settings: Settings, server: ServerInfo | None) -> tuple[fitting.Fit | None, list[str]]:
    """Shape ``settings`` to the server: chunks that fit its window (stated, or ``--context-tokens``), and as
    many calls in flight as it has slots (unless ``--concurrency`` or a profile says otherwise). Returns the fit
    and the sentences saying what changed. Raises ChunkingError when the window holds no useful chunk."""
    notes: list[str] = []
    window = settings.context_tokens or (server.window if server else None)
    fit = None
    if window and settings.online:
        try:
            fit = fitting.fit(window, settings.chunk_tokens, settings.overlap_tokens)
        except fitting.WindowTooSmall as exc:
            raise ChunkingError(str(exc)) from None
        settings.chunk_tokens, settings.overlap_tokens = fit.chunk_tokens, fit.overlap_tokens
        if fit.sentence():
            notes.append(fit.sentence())
    slots = server.slots if server and settings.online and not settings.concurrency_explicit else None
    if slots and settings.concurrency != slots:
        notes.append(f"the server serves {slots} request{'s' if slots != 1 else ''} at once: {slots} in flight")
        settings.concurrency = slots
    return fit, notes


def known_stamps(store: Store | None, cards: Iterable[Card]) -> NoteStamps | None:
    """What ``store`` knows of these cards' notes from earlier exports (None: no store, or it cannot be read)."""
    if store is None:
        return None
    try:
        return store.note_stamps(note_guid(c.id) for c in cards)
    except StoreError:
        return None


def send_to_anki(cards: list[Card], options: ExportOptions, store: Store | None, *, url: str, key: str | None,
                 prune: bool = False, readd: bool = False):  # fmt: skip
    """Push ``cards`` to the Anki whose AnkiConnect listens at ``url``, keeping each card's Anki note id in the
    store. Returns the PushReport; raises AnkiConnectError (one sentence; nothing of the session is lost)."""
    from .core.ankiconnect import AnkiConnect, push

    anki = AnkiConnect(url, key)
    guids = [note_guid(c.id) for c in cards]
    try:
        known = store.anki_notes(anki.url, guids) if store is not None else {}
    except StoreError:
        known = {}
    report, remember, forget = push(anki, cards, options, known=known, stamps=known_stamps(store, cards),
                                    prune=prune, readd=readd)  # fmt: skip
    if store is not None:
        try:
            store.save_anki_notes(anki.url, remember, forget)
            if report.stamps:
                store.save_note_stamps(report.stamps)
        except StoreError:
            pass  # Anki has the notes; a later push finds them again by their text
    return report


def load_document(settings: Settings, stdin=None) -> Document:
    """Read the input named by ``settings`` (or the demo text). Raises SourceError."""
    if settings.demo:
        return parse_bytes(demo_bytes(), name="demo.md", stem="demo", suffix=".md")
    return read_source(settings.input or "-", stdin=stdin)


def prepare(settings: Settings, document: Document | None = None, stdin=None,
            server: ServerInfo | None = None) -> Job:  # fmt: skip
    """Read, fit to the server, chunk and estimate. Raises SourceError or ChunkingError with a sentence for the
    user. ``server``: what the server said about itself (``discover_server``)."""
    document = document or load_document(settings, stdin=stdin)
    fit, fitted = fit_to_server(settings, server)
    encoding = encoding_for_model(settings.model if settings.online else "gpt-4o-mini")
    chunks = plan_chunks(chunk_document(document, encoding, settings.chunk_tokens, settings.overlap_tokens),
                         settings.cards, {})  # fmt: skip
    cards_total = sum(c.cards_wanted or 0 for c in chunks)
    job = Job(settings, document, chunks, encoding.name, cards_total, estimate(settings, chunks, cards_total))
    job.source = source_key(settings, document)
    job.server, job.fit, job.fitted = server, fit, fitted
    return job


def source_key(settings: Settings, document: Document) -> str:
    """What finds an input's session again: ``--session NAME``, the file's absolute path, or (stdin, a paste)
    the text's hash."""
    if settings.source:
        return settings.source
    if settings.demo:
        return "demo"
    if settings.session:
        return f"name:{settings.session}"
    if settings.input and is_url(settings.input):
        return f"url:{settings.input.strip()}"
    if settings.input and settings.input != "-":
        return f"path:{Path(settings.input).expanduser().absolute()}"
    return f"text:{document.hash}"


def session_spec(settings: Settings) -> dict:
    s = settings
    return {
        "provider": s.provider,
        "base_url": s.base_url,
        "model": s.model if s.online else "offline",
        "chunk_tokens": s.chunk_tokens,
        "overlap_tokens": s.overlap_tokens,
        "cards": s.cards,  # None: by each chunk's size
        "instructions": s.instructions,
        "chunker": CHUNKER_VERSION,
        # Only when set: sessions of the default language and style keep the identity earlier versions gave them.
        **({"language": s.language} if s.language and s.online else {}),
        **({"style": s.style} if s.style != DEFAULT_STYLE and s.online else {}),
    }


def cards_for_size(chunk: Chunk) -> int:
    """A chunk's cards by its own size only (so an edit elsewhere never changes it): one per
    ``TOKENS_PER_CARD`` tokens of its body, at least one."""
    body_tokens = chunk.tokens * len(chunk.body) / max(1, len(chunk.text))
    return max(1, min(MAX_CARDS_PER_CHUNK, round(body_tokens / TOKENS_PER_CARD)))


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
    order, through the quality gate (as ``Run.cards`` chooses), and its stale cards."""
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


def provider_identity(settings: Settings) -> tuple[str, ...]:
    """What the provider's ``cache_identity`` is, without making the provider."""
    if settings.online:
        return ("openai", settings.base_url or "https://api.openai.com/v1", settings.model)
    return ("offline", "", "offline")


def find_previous(store: Store, job: Job) -> Previous | None:
    """The session this job continues: the latest of its source with its settings, else one made by a version
    before 0.2 of the same input (read again as that version chunked it). Raises StoreError."""
    session_id = store.find_session(job.session_spec(), job.source)
    if session_id is not None:
        return Previous(session_id, store.stored_chunks(session_id), store.session_summary(session_id))
    spec = job.session_spec()
    for session_id, old in store.legacy_sessions(job.document.name, job.document.hash):
        same = all(old.get(k) == spec[k] for k in ("provider", "base_url", "model", "chunk_tokens",
                                                   "overlap_tokens", "instructions"))  # fmt: skip
        if not same or (spec["cards"] is not None and old.get("cards") != spec["cards"]):
            continue
        source = store.session_source(session_id)
        if source is None:
            continue  # kept without its text: cannot be read again
        return legacy_previous(store, session_id, old, source[1], job.settings)
    return None


def legacy_previous(store: Store, session_id: str, spec: dict, document: Document, settings: Settings) -> Previous:
    """A session made before 0.2, as this version keeps sessions: its chunks made again from its stored text as
    that version made them (ids by position), each with its answer's cache key and its cards, by their old ids."""
    encoding: Encoding = encoding_for_model(settings.model if settings.online else "gpt-4o-mini")
    chunks = legacy_chunks(document, encoding, spec["chunk_tokens"], spec["overlap_tokens"])
    wanted = allot_cards(chunks, int(spec.get("cards") or 1))
    rows = {c.id: c for c in store.stored_chunks(session_id)}
    identity = provider_identity(settings)
    prompt = spec.get("prompt", "1")  # the prompt that session's answers were made with
    summary = store.cached_summary(cache_key("summary", identity, prompt, document.hash))
    context = summary or Summary(document.title, "")  # what its chunks were given when the summary failed
    out = []
    for chunk, n in zip(chunks, wanted, strict=True):
        row = rows.get(chunk.card_key)
        state = row.state if row else "queued"
        key, cards = None, None
        if state == "done":
            request = CardRequest(chunk.text, chunk.location, n, context.title, context.summary,
                                  spec.get("instructions", ""))  # fmt: skip
            key = cache_key("chunk", identity, request.key_material(prompt))
            cached = store.cached_chunk(key)
            if cached is None:
                state, key = "queued", None
            else:
                cards = make_cards(chunk, bound_drafts(cached.drafts, n)[0], markdown=settings.online)
        out.append(StoredChunk(chunk.id, chunk.index, state, key, chunk.anchor, chunk.card_key, n, cards))
    return Previous(session_id, out, summary, legacy=True, legacy_text=(document.hash, chunks))


def estimate(settings: Settings, chunks: list[Chunk], cards_total: int, *, done: set[str] | None = None,
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
        summary_in = min(sum(c.tokens for c in chunks), model_context_tokens(settings.model, settings.context_tokens))
        input_tokens, output_tokens = summary_in + 200, SUMMARY_TOKENS
    input_tokens += sum(c.tokens + SUMMARY_TOKENS + fixed_prompt_tokens() for c, _ in requested)
    cards = sum(n for _, n in requested)
    output_tokens += cards * OUTPUT_TOKENS_PER_CARD
    price = cost_usd(settings.model, input_tokens, output_tokens, settings.base_url) if settings.online else 0.0
    return Estimate(len(chunks) - len(done), cards, input_tokens, output_tokens, price)


def make_provider(settings: Settings, document: Document, *, stream: bool = True, pace: float = 0.0):
    """The provider the settings ask for. ``stream``: report tokens as they arrive (costs CPU per token).

    ``pace``: seconds the offline generator takes per call, so a person can watch the demo happen.
    """
    if settings.online:
        from .core.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(
            model=settings.model,
            api_key=settings.api_key,
            base_url=settings.base_url,
            key_source=settings.key_source,
            timeout=settings.timeout,
            max_connections=max(100, settings.concurrency * 2),
            stream=stream,
            queue_tolerant=is_local_url(settings.base_url),
        )
    from .core.providers.offline import OfflineProvider

    provider = OfflineProvider((b.text for b in document.blocks), pace=pace)
    if document.has_title:
        provider.set_title(document.title)
    return provider


def settings_for_session(base: Settings, spec: dict, source: str | None = None) -> Settings:
    """``base`` with the settings a stored session was made with (its ``session_spec``), to reopen it."""
    settings = dataclasses.replace(base, input=None, demo=False, fresh=False, output=None, deck=None)
    settings.provider = spec["provider"]
    settings.provider_reason = "the session's provider"
    settings.base_url = spec.get("base_url")
    if spec["provider"] == "openai":
        settings.model = spec["model"]
    settings.chunk_tokens = spec["chunk_tokens"]
    settings.overlap_tokens = spec["overlap_tokens"]
    settings.cards = spec["cards"] if spec.get("chunker") else None  # before 0.2 it was always the total
    settings.instructions = spec.get("instructions", "")
    settings.language = spec.get("language")
    settings.style = spec.get("style", DEFAULT_STYLE)
    if spec["provider"] == "openai":
        settings.preset = next((p.name for p in PRESETS.values() if p.base_url and p.base_url == settings.base_url),
                               "openai")  # fmt: skip
    else:
        settings.preset = "offline"
    settings.source = source
    return settings
