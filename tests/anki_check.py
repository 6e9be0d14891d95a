"""Import decks with Anki's own Python library (``anki``) into temporary collections, for assertions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest


@dataclass
class ImportedNote:
    guid: str
    notetype: str
    fields: dict[str, str]
    tags: list[str]
    decks: set[str]
    card_ids: list[int]


class AnkiCollection:
    """A throwaway Anki collection."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.col = Collection(str(folder / "collection.anki2"))

    def close(self) -> None:
        self.col.close()

    def import_apkg(self, path: Path) -> None:
        request = ImportAnkiPackageRequest(
            package_path=str(path),
            options=ImportAnkiPackageOptions(with_scheduling=True, with_deck_configs=False),
        )
        self.col.import_anki_package(request)

    def import_csv(self, path: Path) -> None:
        from anki.collection import ImportCsvRequest

        metadata = self.col.get_csv_metadata(str(path), None)
        self.col.import_csv(ImportCsvRequest(path=str(path), metadata=metadata))

    def notes(self) -> list[ImportedNote]:
        out = []
        for nid in self.col.find_notes(""):
            note = self.col.get_note(nid)
            cards = note.cards()
            out.append(
                ImportedNote(
                    guid=note.guid,
                    notetype=note.note_type()["name"],
                    fields=dict(note.items()),
                    tags=list(note.tags),
                    decks={self.col.decks.name(c.did) for c in cards},
                    card_ids=[c.id for c in cards],
                )
            )
        return out

    def card_count(self) -> int:
        return len(self.col.find_cards(""))

    def render(self, guid: str) -> list[tuple[str, str]]:
        """(question, answer) HTML of each card of the note with ``guid``, as Anki renders them."""
        for nid in self.col.find_notes(""):
            note = self.col.get_note(nid)
            if note.guid == guid:
                return [(c.question(), c.answer()) for c in note.cards()]
        raise KeyError(guid)
