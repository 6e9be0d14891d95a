"""The session store's tables, one step per schema version (PRAGMA user_version records where a database is)."""

from __future__ import annotations

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
    # 9: jobs over many documents (a folder, a list): the job is found again by what it was asked to read, and
    #    lists its documents' sessions in order; each session stays the document's own
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY, job_key TEXT NOT NULL UNIQUE, title TEXT NOT NULL, deck TEXT NOT NULL,
            inputs TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)""",
        """CREATE TABLE job_documents (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL, PRIMARY KEY (job_id, session_id))""",
    ),
    # 10: batches at a provider's batch engine, written down before each step that costs or cannot be undone
    #     (the input file's name before its upload, its id before the batch is created, the batch's id as soon as
    #     it exists), so a run that died anywhere finds its batches again instead of paying for them twice; the
    #     result files are kept as soon as a batch ends
    (
        """CREATE TABLE batches (
            name TEXT PRIMARY KEY, job TEXT NOT NULL, server TEXT NOT NULL, lines TEXT NOT NULL,
            file_id TEXT, batch_id TEXT, status TEXT NOT NULL, counts TEXT, error TEXT,
            output TEXT, errors TEXT, created REAL NOT NULL, updated REAL NOT NULL)""",
        "CREATE INDEX batches_by_job ON batches (job, created)",
    ),
]


SCHEMA_VERSION = len(MIGRATIONS)
