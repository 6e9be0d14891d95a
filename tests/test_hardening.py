"""Nothing a file, a server or a disk does can crash a run or lose its cards.

Each test covers a class of fault end to end (the real AsyncOpenAI client against the loopback server, the real
CLI in a subprocess, or the real store on a real or simulated full disk).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, sections
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary
from test_engine import fast, make_job
from test_faults import Schedule

from mkflash_tui.core.cards import MAX_FIELD_CHARS
from mkflash_tui.core.models import ChunkState
from mkflash_tui.core.parsing import RAW_EXCERPT_CHARS
from mkflash_tui.core.store import DB_NAME, Store, StoreError

NGINX = b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>Welcome to nginx!</body></html>"
DEADLINE = 60  # generous: a bounded run ends long before; an unbounded one would hang here instead


async def run_to_end(run) -> None:
    try:
        await asyncio.wait_for(run.run(), DEADLINE)
    finally:
        await run.aclose()


# ---------------------------------------------------------------- answers that are not chat completions


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("body", "content_type", "what"),
    [
        (NGINX, "text/html", "an HTML page"),
        (b'{"hello": "world"}', "application/json", "JSON that is not a chat completion"),
        (b"OK", "text/plain", "a body that is not JSON"),
    ],
)
async def test_an_answer_that_is_not_a_chat_completion_fails_only_its_chunk(
    stream: bool, body: bytes, content_type: str, what: str
) -> None:
    fault = Fault(body=body, content_type=content_type)
    with FakeOpenAI(fault_for=lambda n, b: fault if "The part 1 fact" in (chunk_of(b) or "") else None) as server:
        job = make_job(server, sections(4), chunk_tokens=120)
        run = fast(job.make_run(stream=stream))
        await run_to_end(run)
    failed = [s for s in run.status.values() if s.state is ChunkState.FAILED]
    assert len(failed) == 1 and run.counts()["done"] == 3 and run.fatal is None
    if stream and content_type != "text/html":
        what = "a stream with no chat-completion events" if content_type == "text/plain" else what
    assert f"the server at {server.base_url} answered with" in failed[0].reason
    assert what in failed[0].reason or "not a chat completion" in failed[0].reason
    attempts = [b for b in server.chunk_requests() if "The part 1 fact" in chunk_of(b)]
    assert len(attempts) == 3  # retried like a 5xx (proxies do this transiently), but not 6 times


def test_a_summary_answered_by_a_web_page_stops_the_run_once(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(6))
    with FakeOpenAI(fault_for=lambda n, b: Fault(body=NGINX, content_type="text/html")) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--yes", cwd=tmp_path)  # fmt: skip
        assert len(server.requests) == 3 and all(is_summary(b) for b in server.requests)
    sentence = (
        f"the server at {server.base_url} answered with an HTML page, not a chat completion; is --base-url right?"
    )
    assert proc.returncode == 3 and proc.stderr.count(sentence) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "n.apkg").exists()


def test_a_chunk_answered_by_a_web_page_the_deck_holds_the_rest(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(5))
    fault = Fault(body=NGINX, content_type="text/html")
    with FakeOpenAI(fault_for=lambda n, b: fault if "The part 2 fact" in (chunk_of(b) or "") else None) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--overlap-tokens", "0", "--yes", "--json", cwd=tmp_path)  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["failed_chunks"] == 1 and report["cards"] > 0, proc.stderr
    assert "HTML page, not a chat completion" in report["failures"][0]["reason"]
    assert "Traceback" not in proc.stderr and (tmp_path / "n.apkg").exists()


# ---------------------------------------------------------------- deadlines


async def test_a_dripping_answer_is_bounded_by_the_timeout_and_retried_once() -> None:
    # One byte every 0.05 s of a ~1 KB answer: about a minute per attempt if only each read were bounded.
    with FakeOpenAI(fault_for=lambda n, b: Fault(drip=0.05) if chunk_of(b) else None) as server:
        job = make_job(server, sections(1), chunk_tokens=200, timeout=0.5)
        run = fast(job.make_run(stream=False))
        await run_to_end(run)
    [status] = run.status.values()
    assert status.state is ChunkState.FAILED
    assert status.reason == "no complete answer within 0.5 s (--timeout), 2 times"
    assert len(server.chunk_requests()) == 2


async def test_a_stream_that_goes_silent_after_its_headers_is_dropped_at_the_idle_limit() -> None:
    with FakeOpenAI(fault_for=lambda n, b: Fault(stall=True) if chunk_of(b) else None) as server:
        job = make_job(server, sections(1), chunk_tokens=200, timeout=30)
        run = fast(job.make_run(stream=True))
        run.provider.idle_timeout = 0.3
        await run_to_end(run)
    [status] = run.status.values()
    assert status.state is ChunkState.FAILED
    assert status.reason == "the server sent nothing for 0.3 s; dropped the stream, 2 times"
    assert len(server.chunk_requests()) == 2


def test_help_states_the_worst_case() -> None:
    proc = run_cli("generate", "--help")
    text = " ".join(proc.stdout.split())
    assert "end to end (default: 300)" in text and "about 2 x S" in text


# ---------------------------------------------------------------- size limits


def _cards_answer(count: int, front: str = "What weighs {i} grams?") -> str:
    return json.dumps(
        {
            "cards": [
                {"type": "basic", "front": front.format(i=i), "back": f"element {i}", "quote": ""} for i in range(count)
            ]
        }
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_with_thousands_of_cards_keeps_only_those_asked_for(stream: bool) -> None:
    answer = _cards_answer(3000)
    with FakeOpenAI(fault_for=lambda n, b: Fault(content=answer) if chunk_of(b) else None,
                    chars_per_delta=4000) as server:  # fmt: skip
        job = make_job(server, sections(1), chunk_tokens=200)
        run = fast(job.make_run(stream=stream))
        await run_to_end(run)
    [status] = run.status.values()
    wanted = status.cards_wanted
    assert status.state is ChunkState.DONE and len(status.cards) == wanted < 20
    assert [c.front for c in status.cards] == [f"What weighs {i} grams?" for i in range(wanted)]  # answer order
    assert status.trimmed == [f"kept the first {wanted} of 3000 cards in the answer"]
    assert len(status.raw_output) <= RAW_EXCERPT_CHARS + 100


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_larger_than_the_cap_is_cut_and_its_first_cards_kept(tmp_path: Path, stream: bool) -> None:
    answer = _cards_answer(40_000)  # ~3 MB: more than any real answer
    store = Store(tmp_path / "data")
    with FakeOpenAI(fault_for=lambda n, b: Fault(content=answer) if chunk_of(b) else None,
                    chars_per_delta=8000) as server:  # fmt: skip
        job = make_job(server, sections(1), chunk_tokens=200)
        session_id, _ = job.open_session(store)
        run = fast(job.make_run(stream=stream, store=store, session_id=session_id))
        await run_to_end(run)
    [status] = run.status.values()
    assert status.state is ChunkState.DONE and len(status.cards) == status.cards_wanted
    assert any("was cut there" in note for note in status.trimmed), status.trimmed
    # Only bounded excerpts reach the store.
    [[size]] = store.db.execute("SELECT MAX(LENGTH(value)) FROM cache").fetchall()
    assert size < 3 * RAW_EXCERPT_CHARS + 4000


async def test_an_overlong_field_is_cut_and_reported() -> None:
    answer = _cards_answer(2, front="What is " + "very " * 20_000 + "{i}?")
    with FakeOpenAI(fault_for=lambda n, b: Fault(content=answer) if chunk_of(b) else None) as server:
        job = make_job(server, sections(1), chunk_tokens=200, cards=2)
        run = fast(job.make_run(stream=False))
        await run_to_end(run)
    [status] = run.status.values()
    assert status.cards and all(len(c.front) <= MAX_FIELD_CHARS for c in status.cards)
    assert status.trimmed == [f"shortened 2 cards with a field over {MAX_FIELD_CHARS} characters"]


def test_json_report_and_deck_stay_bounded(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(sections(2))
    huge = "x" * 3_000_000
    fault = Fault(content='{"cards": [{"front": "' + huge)  # unfinished, and larger than the cap
    with FakeOpenAI(fault_for=lambda n, b: fault if "The part 0 fact" in (chunk_of(b) or "") else None) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--yes", "--json", cwd=tmp_path)  # fmt: skip
    assert len(proc.stdout) < 50_000 and "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["cards"] > 0 and (tmp_path / "n.apkg").stat().st_size < 200_000


async def test_cut_off_twice_in_a_row_still_finishes() -> None:
    def cut(key: str, attempt: int) -> Fault | None:
        whole = "The part 0 fact 0 states" in key and "The part 0 fact 11 states" in key
        first_half = "The part 0 fact 0 states" in key and not whole
        if whole or (first_half and attempt == 1):
            return Fault(content='{"cards": [{"front": "What is', finish_reason="length")
        return None

    with FakeOpenAI(fault_for=Schedule(cut)) as server:
        job = make_job(server, sections(1, sentences=12), chunk_tokens=400)
        run = fast(job.make_run(stream=False))
        await run_to_end(run)
    [status] = run.status.values()
    assert status.state is ChunkState.DONE and status.cards, status.reason
    assert len(server.chunk_requests()) == 4  # the whole, the first half twice, the second half


async def test_an_error_that_echoes_the_key_is_redacted(tmp_path: Path) -> None:
    secret = "sk-proj-ECHOED0123456789abcdefSECRET"
    fault = Fault(status=400, message=f"Invalid request for key {secret}: bad things")
    store = Store(tmp_path / "data")
    with FakeOpenAI(fault_for=lambda n, b: fault if chunk_of(b) else None) as server:
        job = make_job(server, sections(1), chunk_tokens=200, api_key=secret)
        session_id, _ = job.open_session(store)
        run = fast(job.make_run(store=store, session_id=session_id))
        await run_to_end(run)
    [status] = run.status.values()
    assert status.state is ChunkState.FAILED and "[redacted key]" in status.reason and secret not in status.reason
    [[reason]] = store.db.execute("SELECT reason FROM chunks").fetchall()
    assert "[redacted key]" in reason and secret not in reason


# ---------------------------------------------------------------- inputs


def test_what_is_not_a_regular_file_gets_one_sentence(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "dangling").symlink_to("gone.md")
    cases = {
        "pipe": "pipe is a named pipe (FIFO), not a file; to read a stream, pipe it in: mkflash-tui generate - < pipe.",
        "/dev/zero": "/dev/zero is a character device, not a file",
        "a": "a is a symbolic link loop",
        "dangling": "dangling is a broken symbolic link (what it points to, gone.md, does not exist).",
    }
    for name, sentence in cases.items():
        proc = run_cli("generate", name, cwd=tmp_path, timeout=30)
        assert proc.returncode == 2 and sentence in proc.stderr, (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    app = run_cli("pipe", cwd=tmp_path, timeout=30)  # the app checks its input the same way
    assert app.returncode == 2 and "named pipe" in app.stderr


def test_stdin_is_read_up_to_the_cap(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([sys.executable, "-m", "mkflash_tui", "generate", "-"], stdin=zero, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "larger than 200 MB" in proc.stderr and "Traceback" not in proc.stderr


def test_a_text_with_nothing_to_make_cards_from_exits_2(tmp_path: Path) -> None:
    import base64

    (tmp_path / "blob.txt").write_bytes(base64.b64encode(os.urandom(150_000)))
    proc = run_cli("generate", "blob.txt", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "blob.txt has nothing to make cards from, so no deck was written." in proc.stderr
    assert not (tmp_path / "blob.apkg").exists()


# ---------------------------------------------------------------- the store


def _wal_growth_of_commits(folder: Path, text: str) -> int:
    from mkflash_tui.core.sources import parse_bytes

    store = Store(folder)
    document = parse_bytes(text.encode(), name="n.md", stem="n", suffix=".md")
    session_id, _ = store.open_session({"x": 1}, document, source_key="path:/n.md", chunks_total=100)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(20):
        store.chunk_state(session_id, f"c{i}", i, "done", cards=3)
    assert store.session_source(session_id)[1].text == document.text
    return Path(f"{store.path}-wal").stat().st_size


def test_a_chunk_commit_does_not_rewrite_the_document(tmp_path: Path) -> None:
    """The cost of a commit must not grow with the document: it once rewrote the session row holding it all."""
    big_text = sections(4000)  # ~1.3 MB
    small = _wal_growth_of_commits(tmp_path / "small", sections(2))
    big = _wal_growth_of_commits(tmp_path / "big", big_text)
    assert big <= small * 1.5 < len(big_text) // 2, (small, big)  # 20 commits cost the same, whatever the document


def _race_open(folder: Path, processes: int) -> list[subprocess.CompletedProcess]:
    code = (
        "import sys, time; from pathlib import Path; from mkflash_tui.core.store import Store\n"
        "start = float(sys.argv[2])\n"
        "while time.time() < start: pass\n"
        "s = Store(Path(sys.argv[1])); s.sessions(); print('ok')"
    )
    import time

    start = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder), start], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(processes)]  # fmt: skip
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    for trial in range(3):
        results = _race_open(tmp_path / f"data{trial}", 6)
        assert all(r.returncode == 0 and r.stdout.strip() == "ok" for r in results), [r.stderr for r in results]


def test_the_store_is_private_new_and_existing(tmp_path: Path) -> None:
    fresh = Store(tmp_path / "new")
    fresh.chunk_state(None, "c", 0, "done")
    fresh.db.execute("CREATE TABLE IF NOT EXISTS t (x)")  # make sure -wal and -shm exist
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    for path in (fresh.path, Path(f"{fresh.path}-wal"), Path(f"{fresh.path}-shm")):
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, path
    fresh.close()
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    sqlite3.connect(old / DB_NAME).close()
    os.chmod(old / DB_NAME, 0o644)
    Path(f"{old / DB_NAME}-wal").write_bytes(b"")
    os.chmod(f"{old / DB_NAME}-wal", 0o644)
    Store(old).close()
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
    assert stat.S_IMODE((old / DB_NAME).stat().st_mode) == 0o600


async def _halted_run(tmp_path: Path, limit) -> tuple:
    """A run whose store stops accepting writes (``limit(store)``) while its first calls are in flight."""
    store = Store(tmp_path / "data")
    with FakeOpenAI() as server:
        hold = server.hold(lambda body: chunk_of(body) is not None)
        job = make_job(server, sections(12), chunk_tokens=120, concurrency=4)
        session_id, _ = job.open_session(store)
        run = fast(job.make_run(store=store, session_id=session_id))
        task = asyncio.ensure_future(run.run())
        assert await hold.wait_arrived_async(4, timeout=DEADLINE), hold.arrived
        limit(store)
        hold.release()
        await asyncio.wait_for(task, DEADLINE)
        await run.aclose()
    return run, server, store


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        # A full disk, simulated: no page may be added to the database.
        (lambda s: s.db.execute(f"PRAGMA max_page_count = {s.db.execute('PRAGMA page_count').fetchone()[0]}"),
         "database or disk is full"),
        (lambda s: s.db.execute("PRAGMA query_only = ON"), "readonly"),  # a read-only data directory, simulated
    ],
)  # fmt: skip
async def test_a_store_write_error_halts_sending_and_keeps_the_cards_in_flight(tmp_path: Path, limit, message) -> None:
    run, server, _ = await _halted_run(tmp_path, limit)
    assert run.halted and message in run.halted
    # Every call that was sent finished and kept its cards; after the halt nothing more was sent. (A simulated
    # full database may still take a commit or two that fits in its free pages: the tmpfs test counts exactly.)
    done = [s for s in run.status.values() if s.state is ChunkState.DONE]
    assert len(server.chunk_requests()) == len(done) >= 4
    assert len(run.cards()) == sum(len(s.cards) for s in done) > 0
    unsent = [s for s in run.status.values() if s.state is not ChunkState.DONE]
    assert unsent and all(s.reason.startswith("not sent: ") and "session store" in s.reason for s in unsent)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


def test_a_full_disk_mid_run_writes_the_deck_and_exits_1(tmp_path: Path) -> None:
    """A real full disk (a small tmpfs) under the real CLI; the simulated one above covers machines without
    mount rights."""
    data = tmp_path / "data"
    if not _mount_tmpfs(data, "4m"):
        pytest.skip("cannot mount a tmpfs here; test_a_store_write_error_halts_sending… simulates the full disk")
    try:
        (tmp_path / "n.md").write_text(sections(12))
        with FakeOpenAI() as server:
            hold = server.hold(lambda body: chunk_of(body) is not None)
            proc = subprocess.Popen(
                [sys.executable, "-m", "mkflash_tui", "generate", "n.md", "--base-url", server.base_url, "--api-key",
                 "k", "--chunk-tokens", "120", "--concurrency", "4", "--yes", "--json"],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "MKFLASH_DATA_DIR": str(data)},
            )  # fmt: skip
            assert hold.wait_arrived(4, timeout=DEADLINE), hold.arrived
            with open(data / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
                while True:
                    filler.write(b"\0" * 65536)
            hold.release()
            out, err = proc.communicate(timeout=DEADLINE)
        report = json.loads(out)
        assert proc.returncode == 1, err
        assert err.count("database or disk is full") == 1 and "Traceback" not in err
        assert "the deck holds the cards made until then" in err
        assert len(server.chunk_requests()) == 4 and report["cards"] > 0 and report["halted"]
        with zipfile.ZipFile(tmp_path / "n.apkg") as deck:
            assert "collection.anki2" in deck.namelist()
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)


def test_opening_a_store_on_a_full_disk_is_one_sentence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    if not _mount_tmpfs(data, "64k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(data / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(b"\0" * 4096)
        (tmp_path / "n.md").write_text(sections(2))
        proc = run_cli("generate", "n.md", cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(data)})
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "session store" in proc.stderr and "nothing was sent" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)


def test_store_errors_are_typed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.db.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError, match=r"session store at .* is read-only"):
        store.chunk_state("s", "c", 0, "done")


# ---------------------------------------------------------------- export


def test_an_export_leaves_nothing_in_the_temp_directory(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    (tmp_path / "n.md").write_text(sections(3))
    assert run_cli("generate", "n.md", "--dry-run", cwd=tmp_path, env=env).returncode == 0
    before = set(temp.iterdir())  # tiktoken's own cache lives here; an export must add nothing
    proc = run_cli("generate", "n.md", "-o", "n.apkg", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and (tmp_path / "n.apkg").exists(), proc.stderr
    assert set(temp.iterdir()) == before
    failing = run_cli("generate", "n.md", "-o", "missing/n.apkg", cwd=tmp_path, env=env)
    assert failing.returncode == 2 and set(temp.iterdir()) == before


# ---------------------------------------------------------------- the app


async def test_the_app_shows_a_readable_reason_for_a_web_page_answer(tmp_path: Path) -> None:
    from test_tui import notes_file, notifications, online
    from tui_support import started, wait_for

    from mkflash_tui.tui.app import make_app

    fault = Fault(body=NGINX, content_type="text/html")
    with FakeOpenAI(fault_for=lambda n, b: fault if "The part 1 fact" in (chunk_of(b) or "") else None) as server:
        app = make_app(online(server, notes_file(tmp_path, 3)))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, timeout=DEADLINE, what="the run")
            run = screen.run
            [failed] = run.failures()
            assert "answered with an HTML page, not a chat completion" in failed.reason
            assert "internal error" not in failed.reason
            await wait_for(pilot, lambda: any("HTML page" in n for n in notifications(app)), what="the notice")
            assert not any("nternal error" in n for n in notifications(app))
            assert run.counts()["done"] == 2


async def test_a_stream_request_answered_with_one_json_body_still_makes_cards() -> None:
    """Some servers ignore ``stream`` and answer with a plain completion: that is a good answer, not a fault."""
    completion = {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                     "content": json.dumps({"cards": [{"type": "basic", "front": "What is magma?",
                                                       "back": "Molten rock.", "quote": ""}]})}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }  # fmt: skip
    fault = Fault(body=json.dumps(completion).encode(), content_type="application/json")
    with FakeOpenAI(fault_for=lambda n, b: fault if chunk_of(b) else None) as server:
        job = make_job(server, sections(1), chunk_tokens=200)
        run = fast(job.make_run(stream=True))
        await run_to_end(run)
    [status] = run.status.values()
    assert status.state is ChunkState.DONE and [c.front for c in status.cards] == ["What is magma?"]
    assert server.chunk_requests()[0]["stream"] is True and status.usage.completion_tokens == 5
