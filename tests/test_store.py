"""The session store: crash-safe resume, the answer cache, concurrent commits, migrations, and no secrets on disk."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

from conftest import run_cli, sections
from fake_openai import FakeOpenAI, chunk_of

from mkflash_tui.core.chunking import chunk_document
from mkflash_tui.core.engine import Run, RunSettings
from mkflash_tui.core.providers.openai_compat import OpenAICompatProvider
from mkflash_tui.core.sources import parse_bytes
from mkflash_tui.core.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, Store
from mkflash_tui.core.tokens import encoding_for_model

FLAGS = ["--chunk-tokens", "120", "--overlap-tokens", "0", "--api-key", "sk-test", "--yes", "--json"]


def generate(server: FakeOpenAI, cwd: Path, *extra: str, data: Path | None = None) -> dict:
    env = {"MKFLASH_DATA_DIR": str(data)} if data else None
    proc = run_cli("generate", "notes.md", "--base-url", server.base_url, *FLAGS, *extra, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def card_ids(path: Path) -> list[str]:
    return [c["id"] for c in json.loads(path.read_text())["cards"]]


def test_identical_run_makes_no_calls_and_another_model_does(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(sections(6))
    with FakeOpenAI() as server:
        first = generate(server, tmp_path, "-o", "a.json")
        assert first["requests"] == 7 and first["from_cache"] == 0  # the summary and 6 chunks
        before = len(server.requests)
        again = generate(server, tmp_path, "-o", "b.json")
        assert len(server.requests) == before  # zero chat-completion requests
        assert again["resumed"] and again["from_cache"] == 6 and again["session"] == first["session"]
        assert card_ids(tmp_path / "a.json") == card_ids(tmp_path / "b.json")
        other = generate(server, tmp_path, "-o", "c.json", "--model", "gpt-4o")
        assert len(server.requests) == before + 7 and other["from_cache"] == 0
        assert other["session"] != first["session"]
        fresh = generate(server, tmp_path, "-o", "d.json", "--fresh")
        assert len(server.requests) == before + 14 and not fresh["resumed"]
        no_cache = generate(server, tmp_path, "-o", "e.json", "--no-cache")
        assert len(server.requests) == before + 21 and no_cache["from_cache"] == 0


def test_offline_results_never_answer_an_online_run(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(sections(3))
    proc = run_cli("generate", "notes.md", "--chunk-tokens", "120", "--overlap-tokens", "0", "-o", "off.json",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with FakeOpenAI() as server:
        report = generate(server, tmp_path, "-o", "on.json")
    assert report["from_cache"] == 0 and report["requests"] == 4


def test_kill_9_mid_run_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(sections(6))
    data = tmp_path / "data"
    with FakeOpenAI() as server:
        # Chunks 3 to 6 are held at the server; chunks 1 and 2 finish and are committed, then the process dies.
        held = server.hold(lambda body: any(f"The part {i} fact" in (chunk_of(body) or "") for i in range(2, 6)))
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        env["MKFLASH_DATA_DIR"] = str(data)
        args = [sys.executable, "-m", "mkflash_tui", "generate", "notes.md", "--base-url", server.base_url, *FLAGS,
                "-o", "resumed.json"]  # fmt: skip
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert held.wait_arrived(4, timeout=30)
            deadline = time.monotonic() + 30
            while _done_chunks(data) < 2:
                assert time.monotonic() < deadline, "chunks 1 and 2 were never committed"
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        held.release()
        assert not (tmp_path / "resumed.json").exists()
        committed = {chunk_of(b) for b in server.chunk_requests() if "The part 0 fact" in chunk_of(b)
                     or "The part 1 fact" in chunk_of(b)}  # fmt: skip
        assert len(committed) == 2
        server.holds.clear()
        mark = len(server.requests)

        report = generate(server, tmp_path, "-o", "resumed.json", data=data)
        after = [chunk_of(b) for b in server.requests[mark:] if chunk_of(b) is not None]
        assert not committed & set(after)  # no committed chunk was asked again
        assert len(after) == 4 and report["from_cache"] == 2 and report["resumed"]

        generate(server, tmp_path, "-o", "clean.json", data=tmp_path / "clean-data")
    resumed, clean = card_ids(tmp_path / "resumed.json"), card_ids(tmp_path / "clean.json")
    assert resumed == clean and len(resumed) == len(set(resumed)) >= 6  # nothing lost, nothing doubled


def _done_chunks(data: Path) -> int:
    if not (data / DB_NAME).exists():
        return 0
    try:
        with sqlite3.connect(data / DB_NAME, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM chunks WHERE state = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


async def test_64_chunks_commit_at_once_while_a_reader_reads(tmp_path: Path) -> None:
    document = parse_bytes(sections(64).encode(), name="big.md", stem="big", suffix=".md")
    chunks = chunk_document(document, encoding_for_model("gpt-4o-mini"), 120, 0)
    assert len(chunks) == 64
    store = Store(tmp_path / "data")
    session, _ = store.open_session({"t": 1}, document, source_key="path:/big.md", chunks_total=64)
    errors: list[BaseException] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:  # another connection, as a second window or `mkflash-tui sessions` would read
        other = Store(tmp_path / "data")
        try:
            while not stop.is_set():
                other.sessions()
                other.decisions(session)
                reads[0] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.close()

    with FakeOpenAI() as server:
        hold = server.hold(lambda body: chunk_of(body) is not None)
        provider = OpenAICompatProvider(model="gpt-4o-mini", api_key="k", base_url=server.base_url)
        run = Run(document, chunks, provider, RunSettings(concurrency=64, cards_total=192), journal=store,
                  session_id=session)  # fmt: skip
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            task = asyncio.ensure_future(run.run())
            assert await hold.wait_arrived_async(64, timeout=30)
            hold.release()  # all 64 answers arrive together
            await task
        finally:
            stop.set()
            thread.join()
            await run.aclose()
    assert not errors and reads[0] > 0
    assert run.counts()["done"] == 64
    info = store.sessions()[0]
    assert info.chunks_done == 64 and info.cards == sum(len(s.cards) for s in run.status.values())


def test_a_version_1_database_opens_and_migrates(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    with sqlite3.connect(folder / DB_NAME) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO sessions VALUES ('old1', 'k', 'notes.md', 'h', 'Old notes', '{}', 3, 1.0, 2.0)")
        db.execute("INSERT INTO chunks VALUES ('old1', 'c0', 0, 'done', '', 4)")
    store = Store(folder)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
    [info] = store.sessions()
    assert (info.id, info.title, info.chunks_done, info.cards, info.exported_to) == ("old1", "Old notes", 1, 4, None)
    assert store.session_source("old1") is None  # kept without its text: cannot be reopened, still listed
    store.mark_exported("old1", Path("deck.apkg"))
    assert store.sessions()[0].exported_to == "deck.apkg"


def test_sessions_list_and_rm(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(sections(2))
    assert run_cli("generate", "notes.md", "-o", "n.apkg", cwd=tmp_path).returncode == 0
    listing = run_cli("sessions", cwd=tmp_path)
    assert listing.returncode == 0 and "Test Document (" in listing.stdout and " yes " in listing.stdout
    session_id = listing.stdout.splitlines()[1].split()[0]
    assert run_cli("sessions", "rm", "nope", cwd=tmp_path).returncode == 2
    removed = run_cli("sessions", "rm", session_id, cwd=tmp_path)
    assert removed.returncode == 0 and session_id in removed.stdout
    assert "no sessions yet" in run_cli("sessions", cwd=tmp_path).stdout


def test_the_api_key_never_reaches_disk(tmp_path: Path) -> None:
    secret = "sk-SECRET-never-on-disk-4242"
    (tmp_path / "notes.md").write_text(sections(3))
    data = tmp_path / "data"
    with FakeOpenAI(api_key=secret) as server:
        base = ["generate", "notes.md", "--base-url", server.base_url, "--yes"]
        by_env = run_cli(*base, "-o", "env.apkg", cwd=tmp_path, env={"OPENAI_API_KEY": secret,
                                                                      "MKFLASH_DATA_DIR": str(data)})  # fmt: skip
        by_flag = run_cli(*base, "--api-key", secret, "--fresh", "-o", "flag.csv", cwd=tmp_path,
                          env={"MKFLASH_DATA_DIR": str(data)})  # fmt: skip
    assert by_env.returncode == 0 and by_flag.returncode == 0, by_env.stderr + by_flag.stderr
    assert len(server.requests) == 4  # both runs really called the server (summary + one chunk each)
    needle = secret.encode()
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name == DB_NAME for p in files)
    for path in [*files, tmp_path / "flag.csv"]:
        assert needle not in path.read_bytes(), path
    with zipfile.ZipFile(tmp_path / "env.apkg") as deck:
        for name in deck.namelist():
            assert needle not in deck.read(name), name
    assert secret not in by_env.stderr + by_env.stdout + by_flag.stderr + by_flag.stdout
