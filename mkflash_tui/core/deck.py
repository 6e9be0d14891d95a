"""What a card becomes in a deck, whatever the file: note types with fixed ids, stable deck ids and note GUIDs,
tags, deck names, the fields as HTML (the document's words escaped, a model's Markdown rendered), and the export's
options."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .fields import render_field
from .models import Card, CardKind
from .parsing import has_valid_cloze

# Frozen: changing an id or a field list breaks updates of decks users already imported.
BASIC_MODEL_ID = 1733190001
REVERSED_MODEL_ID = 1733190002
CLOZE_MODEL_ID = 1733190003
BASIC_FIELDS = ("Front", "Back", "Source", "Context")
CLOZE_FIELDS = ("Text", "Back Extra", "Source", "Context")
ANKI_BASIC_NOTETYPE = "Basic"  # Anki's built-in types, used by the CSV export (Anki maps them on import)
ANKI_CLOZE_NOTETYPE = "Cloze"

CARD_CSS = """\
.card {
  font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 21px; line-height: 1.45; text-align: center;
  color: #1d1d1f; background-color: #ffffff; padding: 0 12px;
}
.nightMode.card, .night_mode .card { color: #e8e8ea; background-color: #1e1e20; }
.mk-back { margin-top: 4px; }
.mk-source { margin-top: 18px; font-size: 14px; color: #6e6e73; font-style: italic; text-align: left; }
.mk-context { margin-top: 6px; font-size: 12px; color: #8e8e93; text-align: left; }
.nightMode .mk-source, .night_mode .mk-source { color: #a1a1a6; }
.nightMode .mk-context, .night_mode .mk-context { color: #8e8e93; }
.cloze { font-weight: bold; color: #0a64d6; }
.nightMode .cloze, .night_mode .cloze { color: #64a8ff; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; text-align: left; }
ul, ol { display: inline-block; text-align: left; }
"""

_SOURCE_BLOCK = (
    '{{#Source}}<div class="mk-source">{{Source}}</div>{{/Source}}'
    '{{#Context}}<div class="mk-context">{{Context}}</div>{{/Context}}'
)


class ExportError(Exception):
    """An export that cannot be done as asked (e.g. the file exists); one sentence for the user."""


class ExportFormat(enum.StrEnum):
    APKG = "apkg"
    CSV = "csv"
    MD = "md"
    JSON = "json"

    @classmethod
    def for_path(cls, path: Path, explicit: str | None = None) -> ExportFormat:
        """The format asked for, or the one the file's extension names (``.apkg`` otherwise)."""
        if explicit:
            return cls(explicit)
        suffix = path.suffix.lower().lstrip(".")
        return {"csv": cls.CSV, "md": cls.MD, "markdown": cls.MD, "json": cls.JSON}.get(suffix, cls.APKG)


@dataclass(slots=True)
class ExportOptions:
    deck: str
    title: str = ""
    source_stem: str = ""
    tags: Sequence[str] = ()
    reverse: bool = False
    subdecks: bool = False
    format: ExportFormat = ExportFormat.APKG
    force: bool = False


NoteStamps = dict[str, tuple[str, int]]  # note GUID -> (hash of its exported content, modification time)


@dataclass(slots=True)
class ExportResult:
    path: Path
    notes: int
    cards: int
    decks: list[str] = field(default_factory=list)
    stamps: NoteStamps = field(default_factory=dict)  # what an .apkg wrote: keep them for the next export


def deck_id(name: str) -> int:
    """A stable deck id derived from the deck's name."""
    return int(hashlib.sha256(("mkflash-deck:" + name).encode()).hexdigest()[:13], 16) + 1


def note_guid(card_id: str) -> str:
    """A stable Anki GUID derived from the card's immutable id."""
    import genanki

    return genanki.guid_for("mkflash", card_id)


def clean_tag(tag: str) -> str:
    """Anki tags cannot hold spaces; keep them readable."""
    return re.sub(r"\s+", "_", tag.strip()).strip("_")


def clean_deck_name(name: str) -> str:
    """One line, no control characters, no empty ``::`` parts."""
    name = re.sub(r"[\x00-\x1f\x7f]", " ", name)
    parts = [" ".join(p.split()) for p in name.split("::")]
    return "::".join(p for p in parts if p) or "mkflash"


STALE_TAG = "mkflash::stale"  # a card made of text the source no longer has


def note_tags(card: Card, tags: list[str]) -> list[str]:
    return [*tags, STALE_TAG] if card.stale else tags


def card_tags(options: ExportOptions) -> list[str]:
    tags = ["mkflash"]
    if options.source_stem:
        tags.append(options.source_stem)
    tags.extend(options.tags)
    out: list[str] = []
    for tag in tags:
        cleaned = clean_tag(tag)
        if cleaned and cleaned not in out:
            out.append(cleaned)
    return out


def effective_kind(card: Card) -> CardKind:
    """A cloze card without a valid deletion is exported as a basic card, never as an empty note."""
    if card.kind == CardKind.CLOZE and has_valid_cloze(card.front):
        return CardKind.CLOZE
    return CardKind.BASIC


def _basic_front_back(card: Card) -> tuple[str, str]:
    if card.kind == CardKind.CLOZE and effective_kind(card) == CardKind.BASIC:
        # Broken cloze: show the sentence with the deletion as the answer.
        front = re.sub(r"\{\{c\d+::(.*?)(::[^}]*)?\}\}", r"\1", card.front)
        return front, card.back or front
    return card.front, card.back


def _context(card: Card, title: str) -> str:
    return " — ".join(p for p in (title, card.location) if p)


def subdeck_for(card: Card, deck: str, subdecks: bool) -> str:
    """The card's deck: ``Deck::Top heading`` with subdecks on (cards without a heading stay in the deck)."""
    if subdecks and card.headings:
        return f"{deck}::{clean_deck_name(card.headings[0]).replace('::', ' ')}"
    return deck


# ---------------------------------------------------------------------------- writers


@dataclass(frozen=True, slots=True)
class NotePayload:
    """One card as a note: what the .apkg holds and what is sent to a running Anki."""

    card_id: str
    guid: str
    model_id: int
    deck: str
    fields: tuple[str, ...]
    tags: tuple[str, ...]
    cards: int  # Anki cards the note makes

    @property
    def field_names(self) -> tuple[str, ...]:
        return CLOZE_FIELDS if self.model_id == CLOZE_MODEL_ID else BASIC_FIELDS

    @property
    def content(self) -> str:
        """The hash an export stamps the note with (``NoteStamps``): changes when the card's text does."""
        return note_content(self.model_id, list(self.fields), list(self.tags))


def note_content(model_id: int, fields: list[str], tags: list[str]) -> str:
    return hashlib.sha256(json.dumps([model_id, fields, sorted(tags)], ensure_ascii=False).encode()).hexdigest()[:16]


def note_payloads(cards: Iterable[Card], options: ExportOptions) -> list[NotePayload]:
    """Each card as the note our note types make of it (model, deck, fields, tags)."""
    deck_name = clean_deck_name(options.deck)
    tags = card_tags(options)
    out = []
    for card in cards:
        deck = subdeck_for(card, deck_name, options.subdecks)
        source = render_field(card.quote)
        context = render_field(_context(card, options.title))
        md = card.markdown
        if effective_kind(card) == CardKind.CLOZE:
            fields = (render_field(card.front, markdown=md), render_field(card.back, markdown=md), source, context)
            model_id, count = CLOZE_MODEL_ID, len(set(re.findall(r"\{\{c(\d+)::", card.front)))
        else:
            front, back = _basic_front_back(card)
            fields = (render_field(front, markdown=md), render_field(back, markdown=md), source, context)
            model_id = REVERSED_MODEL_ID if options.reverse else BASIC_MODEL_ID
            count = 2 if options.reverse else 1
        out.append(NotePayload(card.id, note_guid(card.id), model_id, deck, fields,
                               tuple(note_tags(card, tags)), count))  # fmt: skip
    return out
