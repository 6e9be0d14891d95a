"""Cards the user already has: the notes of their Anki collection, read through AnkiConnect or from a collection
or package file (with sqlite3 and a zstd reader, never Anki's own library), as text in one ``NearIndex`` — the
rules the gate uses across chunks and documents — that says which note a new card repeats.

The notes are read once, in bulk, and never leave this process: nothing of them is stored or sent.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .models import Card, CardKind
from .near import CLOZE, NearIndex

BATCH = 1000  # notes per notesInfo request
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</div>|</p>|</li>", re.I)
_STYLE = re.compile(r"<(style|script)\b.*?</\1>", re.I | re.S)


class KnownError(Exception):
    """The collection could not be read, in one sentence."""


@dataclass(frozen=True, slots=True)
class KnownNote:
    """A note of the user's collection, as text: its first field, and the second (the answer, or a cloze's
    extra)."""

    note_id: int
    guid: str  # "" when read through AnkiConnect (notesInfo has none)
    deck: str
    front: str
    back: str
    note_type: str = ""

    def describe(self) -> str:
        """"Deck › front → back", for the detail pane."""
        back = f" → {self.back}" if self.back else ""
        return f"{self.deck} › {self.front}{back}"


def field_text(value: str) -> str:
    """A field's HTML as the text it shows (cloze markers kept: the index reads them)."""
    value = _STYLE.sub(" ", value)
    value = _BREAK.sub(" ", value)
    return " ".join(html.unescape(_TAG.sub("", value)).split())


class KnownIndex:
    """The notes of a collection, less the notes that are this session's own cards, in one index: by GUID (read
    from a file) or by the note id a push kept (AnkiConnect gives no GUIDs). The same card text in a note of
    another document is a card the user has: it counts."""

    def __init__(self, notes: Iterable[KnownNote], *, own_guids: Iterable[str] = (),
                 own_ids: Iterable[int] = ()) -> None:  # fmt: skip
        guids, ids = set(own_guids), set(own_ids)
        self.index = NearIndex()
        self.notes: dict[str, KnownNote] = {}
        for note in notes:
            if note.guid in guids or note.note_id in ids or not note.front:
                continue
            key = f"anki:{note.note_id}"
            self.notes[key] = note
            kind = CardKind.CLOZE if CLOZE.search(note.front) else CardKind.BASIC
            self.index.add(Card(key, "", -1, 0, note.front, note.back, "", kind))

    def __len__(self) -> int:
        return len(self.notes)

    def match(self, card: Card) -> KnownNote | None:
        """The note ``card`` repeats, if any."""
        found = self.index.repeats(card)
        return self.notes.get(found) if found else None

    def mark(self, cards: Iterable[Card]) -> int:
        """Mark each card that repeats a note (``Card.known``); returns how many do."""
        count = 0
        for card in cards:
            note = self.match(card) if not card.stale else None
            card.known = note.describe() if note else ""
            count += note is not None
        return count


# ---------------------------------------------------------------- through AnkiConnect


def read_ankiconnect(anki) -> list[KnownNote]:
    """Every note of the collection behind ``anki`` (a ``core.ankiconnect.AnkiConnect``): note ids with one
    ``findNotes``, ``notesInfo`` in batches, and each deck's notes with one ``findNotes`` a deck, all in one
    ``multi``. Raises AnkiConnectError."""
    from .ankiconnect import deck_query

    ids = [int(n) for n in anki.invoke("findNotes", query="deck:*") or ()]
    infos = []
    for start in range(0, len(ids), BATCH):
        infos.extend(i for i in anki.invoke("notesInfo", notes=ids[start : start + BATCH]) or () if i)
    decks = sorted(anki.invoke("deckNames") or ())
    deck_of: dict[int, str] = {}
    for deck, (found, _) in zip(decks, anki.multi([("findNotes", {"query": deck_query(d)}) for d in decks]),
                                strict=True):  # fmt: skip
        deck_of.update((int(n), deck) for n in found or () if int(n) not in deck_of)
    notes = []
    for info in infos:
        fields = sorted((info.get("fields") or {}).values(), key=lambda f: f.get("order", 0))
        values = [field_text(str(f.get("value", ""))) for f in fields] + ["", ""]
        nid = int(info["noteId"])
        notes.append(KnownNote(nid, "", deck_of.get(nid, ""), values[0], values[1], str(info.get("modelName", ""))))
    return notes


# ---------------------------------------------------------------- from a file


def read_file(path: Path) -> list[KnownNote]:
    """The notes of an Anki collection (``collection.anki2``) or package (``.apkg``, ``.colpkg``: the
    ``collection.anki21b`` of Anki 23.10+ is zstd-compressed), read from a copy. Raises KnownError."""
    if not path.is_file():
        raise KnownError(f"{path} is not a file (--against takes an Anki collection or an .apkg/.colpkg)")
    with tempfile.TemporaryDirectory(prefix="mkflash-against-") as folder:
        copy = Path(folder) / "collection.sqlite"
        try:
            if zipfile.is_zipfile(path):
                _extract(path, copy)
            else:
                shutil.copyfile(path, copy)  # a live collection: read a copy, never the file Anki has open
                for suffix in ("-wal",):
                    if Path(f"{path}{suffix}").exists():
                        shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
            return _read_sqlite(copy)
        except (OSError, sqlite3.Error, zipfile.BadZipFile, ValueError) as exc:
            raise KnownError(f"cannot read {path} as an Anki collection: {exc}") from None


def _extract(package: Path, target: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        if "collection.anki21b" in names:
            import zstandard

            with archive.open("collection.anki21b") as source, target.open("wb") as out:
                zstandard.ZstdDecompressor().copy_stream(source, out)
            return
        for name in ("collection.anki21", "collection.anki2"):
            if name in names:
                with archive.open(name) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                return
    raise ValueError("the package holds no collection")


def _read_sqlite(path: Path) -> list[KnownNote]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "decks" in tables:  # the schema of Anki 2.1.28+
            decks = {int(i): str(n).replace("\x1f", "::") for i, n in db.execute("SELECT id, name FROM decks")}
        else:
            row = db.execute("SELECT decks FROM col").fetchone()
            decks = {int(i): d["name"] for i, d in json.loads(row[0] or "{}").items()} if row else {}
        deck_of = {int(n): decks.get(int(d), "") for n, d in db.execute("SELECT nid, MIN(did) FROM cards GROUP BY nid")}
        notes = []
        for nid, guid, fields in db.execute("SELECT id, guid, flds FROM notes"):
            values = [field_text(v) for v in str(fields).split("\x1f")] + ["", ""]
            notes.append(KnownNote(int(nid), str(guid), deck_of.get(int(nid), ""), values[0], values[1]))
        return notes
    finally:
        db.close()
