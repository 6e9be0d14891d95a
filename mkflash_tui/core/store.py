"""The session store: one SQLite database (WAL) that keeps every paid-for answer and every review decision.

- ``cache``: chunk and summary results keyed by everything that shaped them (provider, base URL, model, prompt
  version, the request itself). An identical request is answered from here with no network call.
- ``sessions`` / ``chunks`` / ``decisions``: one session per run over one input and settings — its chunks'
  states and the user's deletions and edits, by immutable card id.

Each write is its own short transaction, committed before the engine reports the chunk finished. The API key
is never passed to this module.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .models import Block, Card, CardDraft, CardKind, Chunk, Document, Summary, Usage
from .review import Decisions

DB_NAME = "mkflash.sqlite3"
LOCK_STEP = 1.0  # seconds SQLite itself waits for a lock before this module says it waits
LOCK_WAIT = 30.0  # seconds in all before a held store is given up

# Each step moves the schema up one version; PRAGMA user_version records where a database is.
MIGRATIONS: list[tuple[str, ...]] = [
    # 1: the first release
    (
        "CREATE TABLE cache (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY, spec_key TEXT NOT NULL, input_name TEXT NOT NULL, input_hash TEXT NOT NULL,
            title TEXT NOT NULL, settings TEXT NOT NULL, chunks_total INTEGER NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL)""",
        "CREATE INDEX sessions_by_spec ON sessions (spec_key, updated)",
        """CREATE TABLE chunks (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, chunk_id TEXT NOT NULL,
            idx INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
            cards INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (session_id, chunk_id))""",
        """CREATE TABLE decisions (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, card_id TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0, front TEXT, back TEXT, PRIMARY KEY (session_id, card_id))""",
    ),
    # 2: remember exports, so `sessions` can say which runs were never exported
    (
        "ALTER TABLE sessions ADD COLUMN exported_to TEXT",
        "ALTER TABLE sessions ADD COLUMN exported_at REAL",
    ),
    # 3: keep the document itself, so a session can be reopened after its file has moved or gone
    ("ALTER TABLE sessions ADD COLUMN document TEXT",),
    # 4: the document in a table of its own: every chunk commit touches its session's row, and rewriting a
    #    64 MB row each time made a run's cost grow with the square of its input
    (
        """CREATE TABLE documents (
            session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE, document TEXT NOT NULL)""",
        "INSERT INTO documents SELECT id, document FROM sessions WHERE document IS NOT NULL",
        "UPDATE sessions SET document = NULL WHERE document IS NOT NULL",
    ),
    # 5: the number of cards an export would write, as the faces last counted it (after dedup and deletions),
    #    so every place that shows a session's cards shows the same number
    ("ALTER TABLE sessions ADD COLUMN cards_kept INTEGER",),
    # 6: each exported note's content hash and modification time, so a re-export of an unchanged card keeps
    #    its old time (and never overwrites the user's edits in Anki) while a changed one gets a newer one
    ("CREATE TABLE note_stamps (guid TEXT PRIMARY KEY, content TEXT NOT NULL, mod INTEGER NOT NULL)",),
    # 7: sessions found by their source (path, URL or --session name) rather than by the text's hash, with the
    #    summary kept as context; each chunk row keeps what the next run of an edited source needs: its answer's
    #    cache key, its anchor (where its body stands), the id its cards' ids begin with, the cards it asked for
    #    and the cards it made (so the cards of a chunk that is gone can be kept as stale)
    (
        "ALTER TABLE sessions ADD COLUMN source_key TEXT",
        "ALTER TABLE sessions ADD COLUMN summary TEXT",
        "ALTER TABLE chunks ADD COLUMN key TEXT",
        "ALTER TABLE chunks ADD COLUMN anchor TEXT",
        "ALTER TABLE chunks ADD COLUMN card_prefix TEXT",
        "ALTER TABLE chunks ADD COLUMN wanted INTEGER",
        "ALTER TABLE chunks ADD COLUMN card_list TEXT",
    ),
    # 8: the note each card became in a running Anki (by AnkiConnect's address), and the content it was sent
    #    with, so a second push updates only what changed and never adds a card twice
    ("CREATE TABLE anki_notes (anki TEXT NOT NULL, guid TEXT NOT NULL, note_id INTEGER NOT NULL, "
     "content TEXT NOT NULL, PRIMARY KEY (anki, guid))",),
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


