"""Guards for promises no test held, and the faults a hostile tester found (issue 36). Each test here failed on a
bug planted on purpose (the note of that issue says which)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, Fault, chunk_of

from mkflash_tui.config import Settings
from mkflash_tui.core import quality
from mkflash_tui.core.models import Card, CardKind, ChunkRetrying, ChunkState, make_card_id
from mkflash_tui.core.sources import parse_bytes
from mkflash_tui.job import prepare


def make_job(server: FakeOpenAI, text: str, **overrides):
    settings = Settings(provider="openai", model="test-model", base_url=server.base_url, api_key="sk-test",
                        chunk_tokens=120, overlap_tokens=0, concurrency=8)  # fmt: skip
    for key, value in overrides.items():
        setattr(settings, key, value)
    return prepare(settings, parse_bytes(text.encode(), name="t.md", stem="t", suffix=".md"))


class RecordingSleep:
    """A sleep that only records: the retry layer's waits, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


# ---------------------------------------------------------------- near-duplicates across chunks


def card(chunk: int, front: str, back: str) -> Card:
    chunk_id = f"c{chunk}.0"
    return Card(make_card_id(chunk_id, 0, front, back), chunk_id, chunk, 0, front, back, "", CardKind.BASIC)


def test_the_gate_drops_a_near_duplicate_from_a_later_chunk() -> None:
    first, second = card(0, "What is a moraine?", "Debris left by a glacier"), card(3, "What is a Moraine ?", "Till")
    kept, report = quality.gate([first, second], set())
    assert [c.id for c in kept] == [first.id] and report["dropped"] == {"duplicate": 1}


def test_near_duplicates_in_different_chunks_are_one_note_in_the_deck(tmp_path: Path) -> None:
    def cards(body):
        text = chunk_of(body) or ""
        if "part 0 " in text:
            return {"cards": [{"type": "basic", "front": "What is a moraine?", "back": "Debris left by a glacier",
                               "quote": ""}]}  # fmt: skip
        if "part 2 " in text:
            return {"cards": [{"type": "basic", "front": "What is a Moraine ?", "back": "Till", "quote": ""}]}
        return {"cards": []}

    (tmp_path / "n.md").write_text(sections(3))
    with FakeOpenAI(cards=cards) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                       "--yes", "--json", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["left_out"]["repeats"] >= 1
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(tmp_path / "n.apkg")
        fronts = [n.fields["Front"] for n in anki.notes()]
    finally:
        anki.close()
    assert fronts == ["What is a moraine?"]


# ---------------------------------------------------------------- the retry layer


async def test_the_total_wait_is_capped() -> None:
    limited = Fault(status=429, message="Rate limit reached", headers={"retry-after": "100"})
    with FakeOpenAI(fault_for=lambda n, body: limited if chunk_of(body) else None) as server:
        job = make_job(server, sections(1))
        sleep = RecordingSleep()
        run = job.make_run(stream=False, sleep=sleep)
        await run.run()
        await run.aclose()
    [status] = run.status.values()
    assert status.state is ChunkState.FAILED and "429" in status.reason
    assert sleep.waits and sum(sleep.waits) <= run.settings.max_total_wait
    assert all(wait >= 100 for wait in sleep.waits)  # the server's wait was honoured while it fit the cap


async def test_a_retry_after_of_zero_still_backs_off_and_breaks_the_lockstep() -> None:
    zero = Fault(status=429, message="Rate limit reached", headers={"retry-after": "0"})
    with FakeOpenAI(fault_for=lambda n, body: zero if chunk_of(body) else None) as server:
        job = make_job(server, sections(2))
        sleep = RecordingSleep()
        run = job.make_run(stream=False, sleep=sleep)
        run.settings.max_rate_limited = 6
        await run.run()
        await run.aclose()
    assert sleep.waits and min(sleep.waits) >= run.settings.backoff_base / 2  # no immediate retries
    per_call = len(sleep.waits) // len(job.chunks)
    # The waits grow with the attempts (half fixed, half jittered), and two calls do not wait alike.
    assert max(sleep.waits) >= 4 * min(sleep.waits)
    assert len({round(w, 6) for w in sleep.waits}) == len(sleep.waits) and per_call >= 3


async def test_the_servers_retry_after_is_what_is_waited_not_a_fixed_backoff() -> None:
    faults = {1: Fault(status=429, headers={"retry-after-ms": "370"})}
    with FakeOpenAI(faults=faults) as server:
        job = make_job(server, sections(1), concurrency=1)
        sleep = RecordingSleep()
        run = job.make_run(stream=False, sleep=sleep)
        events = []
        run.subscribe(events.append)
        await run.run()
        await run.aclose()
    [retry] = [e for e in events if isinstance(e, ChunkRetrying)]
    assert 0.37 <= retry.wait <= 0.37 + 0.137 and sleep.waits == [retry.wait]


