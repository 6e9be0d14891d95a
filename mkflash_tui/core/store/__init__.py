"""The session store: one SQLite database (WAL) that keeps every paid-for answer and every review decision.

- ``cache``: chunk and summary results keyed by everything that shaped them (provider, base URL, model, prompt
  version, the request itself). An identical request is answered from here with no network call.
- ``sessions`` / ``chunks`` / ``decisions``: one session per run over one input and settings — its chunks'
  states and the user's deletions and edits, by immutable card id.
- ``jobs`` / ``job_documents``: a run over many documents (a folder, a list) and its documents' sessions.
- ``batches``: input files and batches at a provider's batch engine, and their result files (``--batch``).

Each write is its own short transaction, committed before the engine reports the chunk finished. The API key
is never passed to this package. ``Store`` is its rooms together: the connection, answers, sessions, exports, jobs.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .answers import Answers, CachedAnswer
from .batches import Batches, BatchRecord
from .connection import DB_NAME, LOCK_WAIT, Connection, StoreError, cache_key, store_problem
from .exports import Exports
from .jobs import JobInfo, Jobs
from .schema import MIGRATIONS, SCHEMA_VERSION
from .serialize import cards_from_json, cards_to_json, document_from_json, document_to_json
from .sessions import SessionInfo, Sessions, StoredChunk

__all__ = ["DB_NAME", "LOCK_WAIT", "MIGRATIONS", "SCHEMA_VERSION", "BatchRecord", "CachedAnswer", "Connection",
           "JobInfo", "SessionInfo", "Store", "StoreError", "StoredChunk", "cache_key", "cards_from_json",
           "cards_to_json", "default_data_dir",
           "document_from_json", "document_to_json", "move_store_aside", "open_store", "store_problem"]  # fmt: skip


class Store(Answers, Sessions, Exports, Jobs, Batches):
    """The session store (see the package's docstring); every public method raises ``StoreError`` only."""


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


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def guarded(self: Store, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:  # a read of a page damaged after the store was opened
            raise StoreError(store_problem(self.path, exc)) from None

    return guarded


for _name in dir(Store):
    _method = getattr(Store, _name)
    if callable(_method) and not _name.startswith("_") and _name != "close":
        setattr(Store, _name, _guarded(_method))
