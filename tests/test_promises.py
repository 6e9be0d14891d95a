"""The README's promises, each tested as the promise itself (not by a side effect of it), and where a promise
had a single guard, a second one from another side."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, Fault, chunk_of, default_cards
from test_engine import make_job
from test_faults import Schedule

from mkflash_tui.core.models import ChunkFinished
from mkflash_tui.core.store import DB_NAME, Store


async def _run_checking_commits(job, store: Store, session_id: str) -> list[str]:
    """Run ``job``; at every ChunkFinished, look in the store: the chunk must already be committed as done."""
    run = job.make_run(store=store, session_id=session_id)
    seen: list[str] = []
    # A second connection sees only what was committed, not what the run's own connection has pending.
    reader = sqlite3.connect(store.path)

    def check(event) -> None:
        if isinstance(event, ChunkFinished):
            row = reader.execute("SELECT state, cards FROM chunks WHERE session_id = ? AND chunk_id = ?",
                                 (session_id, event.chunk_id)).fetchone()  # fmt: skip
            assert row is not None and row[0] == "done", (event.chunk_id, row)
            assert row[1] == len(event.cards)
            seen.append(event.chunk_id)

    run.subscribe(check)
    await run.run()
    await run.aclose()
    reader.close()
    return seen


@pytest.mark.parametrize("rerun", ["fresh", "cached"])
async def test_every_answer_is_committed_before_its_chunk_counts_as_finished(tmp_path: Path, rerun: str) -> None:
    store = Store(tmp_path / "data")
    with FakeOpenAI(latency=0.01) as server:
        job = make_job(server, sections(8), chunk_tokens=120)
        session_id, _ = job.open_session(store)
        first = await _run_checking_commits(job, store, session_id)
        assert len(first) == len(job.chunks) == 8
        if rerun == "cached":  # a new session answered from the store: the same promise, no calls
            calls = len(server.requests)
            job.settings.fresh = True
            session_id, _ = job.open_session(store)
            job.settings.fresh = False
            second = await _run_checking_commits(job, store, session_id)
            assert len(second) == 8 and len(server.requests) == calls


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "2500"}, 2.5), ({"retry-after": "0.25"}, 0.25)],
)
async def test_retry_after_is_slept(headers: dict, wait: float) -> None:
    limited = Fault(status=429, code="rate_limit_exceeded", message="Rate limit reached", headers=headers)
    schedule = Schedule(lambda key, attempt: limited if key != "summary" and attempt == 1 else None)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the run's injected sleep: record, do not wait
        slept.append(seconds)

    with FakeOpenAI(fault_for=schedule) as server:
        job = make_job(server, sections(1), chunk_tokens=200)
        run = job.make_run(sleep=sleep)
        await run.run()
        await run.aclose()
    assert run.counts()["done"] == 1 and len(server.chunk_requests()) == 2
    [seconds] = slept
    assert wait <= seconds <= wait + 1.0  # the server's wait, plus a little jitter; never less


def test_identical_cards_from_two_chunks_are_one_note_in_anki(tmp_path: Path) -> None:
    """Cross-chunk deduplication, checked where it matters: in a deck imported by Anki."""

    def repeating(body: dict) -> dict:
        cards = default_cards(body)
        if chunk_of(body):
            cards["cards"].insert(0, {"type": "basic", "front": "What is the unit of mass here?",
                                      "back": "Grams.", "quote": ""})  # fmt: skip
        return cards

    (tmp_path / "n.md").write_text(sections(5))
    with FakeOpenAI(cards=repeating) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--overlap-tokens", "0", "--yes", "--json", cwd=tmp_path)  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["chunks"] == 5, proc.stderr
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(tmp_path / "n.apkg")
        notes = anki.notes()
    finally:
        anki.close()
    fronts = [n.fields.get("Front") for n in notes]
    assert fronts.count("What is the unit of mass here?") == 1
    assert len(notes) == report["cards"]


def test_the_sessions_row_never_holds_the_key(tmp_path: Path) -> None:
    """The key stays out of the store, looked at directly: every column of every table, as text."""
    secret = "sk-live-DIRECT-LOOK-0123456789"
    (tmp_path / "n.md").write_text(sections(2))
    data = tmp_path / "data"
    with FakeOpenAI(api_key=secret) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--yes", "-o", "n.json", cwd=tmp_path,
                       env={"OPENAI_API_KEY": secret, "MKFLASH_DATA_DIR": str(data)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(data / DB_NAME)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "sessions" in tables
    for table in tables:
        for row in db.execute(f"SELECT * FROM {table}"):
            assert secret not in " ".join(str(v) for v in row), table
    [settings] = db.execute("SELECT settings FROM sessions").fetchone()
    assert "key" not in json.loads(settings) and "api_key" not in settings
    db.close()