async def test_a_call_waiting_to_retry_gives_its_slot_to_another() -> None:
    """At concurrency 1, chunk 0's 503 makes it wait a second; chunk 1's request reaches the server meanwhile."""
    first = {"done": False}

    def fault_for(number, body):
        text = chunk_of(body) or ""
        if "part 0 " in text and not first["done"]:
            first["done"] = True
            return Fault(status=503, headers={"retry-after": "1"})
        return None

    with FakeOpenAI(fault_for=fault_for, latency=lambda body: 0.05) as server:
        job = make_job(server, sections(2), concurrency=1)
        run = job.make_run(stream=False)
        await run.run()
        await run.aclose()
    assert run.counts()["done"] == len(job.chunks)
    arrivals = [(at, chunk_of(b) or "") for at, b in zip(server.admitted_at, server.requests, strict=True)]
    part0 = [at for at, text in arrivals if "part 0 " in text]
    others = [at for at, text in arrivals if text and "part 0 " not in text]
    assert len(part0) == 2 and part0[1] - part0[0] >= 1.0  # it waited the server's second
    # Another chunk's request reached the server while it waited, not after its wait.
    assert others and min(others) < part0[0] + 0.5


# ---------------------------------------------------------------- keys echoed back


@pytest.mark.parametrize("key", ["gsk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "my-own-very-secret-token-42"],
                         ids=["groq", "arbitrary"])  # fmt: skip
def test_an_echoed_key_of_any_shape_reaches_nothing(tmp_path: Path, key: str) -> None:
    echo = Fault(status=401, message=f"Incorrect API key provided: {key}. Also tried key ending {key[-9:]} and "
                 f"prefix {key[:12]}.")  # fmt: skip
    (tmp_path / "n.md").write_text(sections(2))
    with FakeOpenAI(fault_for=lambda n, body: echo) as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", key, "--yes", "--json",
                       cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert proc.returncode == 3
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("mkflash.sqlite3*"))
    for piece in (key, key[-9:], key[:12]):
        assert piece not in proc.stderr and piece not in proc.stdout, piece
        assert piece.encode() not in stored
    assert "[redacted key]" in json.loads(proc.stdout)["fatal"]


# ---------------------------------------------------------------- the store


def _damaged_store(folder: Path) -> Path:
    assert run_cli("generate", "--demo", "-o", str(folder.parent / "d.apkg"),
                   env={"MKFLASH_DATA_DIR": str(folder)}).returncode == 0  # fmt: skip
    path = folder / "mkflash.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 2, len(data), page * 3):  # data pages overwritten, the header intact
        data[offset : offset + 512] = b"\xa5" * 512
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_store_is_one_sentence_and_never_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    path = _damaged_store(folder)
    (tmp_path / "n.md").write_text(sections(2))
    proc = run_cli("generate", "n.md", "--json", cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(folder)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"the session store at {path} is damaged" in proc.stderr and "mv " in proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 2
    listing = run_cli("sessions", env={"MKFLASH_DATA_DIR": str(folder)})
    assert listing.returncode == 2 and "is damaged" in listing.stderr and "Traceback" not in listing.stderr


async def test_the_app_offers_to_move_a_damaged_store_aside_and_goes_on(tmp_path: Path, monkeypatch) -> None:
    from tui_support import app_settings, wait_for

    from mkflash_tui.tui.app import make_app
    from mkflash_tui.tui.screens.dialogs import BrokenStoreDialog

    folder = tmp_path / "data"
    path = _damaged_store(folder)
    monkeypatch.setenv("MKFLASH_DATA_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.md").write_text(sections(2))
    app = make_app(app_settings(str(tmp_path / "n.md")), pace=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, BrokenStoreDialog), what="the question", timeout=20)
        await pilot.press("m")
        await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.finished, what="the run")
        assert app.store is not None and app.run_screen.run.session_id
        await pilot.press("q")
    assert path.with_name("mkflash.sqlite3.broken").exists() and path.exists()


