"""Write cards to an Anki package (.apkg), Anki CSV, Markdown (MkFlashcards/Mochi form) or JSON.

Identity is stable: note types have fixed ids and frozen field lists, the deck id comes from the deck name,
and every note's GUID comes from its card's immutable id. Exporting the same cards again and importing
again therefore updates notes in Anki instead of doubling them. Files are written to a temporary file in
the target directory and renamed into place.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import itertools
import json
import os
import re
import sqlite3
import tempfile
import time
import zipfile
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


def export_cards(cards: Iterable[Card], path: Path, options: ExportOptions, *,
                 stamps: NoteStamps | None = None) -> ExportResult:  # fmt: skip
    """Write ``cards`` to ``path`` in ``options.format``; refuses to overwrite unless ``options.force``.

    ``stamps`` (an .apkg's notes as last exported, from the session store) keep each note's modification time
    until its exported content changes: Anki updates a note on import only when the incoming one is newer, so an
    unchanged card never overwrites what the user edited in Anki, and a card edited here does update its note.
    """
    cards = list(cards)
    path = Path(path)
    check_output_path(path, force=options.force)
    if options.format is ExportFormat.APKG:
        return _write_apkg(cards, path, options, stamps)
    writer = {
        ExportFormat.CSV: _write_csv,
        ExportFormat.MD: _write_markdown,
        ExportFormat.JSON: _write_json,
    }[options.format]
    return writer(cards, path, options)


def check_output_path(path: Path, *, force: bool, ours: bool = False) -> None:
    """Raise ExportError if ``path`` cannot or should not be written; ``ours``: the file there is what this
    session last wrote, unchanged since, so it is replaced without ``force``."""
    if path.is_dir():
        raise ExportError(f"{path} is a directory; give a file name for the deck.")
    if path.exists() and not force and not ours:
        raise ExportError(f"{path} already exists (not as this session last wrote it); use --force to overwrite it.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write {path}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK):
        raise ExportError(f"cannot write {path}: no permission to write in {parent}.")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            # mkstemp makes the file private (0600); a deck gets the permissions any new file would.
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once at import: os.umask is process-wide, and exports may run in a thread


def _models():
    import genanki

    fields = [{"name": n} for n in BASIC_FIELDS]
    basic = genanki.Model(
        BASIC_MODEL_ID,
        "mkflash Basic",
        fields=fields,
        templates=[
            {
                "name": "Card 1",
                "qfmt": '<div class="mk-front">{{Front}}</div>',
                "afmt": '{{FrontSide}}<hr id="answer"><div class="mk-back">{{Back}}</div>' + _SOURCE_BLOCK,
            }
        ],
        css=CARD_CSS,
    )
    reversed_ = genanki.Model(
        REVERSED_MODEL_ID,
        "mkflash Basic (and reversed card)",
        fields=fields,
        templates=[
            {
                "name": "Card 1",
                "qfmt": '<div class="mk-front">{{Front}}</div>',
                "afmt": '{{FrontSide}}<hr id="answer"><div class="mk-back">{{Back}}</div>' + _SOURCE_BLOCK,
            },
            {
                "name": "Card 2",
                "qfmt": '<div class="mk-front">{{Back}}</div>',
                "afmt": '{{FrontSide}}<hr id="answer"><div class="mk-back">{{Front}}</div>' + _SOURCE_BLOCK,
            },
        ],
        css=CARD_CSS,
    )
    cloze = genanki.Model(
        CLOZE_MODEL_ID,
        "mkflash Cloze",
        fields=[{"name": n} for n in CLOZE_FIELDS],
        templates=[
            {
                "name": "Cloze",
                "qfmt": "{{cloze:Text}}",
                "afmt": '{{cloze:Text}}{{#Back Extra}}<div class="mk-back">{{Back Extra}}</div>{{/Back Extra}}'
                + _SOURCE_BLOCK,
            }
        ],
        css=CARD_CSS,
        model_type=genanki.Model.CLOZE,
    )
    return basic, reversed_, cloze


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


def _write_apkg(cards: list[Card], path: Path, options: ExportOptions, known: NoteStamps | None) -> ExportResult:
    import genanki

    models = {m.model_id: m for m in _models()}
    decks: dict[str, genanki.Deck] = {}
    card_count = 0
    for payload in note_payloads(cards, options):
        deck = decks.get(payload.deck)
        if deck is None:
            deck = decks[payload.deck] = genanki.Deck(deck_id(payload.deck), payload.deck)
        deck.add_note(genanki.Note(model=models[payload.model_id], fields=list(payload.fields), guid=payload.guid,
                                   tags=list(payload.tags)))  # fmt: skip
        card_count += payload.cards
    deck_name = clean_deck_name(options.deck)
    if not decks:
        decks[deck_name] = genanki.Deck(deck_id(deck_name), deck_name)
    package = genanki.Package(list(decks.values()))
    stamps = _note_stamps([n for d in decks.values() for n in d.notes], known)
    buffer = io.BytesIO()
    _write_package(package, buffer, stamps)
    atomic_write(path, buffer.getvalue())
    return ExportResult(path, len(cards), card_count, sorted(decks), stamps)


def _note_stamps(notes: list, known: NoteStamps | None) -> NoteStamps:
    """Each note's content hash and modification time: the known time while the content is unchanged, else a
    time later than both now and the note's last one. With no history at all (no store), every note gets this
    export's time, later than any earlier export of this process."""
    if known is None:
        known, now = {}, int(_export_stamp())
    else:
        now = int(time.time())  # never ahead of the clock: a note stamped in the future beats later Anki edits
    stamps: NoteStamps = {}
    for note in notes:
        content = note_content(note.model.model_id, note.fields, note.tags)
        before = known.get(note.guid)
        if before is not None and before[0] == content:
            stamps[note.guid] = before
        else:
            stamps[note.guid] = (content, max(now, before[1] + 1 if before else 0))
    return stamps


_last_stamp = 0.0


def _export_stamp() -> float:
    """Note modification time for an export: now, and later than any earlier export of this process.

    Anki updates an existing note on import only if the file's note is newer (whole seconds).
    """
    global _last_stamp
    _last_stamp = max(time.time(), _last_stamp + 1)
    return _last_stamp


def _write_package(package, buffer: io.BytesIO, stamps: NoteStamps) -> None:
    """The package's bytes, each note with its own modification time (genanki gives every note one).

    genanki's own ``write_to_file`` leaves its SQLite copy of every note in the temp directory; here that
    database lives in a private temp dir that is removed, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="mkflash-") as tmp:
        database = Path(tmp) / "collection.anki2"
        stamp = _export_stamp()
        db = sqlite3.connect(database)
        try:
            package.write_to_db(db.cursor(), stamp, itertools.count(int(stamp * 1000)))
            db.executemany("UPDATE notes SET mod = ? WHERE guid = ?", [(m, g) for g, (_, m) in stamps.items()])
            db.execute("UPDATE cards SET mod = (SELECT mod FROM notes WHERE notes.id = cards.nid)")
            db.commit()
        finally:
            db.close()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.write(database, "collection.anki2")
            archive.writestr("media", json.dumps({}))


def _csv_rows(cards: list[Card], options: ExportOptions) -> tuple[list[str], list[list[str]]]:
    deck_name = clean_deck_name(options.deck)
    tags = card_tags(options)
    header = [
        "#separator:Comma",
        "#html:true",
        "#guid column:1",
        "#notetype column:2",
        "#deck column:3",
        "#tags column:6",
    ]
    rows = []
    for card in cards:
        deck = subdeck_for(card, deck_name, options.subdecks)
        if effective_kind(card) == CardKind.CLOZE:
            notetype, first, second = ANKI_CLOZE_NOTETYPE, card.front, card.back
            extra = _source_html(card, options)
            second_html = render_field(second, markdown=card.markdown) + extra
        else:
            front, back = _basic_front_back(card)
            notetype = "Basic (and reversed card)" if options.reverse else ANKI_BASIC_NOTETYPE
            first = front
            second_html = render_field(back, markdown=card.markdown) + _source_html(card, options)
        rows.append([note_guid(card.id), notetype, deck, render_field(first, markdown=card.markdown), second_html,
                     " ".join(note_tags(card, tags))])  # fmt: skip
    return header, rows


def _source_html(card: Card, options: ExportOptions) -> str:
    # Anki's built-in Basic and Cloze have no Source/Context fields: append them, small, to the answer side.
    parts = []
    if card.quote:
        parts.append(
            f'<div class="mk-source" style="font-size:small;font-style:italic">{render_field(card.quote)}</div>'
        )
    context = _context(card, options.title)
    if context:
        parts.append(f'<div class="mk-context" style="font-size:x-small">{render_field(context)}</div>')
    return "".join(parts)


def _write_csv(cards: list[Card], path: Path, options: ExportOptions) -> ExportResult:
    header, rows = _csv_rows(cards, options)
    out = io.StringIO()
    for line in header:
        out.write(line + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    atomic_write(path, out.getvalue().encode("utf-8"))
    decks = sorted({r[2] for r in rows}) or [clean_deck_name(options.deck)]
    return ExportResult(path, len(rows), len(rows), decks)


def markdown_text(cards: list[Card], options: ExportOptions) -> str:
    """MkFlashcards/Mochi Markdown: front, ``---``, back, the quote as a blockquote; cards split by ``===``."""
    blocks = []
    for card in cards:
        lines = [card.front.strip(), "", "---", "", (card.back or "").strip()]
        if card.quote:
            lines += ["", *("> " + line for line in card.quote.strip().splitlines())]
        blocks.append("\n".join(lines).strip())
    title = f"# {options.deck}\n\n" if options.deck else ""
    return title + "\n\n===\n\n".join(blocks) + "\n"


def _write_markdown(cards: list[Card], path: Path, options: ExportOptions) -> ExportResult:
    atomic_write(path, markdown_text(cards, options).encode("utf-8"))
    return ExportResult(path, len(cards), len(cards), [clean_deck_name(options.deck)])


def cards_json(cards: list[Card], options: ExportOptions) -> dict:
    return {
        "deck": clean_deck_name(options.deck),
        "title": options.title,
        "tags": card_tags(options),
        "cards": [
            {
                "id": c.id,
                "guid": note_guid(c.id),
                "type": effective_kind(c).value,
                "front": c.front,
                "back": c.back,
                "quote": c.quote,
                "chunk_id": c.chunk_id,
                "chunk_index": c.chunk_index,
                "headings": list(c.headings),
                "page": c.page,
                "location": c.location,
                "deck": subdeck_for(c, clean_deck_name(options.deck), options.subdecks),
                "edited": c.edited,
                "stale": c.stale,
            }
            for c in cards
        ],
    }


def _write_json(cards: list[Card], path: Path, options: ExportOptions) -> ExportResult:
    data = json.dumps(cards_json(cards, options), ensure_ascii=False, indent=2) + "\n"
    atomic_write(path, data.encode("utf-8"))
    return ExportResult(path, len(cards), len(cards), [clean_deck_name(options.deck)])
