"""Sessions: one per run over one source and settings, with its chunks as its last run left them and the user's
decisions about its cards."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Card, Document, Summary
from ..review import Decisions
from .connection import Connection, cache_key
from .serialize import _source_text, cards_from_json, cards_to_json, document_from_json, document_to_json


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    title: str
    input_name: str
    created: float
    updated: float
    chunks_done: int
    chunks_total: int
    cards: int
    exported_to: str | None
    source: str = ""  # where it came from, for people: the file's path, the web address, "stdin", a --session name

    @property
    def source_text(self) -> str:
        return self.source or self.input_name


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as a session's last run left it."""

    id: str
    index: int
    state: str  # done, skipped, failed, cancelled, or stale (its text is no longer in the source)
    key: str | None  # the cache key of its answer
    anchor: tuple[str, int, str] | None
    card_prefix: str | None
    wanted: int | None
    cards: list[Card] | None  # None: kept by an earlier version, which did not store them


class Sessions(Connection):
    """The ``sessions``, ``chunks``, ``documents`` and ``decisions`` tables."""

    def replace_chunks(self, session_id: str, chunks: Iterable[StoredChunk]) -> None:
        """Rewrite a session's chunk rows (a session made by an earlier version, upgraded)."""
        rows = [
            (session_id, c.id, c.index, c.state, len(c.cards or ()), c.key, json.dumps(c.anchor) if c.anchor else None,
             c.card_prefix, c.wanted, cards_to_json(c.cards) if c.cards is not None else None)
            for c in chunks if c.state in ("done", "skipped", "stale")
        ]  # fmt: skip
        with self._transaction():
            self.db.execute("DELETE FROM chunks WHERE session_id = ?", (session_id,))
            self.db.executemany(
                "INSERT INTO chunks (session_id, chunk_id, idx, state, reason, cards, key, anchor, card_prefix, "
                "wanted, card_list) VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def stored_chunks(self, session_id: str) -> list[StoredChunk]:
        """The session's chunks as its last run left them, in document order."""
        rows = self.db.execute(
            "SELECT chunk_id, idx, state, key, anchor, card_prefix, wanted, card_list FROM chunks "
            "WHERE session_id = ? ORDER BY idx",
            (session_id,),
        ).fetchall()
        settings = self.db.execute("SELECT settings FROM sessions WHERE id = ?", (session_id,)).fetchone()
        online = bool(settings) and json.loads(settings[0]).get("provider") == "openai"
        out = []
        for chunk_id, idx, state, key, anchor, prefix, wanted, card_list in rows:
            anchor_value = tuple(json.loads(anchor)) if anchor else None
            cards = cards_from_json(card_list, chunk_id, idx, markdown=online) if card_list is not None else None
            out.append(StoredChunk(chunk_id, idx, state, key, anchor_value, prefix, wanted, cards))  # type: ignore[arg-type]
        return out

    def set_chunks(self, session_id: str, current: Iterable[str]) -> None:
        """A continued session's chunks are now ``current``: finished chunks that are not become stale (their
        cards are kept), unfinished ones are forgotten."""
        keep = set(current)
        with self._transaction():
            rows = self.db.execute("SELECT chunk_id, state FROM chunks WHERE session_id = ?", (session_id,))
            gone = [(cid, state) for cid, state in rows.fetchall() if cid not in keep]
            self.db.executemany(
                "UPDATE chunks SET state = 'stale' WHERE session_id = ? AND chunk_id = ?",
                [(session_id, cid) for cid, state in gone if state in ("done", "stale")],
            )
            self.db.executemany(
                "DELETE FROM chunks WHERE session_id = ? AND chunk_id = ?",
                [(session_id, cid) for cid, state in gone if state not in ("done", "stale")],
            )

    def open_session(self, spec: dict, document: Document, *, source_key: str, chunks_total: int,
                     continue_id: str | None = None) -> tuple[str, bool]:  # fmt: skip
        """Continue session ``continue_id`` with ``document`` (its source's text now), or start a new one.
        Returns (id, continued)."""
        input_name, input_hash, title = document.name, document.hash, document.title
        spec_key = cache_key("session", source_key, spec)
        now = time.time()
        with self._transaction():
            if continue_id and self.db.execute("SELECT 1 FROM sessions WHERE id = ?", (continue_id,)).fetchone():
                self.db.execute(
                    "UPDATE sessions SET spec_key = ?, source_key = ?, input_name = ?, input_hash = ?, title = ?, "
                    "settings = ?, chunks_total = ?, updated = ? WHERE id = ?",
                    (spec_key, source_key, input_name, input_hash, title, json.dumps(spec), chunks_total, now,
                     continue_id),
                )  # fmt: skip
                self.db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?)",
                                (continue_id, document_to_json(document)))  # fmt: skip
                return continue_id, True
            session_id = uuid.uuid4().hex[:8]
            self.db.execute(
                "INSERT INTO sessions (id, spec_key, source_key, input_name, input_hash, title, settings, "
                "chunks_total, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, spec_key, source_key, input_name, input_hash, title, json.dumps(spec), chunks_total,
                 now, now),
            )  # fmt: skip
            self.db.execute("INSERT INTO documents VALUES (?, ?)", (session_id, document_to_json(document)))
        return session_id, False

    def session_text_hash(self, session_id: str) -> str | None:
        """The hash of the text the session's last run read (``Document.hash``)."""
        row = self.db.execute("SELECT input_hash FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row[0] if row else None

    def session_summary(self, session_id: str) -> Summary | None:
        """The summary a session's chunks were last given as context."""
        row = self.db.execute("SELECT summary FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if not row or not row[0]:
            return None
        data = json.loads(row[0])
        return Summary(data["title"], data["summary"])

    def set_session_summary(self, session_id: str | None, summary: Summary) -> None:
        if session_id:
            value = json.dumps({"title": summary.title, "summary": summary.summary}, ensure_ascii=False)
            self._write("UPDATE sessions SET summary = ? WHERE id = ?", (value, session_id))

    def legacy_sessions(self, input_name: str, input_hash: str) -> list[tuple[str, dict]]:
        """Sessions made by versions before 0.2 (found by the input's hash then) that may be this input's, newest
        first: same name as given, or the same text. Returns (id, settings)."""
        rows = self.db.execute(
            "SELECT id, settings FROM sessions WHERE source_key IS NULL AND (input_name = ? OR input_hash = ?) "
            "ORDER BY updated DESC",
            (input_name, input_hash),
        ).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def session_source(self, session_id: str) -> tuple[dict, Document, str | None] | None:
        """The settings, the document and the source key of a session (None if unknown or kept by an old version
        without its text; the source key is None for sessions made before 0.2)."""
        row = self.db.execute(
            "SELECT s.settings, d.document, s.source_key FROM sessions s LEFT JOIN documents d ON d.session_id = s.id "
            "WHERE s.id = ?",
            (session_id,),
        ).fetchone()
        if row is None or not row[1]:
            return None
        return json.loads(row[0]), document_from_json(row[1]), row[2]

    def set_session_spec(self, session_id: str, spec: dict, source_key: str) -> None:
        """The session's settings changed while it ran (a key, address or model fixed in the app): later runs
        with the new settings find it."""
        with self._transaction():
            self.db.execute("UPDATE sessions SET spec_key = ?, settings = ?, updated = ? WHERE id = ?",
                            (cache_key("session", source_key, spec), json.dumps(spec), time.time(),
                             session_id))  # fmt: skip

    def find_session(self, spec: dict, source_key: str) -> str | None:
        """The latest session of this source with these settings, if any."""
        return self._latest_session(cache_key("session", source_key, spec))

    def session_info(self, session_id: str) -> SessionInfo | None:
        return next((s for s in self.sessions() if s.id == session_id), None)

    def _latest_session(self, spec_key: str) -> str | None:
        row = self.db.execute(
            "SELECT id FROM sessions WHERE spec_key = ? ORDER BY updated DESC LIMIT 1", (spec_key,)
        ).fetchone()
        return row[0] if row else None

    def sessions(self) -> list[SessionInfo]:
        rows = self.db.execute(
            """
            SELECT s.id, s.title, s.input_name, s.created, s.updated, s.chunks_total, s.exported_to,
                   COALESCE(SUM(c.state IN ('done', 'skipped')), 0),
                   COALESCE(SUM(CASE WHEN c.state = 'done' THEN c.cards ELSE 0 END), 0),
                   (SELECT COUNT(*) FROM decisions d WHERE d.session_id = s.id AND d.deleted), s.cards_kept,
                   s.source_key
            FROM sessions s LEFT JOIN chunks c ON c.session_id = s.id
            GROUP BY s.id ORDER BY s.updated DESC
            """
        ).fetchall()
        # A run that was never counted to the end (killed, or made by an older version) shows an estimate: its
        # chunks' cards less its deletions, before duplicates across chunks are dropped.
        return [
            SessionInfo(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                int(r[7]),
                r[5],
                int(r[10]) if r[10] is not None else max(0, int(r[8]) - int(r[9])),
                r[6],
                _source_text(r[11]),
            )
            for r in rows
        ]

    def set_cards(self, session_id: str | None, cards: int) -> None:
        """Record how many cards an export of the session would write now (what the sessions list shows)."""
        if session_id:
            self._write("UPDATE sessions SET cards_kept = ? WHERE id = ?", (cards, session_id))

    def remove_session(self, session_id: str) -> bool:
        with self._transaction():
            removed = self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
        return bool(removed)

    def record_decision(self, session_id: str | None, card: Card, *, deleted: bool) -> None:
        """Commit a delete, an undo or an edit as it happens."""
        if not session_id:
            return
        front, back = (card.front, card.back) if card.edited else (None, None)
        self._write("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?)",
                    (session_id, card.id, int(deleted), front, back))  # fmt: skip

    def reset_decisions(self, session_id: str | None, cards: Iterable[Card]) -> None:
        """The decisions about these cards are what they show now (cards made again in the place of others, or
        put back): the edits they carry, and none for a card as it was made."""
        if not session_id:
            return
        cards = list(cards)
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO decisions VALUES (?, ?, 0, ?, ?)",
                                [(session_id, c.id, c.front, c.back) for c in cards if c.edited])  # fmt: skip
            self.db.executemany("DELETE FROM decisions WHERE session_id = ? AND card_id = ?",
                                [(session_id, c.id) for c in cards if not c.edited])  # fmt: skip

    def decisions(self, session_id: str | None) -> Decisions:
        if not session_id:
            return {}
        rows = self.db.execute("SELECT card_id, deleted, front, back FROM decisions WHERE session_id = ?",
                               (session_id,)).fetchall()  # fmt: skip
        return {r[0]: (bool(r[1]), r[2], r[3]) for r in rows}