def open_store(folder: Path | None = None, *, on_wait: Callable[[str], None] | None = None) -> Store:
    """The store in ``folder`` (``--data-dir``), else in ``default_data_dir()``. Raises StoreError.
    ``on_wait`` is told (once) when another process holds the store and this one waits."""
    return Store(folder or default_data_dir(), on_wait=on_wait)


def move_store_aside(folder: Path | None = None) -> Path:
    """Rename a damaged store (and its -wal and -shm files) to ``….broken`` beside it; returns the new path.
    Raises OSError."""
    path = (folder or default_data_dir()) / DB_NAME
    target = path.with_name(f"{DB_NAME}.broken")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target


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


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    drafts: list[CardDraft]
    raw: str
    usage: Usage


class Store:
    """One connection, used from one thread (the event loop's).

    The database holds the user's documents: its folder is private (0700) and the database with its ``-wal`` and
    ``-shm`` files are 0600, on every open (so installs made before this rule are tightened too). Every write
    error (a full or read-only disk) is raised as ``StoreError``.
    """

    def __init__(self, folder: Path, *, on_wait: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.on_wait = on_wait  # told once when another process holds the store and this one waits for it
        try:
            if self.folder.exists() and not self.folder.is_dir():
                raise StoreError(f"the data directory {self.folder} is a file, not a folder; pass --data-dir with "
                                 "a folder (or set MKFLASH_DATA_DIR)")  # fmt: skip
            created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if created or (self.path.exists() and not self.folder.stat().st_mode & stat.S_ISVTX):
                # Only a folder this program made, or one holding its store already: a shared folder someone
                # gave as --data-dir (a sticky /tmp-like one) keeps its permissions; the files in it are private.
                _private(self.folder, 0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            for path in self._files():
                _private(path, 0o600)  # SQLite gives -wal and -shm the database file's mode when it makes them
            self.db = sqlite3.connect(self.path, timeout=LOCK_STEP, isolation_level=None)
            self._use_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a crash of this process
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
            self._check_pages()
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(store_problem(self.path, exc, opening=True)) from None

    def _check_pages(self) -> None:
        """A store whose pages are damaged (its header intact) is found now, in one sentence, not half way through
        a run. ``quick_check`` reads every page once: about a second for a store of 100 MB."""
        row = self.db.execute("PRAGMA quick_check(1)").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError("database disk image is malformed")

    def _use_wal(self) -> None:
        # Switching a new database to WAL takes an exclusive lock and does not wait for one: another process
        # opening it at the same moment makes it fail at once with "database is locked". Wait and try again.
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                self._waiting()
                time.sleep(0.01)

    def _waiting(self) -> None:
        if self.on_wait is not None:
            self.on_wait(f"the session store at {self.path} is in use by another mkflash-tui; waiting up to "
                         f"{LOCK_WAIT:g} s")  # fmt: skip
            self.on_wait = None

    def _files(self) -> list[Path]:
        return [p for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()]

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> None:
        """Bring the schema up to date, one step per transaction; safe when several processes open a new store
        at once (each step re-reads the version under the write lock, so only one process applies it)."""
        while True:
            with self._transaction():
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} was written by a newer mkflash-tui (schema {version}); upgrade to open it."
                    )
                if version == SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version + 1}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One short write transaction; any SQLite or disk error becomes a StoreError with one sentence."""
        outer = self.db.in_transaction
        try:
            if not outer:
                self._begin()
            yield
            if not outer and self.db.in_transaction:
                self.db.execute("COMMIT")
        except BaseException as exc:
            if not outer and self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StoreError(store_problem(self.path, exc)) from None
            raise

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting (and saying so, once) while another process writes."""
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                self._waiting()

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

    # ------------------------------------------------------------------ sessions

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

    # ------------------------------------------------------------------ exported notes

    def note_stamps(self, guids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """The content hash and modification time each of these notes was last exported with."""
        rows = self._rows_for("SELECT guid, content, mod FROM note_stamps WHERE guid IN ({marks})", (), guids)
        return {guid: (content, int(mod)) for guid, content, mod in rows}

    def _rows_for(self, sql: str, params: tuple, keys: Iterable[str]) -> list[tuple]:
        """The rows of ``sql`` for every key, asked 500 at a time (SQLite limits a query's parameters); the
        query's ``{marks}`` stands for the keys' placeholders, after ``params``."""
        wanted = list(keys)
        rows: list[tuple] = []
        try:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                rows.extend(self.db.execute(sql.format(marks=",".join("?" * len(part))), [*params, *part]))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the session store at {self.path}: {_reason(exc)}") from None
        return rows

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

    def save_anki_notes(self, anki: str, notes: dict[str, tuple[int, str]], removed: Iterable[str] = ()) -> None:
        """Remember the notes a push made or updated (guid -> (note id, content)); forget ``removed`` ones."""
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO anki_notes VALUES (?, ?, ?, ?)",
                                [(anki, g, n, c) for g, (n, c) in notes.items()])  # fmt: skip
            self.db.executemany("DELETE FROM anki_notes WHERE anki = ? AND guid = ?", [(anki, g) for g in removed])

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


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def guarded(self: Store, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:  # a read of a page damaged after the store was opened
            raise StoreError(store_problem(self.path, exc)) from None

    return guarded


for _name, _method in list(vars(Store).items()):
    if callable(_method) and not _name.startswith("_") and _name != "close":
        setattr(Store, _name, _guarded(_method))


def cards_to_json(cards: Iterable[Card]) -> str:
    return json.dumps(
        [[c.id, c.ordinal, c.original_front, c.original_back, c.quote, str(c.kind), list(c.headings), c.page,
          list(c.flags), int(c.markdown)] for c in cards],
        ensure_ascii=False,
    )  # fmt: skip


def cards_from_json(text: str, chunk_id: str, index: int, *, markdown: bool = False) -> list[Card]:
    """Cards as ``cards_to_json`` kept them; ``markdown``: who wrote cards kept before that was recorded (a model,
    when the session's provider was online)."""
    out = []
    for row in json.loads(text):
        card_id, ordinal, front, back, quote, kind, headings, page = row[:8]
        card = Card(card_id, chunk_id, index, ordinal, front, back, quote, CardKind(kind), tuple(headings), page)
        card.flags = tuple(row[8]) if len(row) > 8 else ()
        card.markdown = bool(row[9]) if len(row) > 9 else markdown
        out.append(card)
    return out


def document_to_json(document: Document) -> str:
    blocks = [[b.text, list(b.headings), b.page] for b in document.blocks]
    meta = {"title": document.title, "name": document.name, "stem": document.stem, "kind": document.kind}
    return json.dumps({**meta, "blocks": blocks}, ensure_ascii=False)


def document_from_json(text: str) -> Document:
    data = json.loads(text)
    blocks = tuple(Block(t, tuple(h), p) for t, h, p in data["blocks"])
    return Document(blocks, data["title"], data["name"], data["stem"], data["kind"])


def _source_text(source_key: str | None) -> str:
    """A session's source key for people: "path:/a/b.md" → "/a/b.md", "name:lecture" → "--session lecture"."""
    if not source_key:
        return ""
    kind, _, value = source_key.partition(":")
    return {"path": value, "url": value, "name": f"--session {value}", "text": "pasted text or stdin",
            "demo": "the demo"}.get(kind, source_key)  # fmt: skip


def _file_digest(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _private(path: Path, mode: int) -> None:
    """Take group and other permissions off ``path`` (never add any); a path we do not own is left alone."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            os.chmod(path, current & mode)
    except OSError:
        pass


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror.lower()
    return text


def store_problem(path: Path, exc: BaseException, *, opening: bool = False) -> str:
    """One sentence for what went wrong with the store at ``path``, and what to do about it."""
    reason = _reason(exc)
    lowered = reason.lower()
    if "malformed" in lowered or "not a database" in lowered or "file is encrypted" in lowered:
        return (f"the session store at {path} is damaged ({reason}); move it aside (mv {path} {path}.broken) to "
                "start a new one, or pass --data-dir")
    if "locked" in lowered or "busy" in lowered:
        return (f"the session store at {path} is in use by another mkflash-tui (still locked after {LOCK_WAIT:g} s);"
                " wait for it to finish, or pass --data-dir")
    if "readonly" in lowered or "read-only" in lowered or getattr(exc, "errno", None) == errno.EROFS:
        return f"the session store at {path} is read-only ({reason}); pass --data-dir with a folder you can write"
    if "full" in lowered or getattr(exc, "errno", None) == errno.ENOSPC:
        return f"the disk holding the session store at {path} is full ({reason}); free some space, or pass --data-dir"
    if isinstance(exc, PermissionError) or "permission" in lowered:
        return f"no permission to use the session store at {path} ({reason}); pass --data-dir"
    verb = "open" if opening else "write"
    return f"cannot {verb} the session store at {path}: {reason}"