def test_a_shared_data_folder_keeps_its_permissions(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    proc = run_cli("generate", "--demo", "-o", str(tmp_path / "d.apkg"), env={"MKFLASH_DATA_DIR": str(shared)})
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "mkflash.sqlite3").stat().st_mode) == 0o600
    made = tmp_path / "made"
    assert run_cli("generate", "--demo", "-o", str(tmp_path / "e.apkg"),
                   env={"MKFLASH_DATA_DIR": str(made)}).returncode == 0  # fmt: skip
    assert stat.S_IMODE(made.stat().st_mode) == 0o700  # a folder it made is private


def test_a_data_directory_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    proc = run_cli("generate", "--demo", "--data-dir", str(tmp_path / "afile"), cwd=tmp_path)
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr and "file exists" not in proc.stderr


def test_a_locked_store_says_it_waits(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    folder = tmp_path / "data"
    assert run_cli("generate", "--demo", "-o", str(tmp_path / "d.apkg"),
                   env={"MKFLASH_DATA_DIR": str(folder)}).returncode == 0  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, time, sys; db = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); db.execute('BEGIN IMMEDIATE'); print('held', flush=True); "
                               "time.sleep(3); db.execute('COMMIT')", str(folder / "mkflash.sqlite3")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    (tmp_path / "n.md").write_text(sections(2))
    proc = run_cli("generate", "n.md", cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(folder)})
    holder.wait()
    assert proc.returncode == 0, proc.stderr
    assert "is in use by another mkflash-tui; waiting up to 30 s" in proc.stderr
    assert time.monotonic() - started >= 1


# ---------------------------------------------------------------- inputs and messages


def test_a_one_line_input_costs_memory_in_proportion_to_its_size() -> None:
    import tracemalloc

    from mkflash_tui.core.providers.offline import OfflineProvider

    sentence = "The glacier moves slowly down the valley and carries rock debris. "
    one_line, paragraphs = [sentence * 8000], [sentence * 5] * 1600  # 530 KB each
    peaks = []
    for text in (one_line, paragraphs):
        tracemalloc.start()
        OfflineProvider(text)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] <= 2 * peaks[1] + 2**20, peaks  # was 40 times the text's size for one line


def test_reading_a_small_file_does_not_set_aside_the_whole_limit(tmp_path: Path) -> None:
    import tracemalloc

    from mkflash_tui.core.sources import read_source

    (tmp_path / "n.md").write_text(sections(3))
    tracemalloc.start()
    read_source(str(tmp_path / "n.md"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20  # read(200 MB + 1) set aside 200 MB for a file of any size


def test_a_resumed_crash_of_an_unchanged_file_says_what_is_left(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "n.md").write_text(sections(8))
    with FakeOpenAI() as server:
        late = server.hold(lambda body: chunk_of(body) is not None and "part 0 " not in chunk_of(body))
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        args = [sys.executable, "-m", "mkflash_tui", "generate", "n.md", "--base-url", server.base_url, "--api-key",
                "k", "--chunk-tokens", "120", "--yes", "--json"]  # fmt: skip
        proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert late.wait_arrived(5, timeout=30)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        late.release()
        again = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "120",
                        "--yes", "--json", cwd=tmp_path)  # fmt: skip
    report = json.loads(again.stdout)
    changes = report["changes"]
    assert changes["changed"] == 0 and changes["pending"] >= 1 and changes["summary_kept"]
    assert "0 new or changed" in again.stderr and "not yet answered" in again.stderr
    assert not [b for b in server.requests[-changes["pending"] :] if "<<<DOCUMENT" in json.dumps(b)]


def test_repeats_within_a_run_are_not_said_to_come_from_earlier_runs(tmp_path: Path) -> None:
    same = "## Notice\n\nThis boilerplate paragraph repeats on every page of the manual, word for word.\n\n"
    (tmp_path / "n.md").write_text("# Manual\n\n" + same * 6)
    with FakeOpenAI() as server:
        proc = run_cli("generate", "n.md", "--base-url", server.base_url, "--api-key", "k", "--chunk-tokens", "64",
                       "--overlap-tokens", "0", "--yes", "--json", cwd=tmp_path)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["from_cache"] == 0 and report["repeats"] >= 1
    assert "from earlier runs" not in proc.stderr and "repeated the text of another chunk" in proc.stderr


def test_a_redirect_loop_is_one_sentence(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Loop(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Loop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = run_cli("generate", f"http://127.0.0.1:{server.server_port}/page", cwd=tmp_path)
    finally:
        server.shutdown()
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "redirects in a loop" in line


def test_the_demo_pushed_to_an_absent_anki_does_not_promise_a_session(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = run_cli("generate", "--demo", "--to-anki", f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert proc.returncode == 3
    assert "The demo makes its cards anew on every run" in proc.stderr
    assert "kept in this session" not in proc.stderr
