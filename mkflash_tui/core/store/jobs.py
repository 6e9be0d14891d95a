"""Jobs: a run over many documents (a folder, a list) as the store keeps it: what it was asked to read, its deck,
and its documents' sessions in order. Each document keeps its own session, so each resumes on its own."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from .connection import Connection, cache_key


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: str
    title: str
    deck: str
    inputs: tuple[str, ...]  # what it was asked to read: paths, folders, web addresses
    created: float
    updated: float
    sessions: tuple[str, ...]  # its documents' sessions, in document order


class Jobs(Connection):
    def open_job(self, inputs: list[str], *, title: str, deck: str, sessions: list[str]) -> str:
        """The job that read ``inputs`` before (now with these sessions, in this order), or a new one."""
        job_key = cache_key("job", inputs)
        now = time.time()
        with self._transaction():
            row = self.db.execute("SELECT id FROM jobs WHERE job_key = ?", (job_key,)).fetchone()
            if row:
                job_id = row[0]
                self.db.execute("UPDATE jobs SET title = ?, deck = ?, updated = ? WHERE id = ?",
                                (title, deck, now, job_id))  # fmt: skip
                self.db.execute("DELETE FROM job_documents WHERE job_id = ?", (job_id,))
            else:
                job_id = "j" + uuid.uuid4().hex[:7]
                self.db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (job_id, job_key, title, deck, json.dumps(inputs), now, now))  # fmt: skip
            self.db.executemany("INSERT OR IGNORE INTO job_documents VALUES (?, ?, ?)",
                                [(job_id, s, i) for i, s in enumerate(sessions)])  # fmt: skip
        return job_id

    def find_job(self, inputs: list[str]) -> JobInfo | None:
        """The job that read ``inputs`` before, if any."""
        row = self.db.execute("SELECT id FROM jobs WHERE job_key = ?", (cache_key("job", inputs),)).fetchone()
        return next((j for j in self.jobs() if j.id == row[0]), None) if row else None

    def jobs(self) -> list[JobInfo]:
        """Every job, the latest first."""
        rows = self.db.execute("SELECT id, title, deck, inputs, created, updated FROM jobs ORDER BY updated DESC")
        out = []
        for job_id, title, deck, inputs, created, updated in rows.fetchall():
            sessions = self.db.execute("SELECT session_id FROM job_documents WHERE job_id = ? ORDER BY idx",
                                       (job_id,)).fetchall()  # fmt: skip
            out.append(JobInfo(job_id, title, deck, tuple(json.loads(inputs)), created, updated,
                               tuple(s for (s,) in sessions)))  # fmt: skip
        return out

    def remove_job(self, job_id: str) -> bool:
        """Remove the job and its documents' sessions."""
        with self._transaction():
            sessions = [s for (s,) in self.db.execute("SELECT session_id FROM job_documents WHERE job_id = ?",
                                                      (job_id,)).fetchall()]  # fmt: skip
            removed = self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount
            self.db.executemany("DELETE FROM sessions WHERE id = ?", [(s,) for s in sessions])
        return bool(removed)
