"""Batches at a provider's batch engine, as the store keeps them: one row per input file, written before each
step that costs or cannot be undone, so that a run that died anywhere finds its batches again (``core.batch``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .connection import Connection

FINAL = frozenset({"completed", "failed", "expired", "cancelled"})  # a batch in one of these changes no more


@dataclass(frozen=True, slots=True)
class BatchRecord:
    name: str  # the input file's name (it carries the job's id)
    job: str  # the session (or the job over many documents) whose requests it holds
    server: str  # where it was sent: the base URL and the model (never the key)
    lines: dict[str, str]  # custom_id -> the request's key (what the answer is matched by on a later run)
    file_id: str | None
    batch_id: str | None
    status: str  # "preparing" until the batch exists, then the batch's own status as last seen
    counts: dict[str, int]  # request_counts as last seen: total, completed, failed
    error: str  # why the batch failed, in the server's words
    output: str | None  # the result file's lines, once the batch ended
    errors: str | None  # the error file's lines, once the batch ended
    created: float
    updated: float

    @property
    def final(self) -> bool:
        return self.status in FINAL


_COLUMNS = "name, job, server, lines, file_id, batch_id, status, counts, error, output, errors, created, updated"


class Batches(Connection):
    """The ``batches`` table."""

    def add_batch(self, name: str, job: str, server: str, lines: dict[str, str]) -> None:
        """Write down an input file before it is uploaded."""
        now = time.time()
        self._write(f"INSERT OR REPLACE INTO batches ({_COLUMNS}) VALUES (?, ?, ?, ?, NULL, NULL, 'preparing', "
                    "NULL, '', NULL, NULL, ?, ?)", (name, job, server, json.dumps(lines), now, now))  # fmt: skip

    def update_batch(self, name: str, **fields: object) -> None:
        """Change a batch's ``file_id``, ``batch_id``, ``status``, ``counts``, ``error``, ``output`` or ``errors``."""
        allowed = {"file_id", "batch_id", "status", "counts", "error", "output", "errors"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"unknown batch fields: {sorted(set(fields) - allowed)}")
        values = [json.dumps(v) if k == "counts" else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self._write(f"UPDATE batches SET {assignments}, updated = ? WHERE name = ?", (*values, time.time(), name))

    def remove_batch(self, name: str) -> None:
        self._write("DELETE FROM batches WHERE name = ?", (name,))

    def batches(self, job: str | None = None) -> list[BatchRecord]:
        """A job's batches (every job's, without one), the first submitted first."""
        where, params = ("WHERE job = ?", (job,)) if job is not None else ("", ())
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM batches {where} ORDER BY created, name", params)
        return [_record(row) for row in rows.fetchall()]


def _record(row: tuple) -> BatchRecord:
    name, job, server, lines, file_id, batch_id, status, counts, error, output, errors, created, updated = row
    return BatchRecord(name, job, server, json.loads(lines), file_id, batch_id, status,
                       json.loads(counts) if counts else {}, error or "", output, errors, created, updated)  # fmt: skip
