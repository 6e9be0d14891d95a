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
from .core import fitting, plan
from .core.chunking import CHUNKER_VERSION, ChunkingError
from .core.deck import ExportFormat, ExportOptions, NoteStamps, note_guid
from .core.engine import Run, RunSettings
from .core.models import Card, Chunk, Document, Summary
from .core.plan import Changes, Estimate, Plan, PlanSettings, Previous
from .core.prompts import DEFAULT_STYLE
from .core.providers.base import Capabilities
from .core.providers.discovery import ServerInfo
from .core.providers.presets import PRESETS, is_local_url
from .core.sources import is_url, parse_bytes, read_source
from .core.store import Store, StoreError, cache_key
from .format import plural

__all__ = ["Changes", "Estimate", "Job", "Previous", "prepare"]


def demo_bytes() -> bytes:
    """The bundled sample text used by ``--demo``."""
    return resources.files("mkflash_tui.data").joinpath("demo.md").read_bytes()


@dataclass(slots=True)
class Job:
    """A run about to be made: the settings, the document, the plan (``core.plan``: what will be sent, and what
    an earlier session of the same source answered) and what the server said about itself."""

    settings: Settings
    document: Document
    plan: Plan
    encoding_name: str
    source: str = ""  # what finds this input's session again: its path, its --session name, or its text's hash
    server: ServerInfo | None = None  # what the server said about itself (None: offline, or not asked)
    fit: fitting.Fit | None = None  # how the run is shaped to the server's window (None: it did not say one)
    fitted: list[str] = dataclasses.field(default_factory=list)  # what was changed for the server, said once
    seconds_per_1k: float | None = None  # an earlier run's seconds per 1,000 tokens of a call to this server
    taken_up: str | None = None  # why this run goes on in batch mode: its session's batches still run (said once)

    @property
    def slots(self) -> int:
        """Requests that run at once: the calls in flight, or fewer if the server serves fewer."""
        stated = self.server.slots if self.server and self.server.slots else None
        return min(self.settings.concurrency, stated) if stated else self.settings.concurrency

    # What the plan says, as the faces ask it.
    chunks = property(lambda self: self.plan.chunks)
    estimate = property(lambda self: self.plan.estimate)
    previous = property(lambda self: self.plan.previous)
    changes = property(lambda self: self.plan.changes)
    cards_total = property(lambda self: self.plan.cards_total)
    done_earlier = property(lambda self: self.plan.done_earlier, doc="chunks answered before: not sent, not priced")
    written_ids = property(lambda self: self.plan.written_ids)

    @property
    def kept_summary(self) -> Summary | None:
        return self.plan.kept_summary

    @kept_summary.setter
    def kept_summary(self, summary: Summary | None) -> None:
        self.plan.kept_summary = summary

    @property
    def asked(self) -> PlanSettings:
        return plan_settings(self.settings)

    def estimated_seconds(self) -> float | None:
        """How long the calls take, from the slots and an earlier run's speed on this server (None: not known)."""
        if self.seconds_per_1k is None or not self.settings.online:
            return None
        return self.plan.seconds(self.seconds_per_1k, self.slots, compact=bool(self.fit and self.fit.compact))

    def describe_time(self) -> str:
        """"one request at a time: about 6 minutes" (empty when the speed is not known)."""
        seconds = self.estimated_seconds()
        if seconds is None:
            return ""
        at_once = "one request at a time" if self.slots == 1 else f"{self.slots} requests at a time"
        return f"{at_once}: {fitting.describe_seconds(seconds)}"

    def learn_speed(self, store: Store) -> None:
        """How fast this server answered an earlier run, for the time estimate."""
        if not self.settings.online:
            return
        speed = (server_facts(store, self.asked.identity) or {}).get("seconds_per_1k")
        self.seconds_per_1k = float(speed) if isinstance(speed, (int, float)) and speed > 0 else None

    def continue_from(self, store: Store) -> Previous | None:
        """Find the session an earlier run of this source left and plan this run as its continuation
        (``plan.continue_session``). Raises StoreError."""
        if self.settings.fresh or self.settings.demo:
            return None
        asked = self.asked
        previous = plan.find_previous(store, asked, self.session_spec(), self.source, self.document)
        if previous is None:
            return None
        continued = plan.continue_session(asked, store, self.document, previous)
        if continued is None:
            return None
        self.plan = continued
        return previous

    def start_over(self) -> None:
        """Forget the earlier session: a new one, every chunk sent (the user chose not to continue)."""
        self.settings.fresh = True
        self.plan = plan.start_over(self.asked, self.plan)

    def default_output(self) -> Path:
        return Path("demo.apkg" if self.settings.demo else f"{self.document.stem}.apkg")

    @property
    def output(self) -> Path:
        return self.settings.output or self.default_output()

    @property
    def over_budget(self) -> bool:
        """The estimate is known and above ``--max-cost`` (an unknown price cannot be said to exceed it)."""
        cost, limit = self.price, self.settings.max_cost
        return limit is not None and cost is not None and cost > limit

    @property
    def price(self) -> float | None:
        """The estimated price of the run as it will be sent (through the batch engine with ``--batch``)."""
        return self.estimate.batch_cost_usd if self.settings.batch else self.estimate.cost_usd

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
                 session_id: str | None = None, provider=None, **run_kwargs) -> Run:  # fmt: skip
        """A new Run with its provider (``provider``: one shared with other runs, whose closing is the caller's);
        the OpenAI client is created later, inside the event loop."""
        if provider is None:
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
            known_keys=self.plan.known_keys,
            previous_cards=self.plan.previous_cards,
            exported_ids=self.plan.exported_ids,
            keep_ids=self.plan.written_ids,
            stored_cards=self.plan.stored_cards,
            **run_kwargs,
        )


