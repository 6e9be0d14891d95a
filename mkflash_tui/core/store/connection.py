"""The store's connection: opening (private files, WAL, the schema brought up to date, damaged pages found at
once), short write transactions that wait for another process (and say so), and one sentence for every way the
store can fail."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "mkflash.sqlite3"
LOCK_STEP = 1.0  # seconds SQLite itself waits for a lock before this module says it waits
LOCK_WAIT = 30.0  # seconds in all before a held store is given up


class StoreError(Exception):
    """The database cannot be opened or written; one sentence for the user."""


def cache_key(*parts: object) -> str:
    """A stable key from the things that shaped a result."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()


class Connection:
    """One connection, used from one thread (the event loop's).

    The database holds the user's documents: its folder is private (0700) when this program makes it, and the
    database with its ``-wal`` and ``-shm`` files are 0600, on every open (so installs made before this rule are
    tightened too). Every write error (a full or read-only disk) is raised as ``StoreError``.
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

    def _write(self, sql: str, params: tuple) -> None:
        with self._transaction():
            self.db.execute(sql, params)

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
