"""The session store: one SQLite database (WAL) that keeps every paid-for answer and every review decision.

- ``cache``: chunk and summary results keyed by everything that shaped them (provider, base URL, model, prompt
  version, the request itself). An identical request is answered from here with no network call.
- ``sessions`` / ``chunks`` / ``decisions``: one session per run over one input and settings — its chunks'
  states and the user's deletions and edits, by immutable card id.

Each write is its own short transaction, committed before the engine reports the chunk finished. The API key
is never passed to this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .models import Block, Card, CardDraft, CardKind, Document, Summary, Usage
from .review import Decisions

DB_NAME = "mkflash.sqlite3"

# Each step moves the schema up one version; PRAGMA user_version records where a database is.
MIGRATIONS: list[str] = [
    # 1: the first release
    """
    CREATE TABLE cache (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY, spec_key TEXT NOT NULL, input_name TEXT NOT NULL, input_hash TEXT NOT NULL,
        title TEXT NOT NULL, settings TEXT NOT NULL, chunks_total INTEGER NOT NULL,
        created REAL NOT NULL, updated REAL NOT NULL);
    CREATE INDEX sessions_by_spec ON sessions (spec_key, updated);
    CREATE TABLE chunks (
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, chunk_id TEXT NOT NULL,
        idx INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', cards INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (session_id, chunk_id));
    CREATE TABLE decisions (
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, card_id TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0, front TEXT, back TEXT, PRIMARY KEY (session_id, card_id));
    """,
    # 2: remember exports, so `sessions` can say which runs were never exported
    """
    ALTER TABLE sessions ADD COLUMN exported_to TEXT;
    ALTER TABLE sessions ADD COLUMN exported_at REAL;
    """,
    # 3: keep the document itself, so a session can be reopened after its file has moved or gone
    """
    ALTER TABLE sessions ADD COLUMN document TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The database cannot be opened or written; one sentence for the user."""


def default_data_dir() -> Path:
    """``MKFLASH_DATA_DIR``, else the platform's user data directory."""
    env = os.environ.get("MKFLASH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mkflash-tui", appauthor=False))


def open_store(folder: Path | None = None) -> Store:
    """The store in ``folder`` (``--data-dir``), else in ``default_data_dir()``. Raises StoreError."""
    return Store(folder or default_data_dir())


