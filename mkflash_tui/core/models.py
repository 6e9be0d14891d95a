"""Plain data shared by every part of mkflash-tui: documents, chunks, cards and run events.

Nothing here does I/O. Ids are assigned once, when a thing is created, and never derived from text a user
can edit (see ``make_card_id``).
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from .prompts import DEFAULT_STYLE


def short_hash(text: str, length: int = 12) -> str:
    """Return a stable hex digest prefix of ``text`` (sha256)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph-sized piece of a document with the structure a card should point back to."""

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """Text read from one source, split into blocks that remember their heading path or page."""

    blocks: tuple[Block, ...]
    title: str
    name: str  # what the user gave: a path, or "-" for stdin
    stem: str  # default base name for outputs
    kind: str  # "text", "markdown", "html", "pdf"

    @property
    def text(self) -> str:
        """The whole document as plain text, blocks separated by blank lines."""
        return "\n\n".join(b.text for b in self.blocks)

    @property
    def has_title(self) -> bool:
        """Whether the document names itself (a heading, front matter, metadata), rather than by its file."""
        return bool(self.title) and self.title != self.stem

    @property
    def hash(self) -> str:
        """Identity of the document's content (independent of its name)."""
        return short_hash(self.text, 16)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One token-bounded piece of a document; the unit of one LLM call."""

    id: str
    index: int
    text: str
    tokens: int
    headings: tuple[str, ...] = ()
    page: int | None = None
    overlap_chars: int = 0  # text[:overlap_chars] repeats the end of the previous chunk
    anchor: tuple[str, int, str] = ("", 0, "")  # (hash of the first body unit, body units, hash of the body)
    cards_wanted: int | None = None  # None: the run spreads its card total over the chunks
    card_prefix: str = ""  # what its cards' ids start with: its id, or the id an earlier version gave it
    places: tuple[tuple[int, tuple[str, ...], int | None], ...] = ()  # (offset in text, headings, page) changes

    def place_of(self, offset: int) -> tuple[tuple[str, ...], int | None]:
        """The heading path and page of the text at ``offset`` (the chunk's own when it has no places)."""
        headings, page = self.headings, self.page
        for start, place_headings, place_page in self.places:
            if start > offset:
                break
            headings, page = place_headings, place_page
        return headings, page

    @property
    def card_key(self) -> str:
        return self.card_prefix or self.id

    @property
    def body(self) -> str:
        """The chunk's own text, without the overlap carried from the previous chunk."""
        return self.text[self.overlap_chars :]

    @property
    def location(self) -> str:
        """Where the chunk came from, for people: "Chapter › Section" or "page 4"."""
        if self.page is not None:
            return f"page {self.page}"
        return " › ".join(self.headings)

    @property
    def label(self) -> str:
        """A short human label: the heading, or the first words of the text."""
        if self.headings:
            return self.headings[-1]
        words = self.body.split()
        label = " ".join(words[:8])
        return label + ("…" if len(words) > 8 else "")


def make_chunk_id(text: str, occurrence: int = 0) -> str:
    """A chunk's id: the hash of its text and how many earlier chunks have the same text (so repeated
    boilerplate does not collide). It follows the content: the same text has the same id wherever it moves."""
    return f"{short_hash(text, 16)}.{occurrence}"


def legacy_chunk_id(document_hash: str, index: int) -> str:
    """The id versions before 0.2 gave a chunk: the whole input's hash and the chunk's position."""
    return f"{document_hash[:12]}-{index:04d}"


class CardKind(enum.StrEnum):
    BASIC = "basic"
    CLOZE = "cloze"


@dataclass(frozen=True, slots=True)
class CardDraft:
    """A card as a generator proposes it, before it gets an id."""

    front: str
    back: str
    quote: str = ""
    kind: CardKind = CardKind.BASIC


@dataclass(slots=True)
class Card:
    """A flashcard. ``id`` is immutable; ``front`` and ``back`` may be edited by the user."""

    id: str
    chunk_id: str
    chunk_index: int
    ordinal: int
    front: str
    back: str
    quote: str
    kind: CardKind
    headings: tuple[str, ...] = ()
    page: int | None = None
    original_front: str = ""
    original_back: str = ""
    stale: bool = False  # made from text the source no longer has (kept, tagged mkflash::stale on export)
    flags: tuple[str, ...] = ()  # what the quality gate found wrong with it (core.quality.Flag values)
    markdown: bool = False  # a model wrote front and back (its Markdown is rendered); else they are the document's
    known: str = field(default="", compare=False)  # the note of the user's collection it repeats (core.known)
    _dedup: str = field(default="", repr=False, compare=False)
    _near: tuple = field(default=(), repr=False, compare=False)  # core.quality's features of the original text

    def __post_init__(self) -> None:
        if not self.original_front:
            self.original_front = self.front
        if not self.original_back:
            self.original_back = self.back

    @property
    def location(self) -> str:
        """Where the card's text came from: "Chapter › Section" or "page 4"."""
        if self.page is not None:
            return f"page {self.page}"
        return " › ".join(self.headings)

    @property
    def edited(self) -> bool:
        return (self.front, self.back) != (self.original_front, self.original_back)

    def dedup_key(self) -> str:
        """What makes two cards the same card (of the original text, which never changes: computed once)."""
        if not self._dedup:
            self._dedup = normalise_for_dedup(self.original_front) + "\x00" + normalise_for_dedup(self.original_back)
        return self._dedup


def make_card_id(chunk_id: str, ordinal: int, front: str, back: str) -> str:
    """Card ids: chunk id + ordinal + a hash of the card's original text. Never recomputed after edits."""
    return f"{chunk_id}-{ordinal:03d}-{short_hash(front + chr(0) + back, 8)}"


_SPACE = re.compile(r"\s+")
_PUNCT_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def normalise_for_dedup(text: str) -> str:
    """Case-, space- and edge-punctuation-insensitive form used to spot identical cards."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SPACE.sub(" ", text).strip()
    return _PUNCT_EDGE.sub("", text)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class Summary:
    title: str
    summary: str


class ChunkState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # no cards were allotted to it (--cards smaller than the number of chunks)
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (ChunkState.DONE, ChunkState.SKIPPED)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of everything a Run reports. ``at`` is seconds since the run started (injectable clock)."""

    at: float


@dataclass(frozen=True, slots=True)
class SummaryStarted(Event):
    pass


@dataclass(frozen=True, slots=True)
class SummaryFinished(Event):
    summary: Summary
    usage: Usage


@dataclass(frozen=True, slots=True)
class SummaryFailed(Event):
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkQueued(Event):
    chunk_id: str
    index: int


@dataclass(frozen=True, slots=True)
class ChunkStarted(Event):
    chunk_id: str
    index: int
    attempt: int


@dataclass(frozen=True, slots=True)
class ChunkProgress(Event):
    chunk_id: str
    index: int
    tokens: int  # completion tokens streamed so far in this attempt


@dataclass(frozen=True, slots=True)
class ChunkRetrying(Event):
    chunk_id: str
    index: int
    attempt: int  # the attempt that will come next
    wait: float
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkFinished(Event):
    chunk_id: str
    index: int
    cards: tuple[Card, ...]
    usage: Usage
    seconds: float
    skipped: bool = False
    note: str = ""  # why it made no cards, when it made none ("the model's answer was empty")


@dataclass(frozen=True, slots=True)
class ChunkFailed(Event):
    chunk_id: str
    index: int
    reason: str
    raw_output: str = ""
    cancelled: bool = False


class SpanKind(enum.StrEnum):
    ATTEMPT = "attempt"  # one request sent, until its answer (or its failure)
    REPAIR = "repair"  # an attempt that shows the model its unreadable answer
    WAIT = "wait"  # no request in flight: ``detail`` says for what (retry-after, backoff, throttle, queue)
    PART = "part"  # a part of a chunk (a half, or a piece that fits the window), over its attempts
    CACHE = "cache"  # answered with no call: ``detail`` says from where (an earlier run, a repeat)


@dataclass(frozen=True, slots=True)
class Span(Event):
    """Something that took time, reported when it ended (``at``): it began at ``start``. A run's timeline can be
    drawn from these alone. ``chunk_id`` is None for the summary (whose ``index`` is -1)."""

    start: float
    kind: SpanKind
    chunk_id: str | None
    index: int
    detail: str = ""  # an attempt's outcome ("answered", or why not); a wait's cause; a part's place ("2/3")
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class LimitChanged(Event):
    limit: int


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something the run learned and changed about how it sends (said once, by every face)."""

    text: str


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    done: int
    failed: int
    cards: int
    fatal: str | None = None
    cancelled: bool = False


@dataclass(slots=True)
class RunStats:
    """Counters a run keeps for reports (``--json``) and the TUI's status bar."""

    requests: int = 0
    retries: int = 0
    usage: Usage = field(default_factory=Usage)
    max_concurrency_reached: int = 0
    batch_usage: Usage = field(default_factory=Usage)  # the part of ``usage`` a batch engine answered (half price)


DEFAULT_CONCURRENCY = 64


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
    key: str = ""  # the cache key of the answer its cards were made of (once done)
