"""Answers kept by what shaped them: chunk and summary results (no call is ever paid twice), and what was
learned about a server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Card, CardDraft, CardKind, Chunk, Summary, Usage
from .connection import Connection
from .serialize import cards_to_json


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    drafts: list[CardDraft]
    raw: str
    usage: Usage


class Answers(Connection):
    """The ``cache`` table, and each chunk's state in its session."""

    def cached_summary(self, key: str) -> Summary | None:
        row = self.db.execute("SELECT value FROM cache WHERE key = ? AND kind = 'summary'", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Summary(data["title"], data["summary"])

    def save_summary(self, key: str, summary: Summary) -> None:
        value = json.dumps({"title": summary.title, "summary": summary.summary}, ensure_ascii=False)
        self._write("INSERT OR REPLACE INTO cache VALUES (?, 'summary', ?, ?)", (key, value, time.time()))

    def server_facts(self, key: str) -> dict | None:
        """What an earlier run learned about a server and model (``cache_key("server", …)``), if anything."""
        row = self.db.execute("SELECT value FROM cache WHERE key = ? AND kind = 'server'", (key,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except ValueError:
            return None

    def save_server_facts(self, key: str, facts: dict) -> None:
        value = json.dumps(facts, ensure_ascii=False, sort_keys=True)
        self._write("INSERT OR REPLACE INTO cache VALUES (?, 'server', ?, ?)", (key, value, time.time()))

    def cached_chunk(self, key: str) -> CachedAnswer | None:
        row = self.db.execute("SELECT value FROM cache WHERE key = ? AND kind = 'chunk'", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        drafts = [CardDraft(d["front"], d["back"], d.get("quote", ""), CardKind(d.get("kind", "basic")))
                  for d in data["drafts"]]  # fmt: skip
        return CachedAnswer(drafts, data.get("raw", ""), Usage(*data.get("usage", (0, 0))))

    def save_chunk(self, session_id: str | None, chunk: Chunk, key: str, drafts: Iterable[CardDraft], raw: str,
                   usage: Usage, cards: list[Card], wanted: int) -> None:  # fmt: skip
        """The chunk's answer and its finished state, in one transaction."""
        value = json.dumps(
            {
                "drafts": [{"front": d.front, "back": d.back, "quote": d.quote, "kind": str(d.kind)} for d in drafts],
                "raw": raw,
                "usage": [usage.prompt_tokens, usage.completion_tokens],
            },
            ensure_ascii=False,
        )
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO cache VALUES (?, 'chunk', ?, ?)", (key, value, time.time()))
            if session_id:
                self._chunk_done(session_id, chunk, key, cards, wanted)

    def chunk_done(self, session_id: str | None, chunk: Chunk, key: str, cards: list[Card], wanted: int) -> None:
        """Record a chunk answered from the cache as done in its session."""
        if session_id:
            with self._transaction():
                self._chunk_done(session_id, chunk, key, cards, wanted)

    def _chunk_done(self, session_id: str, chunk: Chunk, key: str, cards: list[Card], wanted: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO chunks (session_id, chunk_id, idx, state, reason, cards, key, anchor, card_prefix,"
            " wanted, card_list) VALUES (?, ?, ?, 'done', '', ?, ?, ?, ?, ?, ?)",
            (session_id, chunk.id, chunk.index, len(cards), key, json.dumps(chunk.anchor), chunk.card_key, wanted,
             cards_to_json(cards)),
        )  # fmt: skip
        self.db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (time.time(), session_id))

    def chunk_state(self, session_id: str | None, chunk_id: str, index: int, state: str, reason: str = "",
                    cards: int = 0) -> None:  # fmt: skip
        """Record a chunk's state in its session (a failure, a cancellation)."""
        if session_id:
            with self._transaction():
                self.db.execute(
                    "INSERT INTO chunks (session_id, chunk_id, idx, state, reason, cards) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (session_id, chunk_id) DO UPDATE SET idx = excluded.idx, state = excluded.state, "
                    "reason = excluded.reason, cards = excluded.cards",
                    (session_id, chunk_id, index, state, reason, cards),
                )
                self.db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (time.time(), session_id))