def cache_key(*parts: object) -> str:
    """A stable key from the things that shaped a result."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()


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


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    drafts: list[CardDraft]
    raw: str
    usage: Usage


class Store:
    """One connection, used from one thread (the event loop's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a crash of this process
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the session store at {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer mkflash-tui (schema {version}); upgrade to open it.")
        for number in range(version, SCHEMA_VERSION):
            # One step, one transaction: a crash mid-migration leaves the previous version intact.
            self.db.executescript(f"BEGIN;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number + 1};\nCOMMIT;")

    def _transaction(self):
        return _Transaction(self.db)

    # ------------------------------------------------------------------ cache

    def cached_summary(self, key: str) -> Summary | None:
        row = self.db.execute("SELECT value FROM cache WHERE key = ? AND kind = 'summary'", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Summary(data["title"], data["summary"])

    def save_summary(self, key: str, summary: Summary) -> None:
        value = json.dumps({"title": summary.title, "summary": summary.summary}, ensure_ascii=False)
        self._write("INSERT OR REPLACE INTO cache VALUES (?, 'summary', ?, ?)", (key, value, time.time()))

    def cached_chunk(self, key: str) -> CachedAnswer | None:
        row = self.db.execute("SELECT value FROM cache WHERE key = ? AND kind = 'chunk'", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        drafts = [CardDraft(d["front"], d["back"], d.get("quote", ""), CardKind(d.get("kind", "basic")))
                  for d in data["drafts"]]  # fmt: skip
        return CachedAnswer(drafts, data.get("raw", ""), Usage(*data.get("usage", (0, 0))))

    def save_chunk(self, session_id: str | None, chunk_id: str, index: int, key: str, drafts: Iterable[CardDraft],
                   raw: str, usage: Usage, cards: int) -> None:  # fmt: skip
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
                self._chunk_state(session_id, chunk_id, index, "done", "", cards)

    def chunk_state(self, session_id: str | None, chunk_id: str, index: int, state: str, reason: str = "",
                    cards: int = 0) -> None:  # fmt: skip
        """Record a chunk's state in its session (a failure, or a chunk answered from the cache)."""
        if session_id:
            with self._transaction():
                self._chunk_state(session_id, chunk_id, index, state, reason, cards)

    def _chunk_state(self, session_id: str, chunk_id: str, index: int, state: str, reason: str, cards: int) -> None:
        row = (session_id, chunk_id, index, state, reason, cards)
        self.db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?)", row)
        self.db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (time.time(), session_id))

    # ------------------------------------------------------------------ sessions

    def open_session(self, spec: dict, document: Document, *, chunks_total: int,
                     fresh: bool = False) -> tuple[str, bool]:  # fmt: skip
        """The latest session with the same input and settings (resumed), or a new one. Returns (id, resumed)."""
        input_name, input_hash, title = document.name, document.hash, document.title
        spec_key = cache_key("session", input_hash, spec)
        if not fresh:
            latest = self._latest_session(spec_key)
            if latest:
                return latest, True
        session_id = uuid.uuid4().hex[:8]
        now = time.time()
        self._write(
            "INSERT INTO sessions (id, spec_key, input_name, input_hash, title, settings, chunks_total, created, "
            "updated, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, spec_key, input_name, input_hash, title, json.dumps(spec), chunks_total, now, now,
             document_to_json(document)),
        )  # fmt: skip
        return session_id, False

    def session_source(self, session_id: str) -> tuple[dict, Document] | None:
        """The settings and the document a session was made from (None if unknown or kept by an old version)."""
        row = self.db.execute("SELECT settings, document FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None or not row[1]:
            return None
        return json.loads(row[0]), document_from_json(row[1])

    def find_session(self, spec: dict, input_hash: str) -> SessionInfo | None:
        """The session ``open_session`` would resume, if any."""
        latest = self._latest_session(cache_key("session", input_hash, spec))
        return next((s for s in self.sessions() if s.id == latest), None)

    def _latest_session(self, spec_key: str) -> str | None:
        row = self.db.execute(
            "SELECT id FROM sessions WHERE spec_key = ? ORDER BY updated DESC LIMIT 1", (spec_key,)
        ).fetchone()
        return row[0] if row else None

    def sessions(self) -> list[SessionInfo]:
        rows = self.db.execute(
            """
            SELECT s.id, s.title, s.input_name, s.created, s.updated, s.chunks_total, s.exported_to,
                   COALESCE(SUM(c.state = 'done'), 0), COALESCE(SUM(c.cards), 0),
                   (SELECT COUNT(*) FROM decisions d WHERE d.session_id = s.id AND d.deleted)
            FROM sessions s LEFT JOIN chunks c ON c.session_id = s.id
            GROUP BY s.id ORDER BY s.updated DESC
            """
        ).fetchall()
        return [
            SessionInfo(r[0], r[1], r[2], r[3], r[4], int(r[7]), r[5], max(0, int(r[8]) - int(r[9])), r[6])
            for r in rows
        ]

    def remove_session(self, session_id: str) -> bool:
        with self._transaction():
            removed = self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
        return bool(removed)

    def mark_exported(self, session_id: str | None, path: Path) -> None:
        if session_id:
            self._write("UPDATE sessions SET exported_to = ?, exported_at = ? WHERE id = ?",
                        (str(path), time.time(), session_id))  # fmt: skip

    # ------------------------------------------------------------------ review decisions

    def record_decision(self, session_id: str | None, card: Card, *, deleted: bool) -> None:
        """Commit a delete, an undo or an edit as it happens."""
        if not session_id:
            return
        front, back = (card.front, card.back) if card.edited else (None, None)
        self._write("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?)",
                    (session_id, card.id, int(deleted), front, back))  # fmt: skip

    def decisions(self, session_id: str | None) -> Decisions:
        if not session_id:
            return {}
        rows = self.db.execute("SELECT card_id, deleted, front, back FROM decisions WHERE session_id = ?",
                               (session_id,)).fetchall()  # fmt: skip
        return {r[0]: (bool(r[1]), r[2], r[3]) for r in rows}

    def _write(self, sql: str, params: tuple) -> None:
        with self._transaction():
            self.db.execute(sql, params)


def document_to_json(document: Document) -> str:
    blocks = [[b.text, list(b.headings), b.page] for b in document.blocks]
    meta = {"title": document.title, "name": document.name, "stem": document.stem, "kind": document.kind}
    return json.dumps({**meta, "blocks": blocks}, ensure_ascii=False)


def document_from_json(text: str) -> Document:
    data = json.loads(text)
    blocks = tuple(Block(t, tuple(h), p) for t, h, p in data["blocks"])
    return Document(blocks, data["title"], data["name"], data["stem"], data["kind"])


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        if not self.db.in_transaction:
            return
        if kind is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