def batch_desk(settings: Settings, provider, store: Store, job_id: str, emit=None):
    """The batches of a ``--batch`` job (``core.batch``), at the provider's limits."""
    from .core.batch import FIRST_POLL, LIMITS, BatchDesk

    limits = LIMITS.get(settings.preset, LIMITS["openai"])
    if settings.batch_token_limit is not None:
        limits = dataclasses.replace(limits, tokens=settings.batch_token_limit)
    return BatchDesk(provider, store, job_id, limits=limits, first_poll=settings.batch_poll or FIRST_POLL, emit=emit)


def take_up_batches(settings: Settings, store: Store, job_id: str) -> str | None:
    """A job with requests in batches at this server that no run has collected yet (still running, or ended with
    their answers kept) goes on in batch mode, ``--batch`` or not, so that no request is paid for twice; the
    sentence that says so (None: nothing to take up)."""
    if settings.batch or not settings.online:
        return None
    server = f"{settings.base_url or 'https://api.openai.com/v1'} {settings.model}"
    try:
        held = [r for r in store.batches(job_id) if r.batch_id and r.server == server
                and (not r.final or (r.output is not None and r.status != "failed"))]  # fmt: skip
        finished: dict[str, set[str]] = {}
        waiting = 0
        for record in held:
            for custom_id in record.lines:
                session, _, chunk = custom_id.partition(":")
                if session not in finished:
                    finished[session] = {c.id for c in store.stored_chunks(session) if c.state in ("done", "skipped")}
                waiting += chunk not in finished[session]
    except StoreError:
        return None
    if not waiting:
        return None
    settings.batch = True
    return (f"{plural(waiting, 'request')} of this session {'is' if waiting == 1 else 'are'} in batches at the "
            "provider, not yet collected: taking them up in batch mode, so that nothing is paid for twice")


def batch_run(job: Job, store: Store, session_id: str, desk_for, **run_kwargs) -> Run:
    """``job``'s run with its whole chunks answered through a batch engine: ``desk_for(provider)`` gives the
    desk (one for the job; a shelf's documents share one)."""
    from .core.batch import BatchTransport
    from .core.transport import LiveTransport

    provider = make_provider(job.settings, job.document, stream=False)
    if not job.settings.fresh:
        learn_server(provider, store)
    transport = BatchTransport(LiveTransport(provider), desk_for(provider), session_id)
    return job.make_run(stream=False, store=store, session_id=session_id, provider=provider, transport=transport,
                        **run_kwargs)  # fmt: skip


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
        # Notes other sessions' cards became: never taken over by a card of the same text here.
        claimed = store.anki_note_ids(anki.url) - {nid for nid, _ in known.values()} if store is not None else set()
    except StoreError:
        known, claimed = {}, set()
    report, remember, forget = push(anki, cards, options, known=known, stamps=known_stamps(store, cards),
                                    prune=prune, readd=readd, claimed=claimed)  # fmt: skip
    if store is not None:
        try:
            store.save_anki_notes(anki.url, remember, forget)
            if report.stamps:
                store.save_note_stamps(report.stamps)
        except StoreError:
            pass  # Anki has the notes; a later push finds them again by their text
    return report


def read_known(settings: Settings) -> tuple[list, str | None] | None:
    """The notes of the user's collection (``core.known``): ``--against``'s file, else the Anki behind
    AnkiConnect when it answers (with its address); None when there is neither. Raises KnownError for a file that
    cannot be read. Blocking: faces call it in a thread."""
    from .core.ankiconnect import AnkiConnect, AnkiConnectError
    from .core.known import read_ankiconnect, read_file

    if settings.against:
        return read_file(settings.against), None
    anki = AnkiConnect(settings.anki_url, settings.anki_key)
    try:
        anki.check()
        return read_ankiconnect(anki), anki.url
    except AnkiConnectError:
        return None


def known_index(read: tuple[list, str | None], store: Store | None, cards: list[Card]):
    """The notes ``read_known`` read, less this session's own (by GUID, or by the note id a push kept), in one
    ``KnownIndex`` to mark ``cards`` with."""
    from .core.known import KnownIndex

    notes, anki_url = read
    guids = {note_guid(c.id) for c in cards}
    if anki_url is None:
        return KnownIndex(notes, own_guids=guids)
    try:
        own = store.anki_notes(anki_url, guids) if store is not None else {}
    except StoreError:
        own = {}
    return KnownIndex(notes, own_guids=guids, own_ids=[nid for nid, _ in own.values()])


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
    asked = plan_settings(settings)
    job = Job(settings, document, plan.plan_document(asked, document), asked.encoding().name)
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


def plan_settings(settings: Settings) -> PlanSettings:
    """What of the settings shapes a plan."""
    return PlanSettings(settings.online, settings.model, settings.base_url, settings.chunk_tokens,
                        settings.overlap_tokens, settings.cards, settings.context_tokens,
                        no_cache=settings.no_cache, drop_flagged=settings.drop_flagged)  # fmt: skip


def provider_identity(settings: Settings) -> tuple[str, ...]:
    """What the provider's ``cache_identity`` is, without making the provider."""
    return plan_settings(settings).identity


def estimate(settings: Settings, chunks: list[Chunk], cards_total: int, *, done: set[str] | None = None,
             summary: bool = True) -> Estimate:  # fmt: skip
    """``plan.estimate`` for these settings."""
    return plan.estimate(plan_settings(settings), chunks, cards_total, done=done, summary=summary)


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
