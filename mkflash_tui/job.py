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
from .core.chunking import chunk_document
from .core.engine import Run, RunSettings, allot_cards, default_cards_total
from .core.export import ExportFormat, ExportOptions, NoteStamps, note_guid
from .core.models import Card, Chunk, Document
from .core.pricing import context_tokens as model_context_tokens
from .core.pricing import cost_usd
from .core.prompts import PROMPT_VERSION, fixed_prompt_tokens
from .core.sources import parse_bytes, read_source
from .core.store import Store, StoreError
from .core.tokens import encoding_for_model

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
class Job:
    settings: Settings
    document: Document
    chunks: list[Chunk]
    encoding_name: str
    cards_total: int
    estimate: Estimate
    done_earlier: int = 0  # chunks a resumed session answered before: not sent, not priced

    def resume_from(self, done_chunk_ids: set[str]) -> None:
        """Price only what a resumed session still has to send (its finished chunks come from the store)."""
        done = {c.id for c in self.chunks} & done_chunk_ids
        self.done_earlier = len(done)
        self.estimate = estimate(self.settings, self.chunks, self.cards_total, done=done)

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

    @property
    def deck_name(self) -> str:
        return self.settings.deck or self.document.title

    def export_options(self, *, force: bool | None = None) -> ExportOptions:
        return ExportOptions(
            deck=self.deck_name,
            title=self.document.title,
            source_stem=self.document.stem,
            tags=self.settings.tags,
            reverse=self.settings.reverse,
            subdecks=self.settings.subdecks,
            format=ExportFormat.for_path(self.output, self.settings.format),
            force=self.settings.force if force is None else force,
        )

    def session_spec(self) -> dict:
        """The settings that make two runs the same run (never the key)."""
        s = self.settings
        return {
            "provider": s.provider,
            "base_url": s.base_url,
            "model": s.model if s.online else "offline",
            "chunk_tokens": s.chunk_tokens,
            "overlap_tokens": s.overlap_tokens,
            "cards": self.cards_total,
            "instructions": s.instructions,
            "prompt": PROMPT_VERSION,
        }

    def open_session(self, store: Store) -> tuple[str, bool]:
        """This job's session in ``store``: the last one with the same input and settings, or a new one."""
        return store.open_session(
            self.session_spec(), self.document, chunks_total=len(self.chunks), fresh=self.settings.fresh
        )

    def make_run(self, *, stream: bool = True, pace: float = 0.0, store: Store | None = None,
                 session_id: str | None = None, **run_kwargs) -> Run:  # fmt: skip
        """A new Run with its provider; the OpenAI client is created later, inside the event loop."""
        return Run(
            self.document,
            self.chunks,
            make_provider(self.settings, self.document, stream=stream, pace=pace),
            RunSettings(
                concurrency=self.settings.concurrency,
                cards_total=self.cards_total,
                instructions=self.settings.instructions,
                context_tokens=self.settings.context_tokens,
                attempt_timeout=self.settings.timeout if self.settings.online else None,
            ),
            journal=store,
            session_id=session_id,
            use_cache=not (self.settings.fresh or self.settings.no_cache),
            **run_kwargs,
        )


def known_stamps(store: Store | None, cards: Iterable[Card]) -> NoteStamps | None:
    """What ``store`` knows of these cards' notes from earlier exports (None: no store, or it cannot be read)."""
    if store is None:
        return None
    try:
        return store.note_stamps(note_guid(c.id) for c in cards)
    except StoreError:
        return None


def load_document(settings: Settings, stdin=None) -> Document:
    """Read the input named by ``settings`` (or the demo text). Raises SourceError."""
    if settings.demo:
        return parse_bytes(demo_bytes(), name="demo.md", stem="demo", suffix=".md")
    return read_source(settings.input or "-", stdin=stdin)


def prepare(settings: Settings, document: Document | None = None, stdin=None) -> Job:
    """Read, chunk and estimate. Raises SourceError or ChunkingError with a sentence for the user."""
    document = document or load_document(settings, stdin=stdin)
    encoding = encoding_for_model(settings.model if settings.online else "gpt-4o-mini")
    chunks = chunk_document(document, encoding, settings.chunk_tokens, settings.overlap_tokens)
    cards_total = settings.cards or default_cards_total(chunks)
    return Job(settings, document, chunks, encoding.name, cards_total, estimate(settings, chunks, cards_total))


def estimate(settings: Settings, chunks: list[Chunk], cards_total: int, *, done: set[str] | None = None) -> Estimate:
    """Tokens in and out and the price of a run, before anything is sent; ``done``: chunks answered already
    (a resumed session), which are neither sent nor priced, and neither is the summary they were made with."""
    done = done or set()
    allotted = allot_cards(chunks, cards_total)
    requested = [(c, n) for c, n in zip(chunks, allotted, strict=True) if n > 0 and c.id not in done]
    input_tokens = output_tokens = 0
    if not done:
        summary_in = min(sum(c.tokens for c in chunks), model_context_tokens(settings.model, settings.context_tokens))
        input_tokens, output_tokens = summary_in + 200, SUMMARY_TOKENS
    input_tokens += sum(c.tokens + SUMMARY_TOKENS + fixed_prompt_tokens() for c, _ in requested)
    cards = sum(n for _, n in requested)
    output_tokens += cards * OUTPUT_TOKENS_PER_CARD
    price = cost_usd(settings.model, input_tokens, output_tokens) if settings.online else 0.0
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
        )
    from .core.providers.offline import OfflineProvider

    return OfflineProvider((b.text for b in document.blocks), pace=pace)


def settings_for_session(base: Settings, spec: dict) -> Settings:
    """``base`` with the settings a stored session was made with (its ``session_spec``), to reopen it."""
    settings = dataclasses.replace(base, input=None, demo=False, fresh=False, output=None, deck=None)
    settings.provider = spec["provider"]
    settings.provider_reason = "the session's provider"
    settings.base_url = spec.get("base_url")
    if spec["provider"] == "openai":
        settings.model = spec["model"]
    settings.chunk_tokens = spec["chunk_tokens"]
    settings.overlap_tokens = spec["overlap_tokens"]
    settings.cards = spec["cards"]
    settings.instructions = spec.get("instructions", "")
    return settings
