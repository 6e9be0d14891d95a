"""What was written where: decks a session wrote (so a later run may replace them), each exported note's content
and time, and the note each card became in a running Anki."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from .connection import Connection, _file_digest, cache_key


class Exports(Connection):
    """The ``note_stamps`` and ``anki_notes`` tables, and the decks' digests."""

    def mark_exported(self, session_id: str | None, path: Path) -> None:
        """Remember that ``session_id`` wrote the deck at ``path``, and its content, so a later run of the same
        session may replace that file (and only while it is what was written)."""
        if session_id:
            self._write("UPDATE sessions SET exported_to = ?, exported_at = ? WHERE id = ?",
                        (str(path), time.time(), session_id))  # fmt: skip
            digest = _file_digest(path)
            if digest:
                value = json.dumps({"session": session_id, "sha256": digest})
                self._write("INSERT OR REPLACE INTO cache VALUES (?, 'export', ?, ?)",
                            (cache_key("export", str(Path(path).absolute())), value, time.time()))  # fmt: skip

    def written_by(self, path: Path) -> str | None:
        """The session whose last export is the file at ``path`` as it is now (None: none, or it changed since)."""
        key = cache_key("export", str(Path(path).absolute()))
        row = self.db.execute("SELECT value FROM cache WHERE key = ? AND kind = 'export'", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return data["session"] if data.get("sha256") == _file_digest(path) else None

    def note_stamps(self, guids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """The content hash and modification time each of these notes was last exported with."""
        rows = self._rows_for("SELECT guid, content, mod FROM note_stamps WHERE guid IN ({marks})", (), guids)
        return {guid: (content, int(mod)) for guid, content, mod in rows}

    def save_note_stamps(self, stamps: dict[str, tuple[str, int]]) -> None:
        """Remember what an export wrote (after the file is in place)."""
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO note_stamps VALUES (?, ?, ?)",
                                [(g, c, m) for g, (c, m) in stamps.items()])  # fmt: skip

    def anki_notes(self, anki: str, guids: Iterable[str]) -> dict[str, tuple[int, str]]:
        """For the Anki at ``anki``: each of these notes' Anki note id and the content last sent to it."""
        rows = self._rows_for("SELECT guid, note_id, content FROM anki_notes WHERE anki = ? AND guid IN ({marks})",
                              (anki,), guids)  # fmt: skip
        return {guid: (int(note_id), content) for guid, note_id, content in rows}

    def anki_note_ids(self, anki: str) -> set[int]:
        """Every Anki note id a push to the Anki at ``anki`` made or took, whatever its session."""
        return {int(r[0]) for r in self.db.execute("SELECT note_id FROM anki_notes WHERE anki = ?", (anki,))}

    def save_anki_notes(self, anki: str, notes: dict[str, tuple[int, str]], removed: Iterable[str] = ()) -> None:
        """Remember the notes a push made or updated (guid -> (note id, content)); forget ``removed`` ones."""
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO anki_notes VALUES (?, ?, ?, ?)",
                                [(anki, g, n, c) for g, (n, c) in notes.items()])  # fmt: skip
            self.db.executemany("DELETE FROM anki_notes WHERE anki = ? AND guid = ?", [(anki, g) for g in removed])
