"""Write cards to a file: an Anki package (.apkg) here, Anki CSV, Markdown or JSON through ``export_text``.

Identity is stable: note types have fixed ids and frozen field lists, the deck id comes from the deck name,
and every note's GUID comes from its card's immutable id. Exporting the same cards again and importing
again therefore updates notes in Anki instead of doubling them. Files are written to a temporary file in
the target directory and renamed into place.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import sqlite3
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

from .deck import (
    _SOURCE_BLOCK,
    BASIC_FIELDS,
    BASIC_MODEL_ID,
    CARD_CSS,
    CLOZE_FIELDS,
    CLOZE_MODEL_ID,
    REVERSED_MODEL_ID,
    ExportError,
    ExportFormat,
    ExportOptions,
    ExportResult,
    NotePayload,
    NoteStamps,
    clean_deck_name,
    deck_id,
    note_content,
    note_payloads,
)
from .export_text import csv_text, json_text, markdown_text
from .models import Card


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


def note_types():
    """mkflash-tui's note types (genanki models): basic, basic and reversed, cloze."""
    return _models()


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


def _write_apkg(cards: list[Card], path: Path, options: ExportOptions, known: NoteStamps | None) -> ExportResult:
    return _write_payloads(note_payloads(cards, options), path, clean_deck_name(options.deck), known)


def _write_payloads(payloads: list[NotePayload], path: Path, deck_name: str, known: NoteStamps | None) -> ExportResult:
    import genanki

    models = {m.model_id: m for m in _models()}
    decks: dict[str, genanki.Deck] = {}
    card_count = 0
    for payload in payloads:
        deck = decks.get(payload.deck)
        if deck is None:
            deck = decks[payload.deck] = genanki.Deck(deck_id(payload.deck), payload.deck)
        deck.add_note(genanki.Note(model=models[payload.model_id], fields=list(payload.fields), guid=payload.guid,
                                   tags=list(payload.tags)))  # fmt: skip
        card_count += payload.cards
    if not decks:
        decks[deck_name] = genanki.Deck(deck_id(deck_name), deck_name)
    package = genanki.Package(list(decks.values()))
    stamps = _note_stamps([n for d in decks.values() for n in d.notes], known)
    buffer = io.BytesIO()
    _write_package(package, buffer, stamps)
    atomic_write(path, buffer.getvalue())
    return ExportResult(path, len(payloads), card_count, sorted(decks), stamps)


def export_groups(groups: list[tuple[list[Card], ExportOptions]], path: Path, *, deck: str,
                  stamps: NoteStamps | None = None, ours: bool = False) -> ExportResult:  # fmt: skip
    """The cards of several documents in one file, each group with its own options (its subdeck of ``deck``
    and its title); the format, ``force`` and the rest are the first group's. ``ours``: the file at ``path`` is
    what this job last wrote, so it may be replaced."""
    path = Path(path)
    first = groups[0][1]
    check_output_path(path, force=first.force, ours=ours)
    deck = clean_deck_name(deck)
    notes = sum(len(cards) for cards, _ in groups)
    if first.format is ExportFormat.APKG:
        return _write_payloads([p for cards, o in groups for p in note_payloads(cards, o)], path, deck, stamps)
    if first.format is ExportFormat.CSV:
        parts = [csv_text(cards, o) for cards, o in groups]
        body = "".join(text if i == 0 else text.split("\n", 6)[-1] for i, (text, _) in enumerate(parts))
        atomic_write(path, body.encode("utf-8"))
        return ExportResult(path, notes, notes, sorted({d for _, decks in parts for d in decks}))
    if first.format is ExportFormat.MD:
        atomic_write(path, "\n".join(markdown_text(cards, o) for cards, o in groups).encode("utf-8"))
    else:
        documents = [json.loads(json_text(cards, o)) for cards, o in groups]
        atomic_write(path, (json.dumps({"deck": deck, "documents": documents}, ensure_ascii=False, indent=1)
                            + "\n").encode("utf-8"))  # fmt: skip
    return ExportResult(path, notes, notes, [clean_deck_name(o.deck) for _, o in groups])


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
            # genanki's schema has no index on the GUID: without this one each update scans every note.
            db.execute("CREATE INDEX mkflash_guid ON notes (guid)")
            db.executemany("UPDATE notes SET mod = ? WHERE guid = ?", [(m, g) for g, (_, m) in stamps.items()])
            db.execute("DROP INDEX mkflash_guid")
            db.execute("UPDATE cards SET mod = (SELECT mod FROM notes WHERE notes.id = cards.nid)")
            db.commit()
        finally:
            db.close()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.write(database, "collection.anki2")
            archive.writestr("media", json.dumps({}))


def _write_csv(cards: list[Card], path: Path, options: ExportOptions) -> ExportResult:
    text, decks = csv_text(cards, options)
    atomic_write(path, text.encode("utf-8"))
    return ExportResult(path, len(cards), len(cards), decks)


def _write_markdown(cards: list[Card], path: Path, options: ExportOptions) -> ExportResult:
    atomic_write(path, markdown_text(cards, options).encode("utf-8"))
    return ExportResult(path, len(cards), len(cards), [clean_deck_name(options.deck)])


def _write_json(cards: list[Card], path: Path, options: ExportOptions) -> ExportResult:
    atomic_write(path, json_text(cards, options).encode("utf-8"))
    return ExportResult(path, len(cards), len(cards), [clean_deck_name(options.deck)])
