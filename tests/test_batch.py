"""Batch mode (``--batch``): the real CLI and the real SDK against the loopback server's Files and Batch APIs
(``fake_batches``): the whole life cycle, never paying twice, and cards identical to a live run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli, sections
from fake_batches import BatchEngine
from fake_openai import FakeOpenAI, chunk_of

from mkflash_tui.core.batch import BatchLimits, batch_line, split_lines

TEXT = sections(6)


def args(server: FakeOpenAI, data: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "notes.md", "-o", str(out), "--force", "--json", "--chunk-tokens", "200", "--base-url",
            server.base_url, "--api-key", "sk-batch-test", "--model", "test-model", "--data-dir", str(data),
            *extra]  # fmt: skip


def batch(server: FakeOpenAI, tmp_path: Path, *extra: str, data: str = "data") -> subprocess.CompletedProcess[str]:
    return run_cli(*args(server, tmp_path / data, tmp_path / "batch.apkg", "--batch", "--batch-poll", "0.05",
                         *extra), cwd=tmp_path)  # fmt: skip


def popen(server: FakeOpenAI, tmp_path: Path, *extra: str, python: list[str] | None = None) -> subprocess.Popen:
    command = python or [sys.executable, "-m", "mkflash_tui"]
    full = [*command, *args(server, tmp_path / "data", tmp_path / "batch.apkg", "--batch", "--batch-poll", "0.05",
                            *extra)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    return subprocess.Popen(full, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def dying_at_store_write(body: str) -> list[str]:
    """A ``python -c`` command line running the CLI whose store's ``update_batch(self, name, **f)`` does ``body``
    (``real`` is the store's own): a process that dies for real (``os._exit``) at one write."""
    code = ("import os, sys; from mkflash_tui.core.store import Store; real = Store.update_batch\n"
            f"def update(self, name, **f):\n    {body}\n"
            "Store.update_batch = update\n"
            "from mkflash_tui.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    return [sys.executable, "-c", code]


def polls(engine: BatchEngine) -> int:
    """How often a batch was asked about (retrieved or cancelled)."""
    return sum(1 for _, path in engine.log if path.startswith("/v1/batches/"))


def chunk_calls(server: FakeOpenAI) -> list[str]:
    return [chunk_of(b) for b in server.requests if chunk_of(b) is not None]


def guids(tmp_path: Path, deck: Path, name: str) -> dict[str, dict[str, str]]:
    anki = AnkiCollection(tmp_path / name)
    try:
        anki.import_apkg(deck)
        return {n.guid: n.fields for n in anki.notes()}
    finally:
        anki.close()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    (tmp_path / "notes.md").write_text(TEXT)
    return tmp_path / "notes.md"


def test_a_batch_run_makes_the_cards_a_live_run_makes(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.3, seed=3)
    with FakeOpenAI(batches=engine) as server:
        live = run_cli(*args(server, tmp_path / "live", tmp_path / "live.apkg"), cwd=tmp_path)
        assert live.returncode == 0, live.stderr
        live_bodies = [b for b in server.requests if chunk_of(b) is not None]
        calls = len(server.requests)
        proc = batch(server, tmp_path, "--concurrency", "1")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        # Only the summary went live: every chunk was a line of one batch, whatever the concurrency.
        assert len(server.requests) == calls + 1
        [made] = engine.created()
        assert made.status == "completed" and len(made.lines) == report["chunks"] == len(live_bodies) == 6
        assert made.metadata["mkflash_job"] == report["session"]
        assert [line["custom_id"] for line in made.lines] == [f"{report['session']}:{c}"
                                                              for c in _chunk_ids(tmp_path, report)]  # fmt: skip
        # A line is the live request as sent, without streaming (the fake answers by the request's content).
        assert [line["body"] for line in made.lines] == live_bodies
        output = engine.contents[made.output_file_id].decode().splitlines()
        order = [json.loads(line)["custom_id"] for line in output]
        assert order != [line["custom_id"] for line in made.lines]  # the output came back shuffled
    assert report["batches"]["submitted"] == 1 and report["batches"]["still_running"] == []
    assert report["batches"]["prompt_tokens"] > 0
    assert "half the price" in proc.stderr and "completed, 6 of 6 done" in proc.stderr
    # Same cards, same GUIDs, read back with Anki's own library.
    assert guids(tmp_path, tmp_path / "batch.apkg", "a") == guids(tmp_path, tmp_path / "live.apkg", "b")
    assert "sk-batch-test" not in proc.stdout + proc.stderr


def _chunk_ids(tmp_path: Path, report: dict) -> list[str]:
    from mkflash_tui.core.store import open_store

    store = open_store(tmp_path / "data")
    try:
        return [c.id for c in sorted(store.stored_chunks(report["session"]), key=lambda c: c.index)]
    finally:
        store.close()


def test_killed_while_polling_the_next_run_takes_the_batch_up(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=2.0)
    with FakeOpenAI(batches=engine) as server:
        proc = popen(server, tmp_path)
        wait_for(lambda: polls(engine) >= 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        calls = len(server.requests)
        # Run again, even without --batch: the session's batch is taken up, never paid for twice.
        again = run_cli(*args(server, tmp_path / "data", tmp_path / "batch.apkg", "--batch-poll", "0.05"),
                        cwd=tmp_path)  # fmt: skip
        assert again.returncode == 0, again.stderr
        report = json.loads(again.stdout)
        assert len(engine.created()) == 1  # the server's log: one batch, never a second
        assert len(server.requests) == calls  # the summary was kept; nothing went live
        assert "6 requests of this session are in batches at the provider" in again.stderr
    assert report["batches"] == {**report["batches"], "submitted": 0, "taken_up": 1}
    assert report["cards"] > 0 and report["failed_chunks"] == 0


def test_death_between_creating_a_batch_and_writing_it_down_is_adopted(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.3)
    dies = [sys.executable, "-c", "import os, sys; import mkflash_tui.core.batch as b; "
            "b.BatchDesk.record_batch_id = lambda *a: os._exit(9); "
            "from mkflash_tui.cli import main; sys.exit(main(sys.argv[1:]))"]  # fmt: skip
    with FakeOpenAI(batches=engine) as server:
        proc = popen(server, tmp_path, python=dies)
        proc.communicate(timeout=60)
        assert proc.returncode == 9 and len(engine.created()) == 1
        # Other jobs' batches, newer than ours, on the same account: listed first, and never taken.
        from openai import OpenAI

        client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        for n in range(3):
            upload = client.files.create(file=(f"other-{n}.jsonl", batch_line(f"x:{n}", {"model": "m"}),
                                               "application/jsonl"), purpose="batch")  # fmt: skip
            client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"mkflash_job": f"another-{n}"})  # fmt: skip
        client.close()
        again = batch(server, tmp_path)
        assert again.returncode == 0, again.stderr
        report = json.loads(again.stdout)
        assert len(engine.created()) == 4  # ours found by its metadata and taken up, not made again
        assert ("GET", "/v1/batches") in engine.log
        assert chunk_calls(server) == []
    assert report["batches"]["taken_up"] == 1 and report["batches"]["submitted"] == 0
    assert report["cards"] > 0


def test_an_upload_never_written_down_is_deleted_and_sent_anew(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.2)
    dies = dying_at_store_write("os._exit(9) if 'file_id' in f else real(self, name, **f)")
    with FakeOpenAI(batches=engine) as server:
        proc = popen(server, tmp_path, python=dies)
        proc.communicate(timeout=60)
        assert proc.returncode == 9 and not engine.created() and len(engine.files) == 1
        [orphan] = engine.files
        again = batch(server, tmp_path)
        assert again.returncode == 0, again.stderr
    assert orphan in engine.deleted and len(engine.created()) == 1


def test_error_file_lines_and_expired_requests_go_live(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.2, expire=0.5,
                         fail=lambda body: (400, "This model cannot do that") if "part 0 fact 0 " in json.dumps(body)
                         else None)  # fmt: skip
    with FakeOpenAI(batches=engine) as server:
        proc = batch(server, tmp_path)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        [made] = engine.created()
        assert made.status == "expired"
        live = chunk_calls(server)
    # Half the lines expired unanswered; one more was answered with an error: those four went live, once each.
    assert len(live) == 4 and len(set(live)) == 4
    assert any("part 0 fact 0 " in text for text in live)
    assert report["failed_chunks"] == 0 and report["chunks_with_cards"] == 6
    assert "before the completion window expired.); sending it live" in proc.stderr
    assert "(400: This model cannot do that); sending it live" in proc.stderr


def test_lines_are_split_at_the_token_limit(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.1)
    with FakeOpenAI(batches=engine) as server:
        proc = batch(server, tmp_path, "--batch-token-limit", "2500")
        assert proc.returncode == 0, proc.stderr
        made = engine.created()
    assert len(made) >= 3 and all(b.status == "completed" for b in made)
    assert sum(len(b.lines) for b in made) == 6


def test_a_batch_refused_for_the_enqueued_token_limit_is_split_and_sent_again(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.1, token_limit=4000)  # a limit the server reports to no endpoint
    with FakeOpenAI(batches=engine) as server:
        proc = batch(server, tmp_path)
        assert proc.returncode == 0, proc.stderr
        made = engine.created()
        report = json.loads(proc.stdout)
    assert made[0].status == "failed" and made[0].errors[0]["code"] == "token_limit_exceeded"
    assert "Enqueued token limit reached" in proc.stderr and "again in two batches" in proc.stderr
    assert sum(len(b.lines) for b in made if b.status == "completed") + len(chunk_calls(server)) == 6
    assert report["chunks_with_cards"] == 6


def test_split_lines_keeps_every_file_within_the_limits() -> None:
    lines = [(f"s:{i}", batch_line(f"s:{i}", {"model": "m", "messages": [{"content": "x" * (50 * i)}]}), 10 * i)
             for i in range(1, 21)]  # fmt: skip
    for limits in (BatchLimits(requests=3), BatchLimits(bytes=2_000), BatchLimits(tokens=120)):
        files = split_lines(lines, limits)
        assert [i for group in files for i in group] == list(range(20))  # every line once, in order
        for group in files:
            assert len(group) <= limits.requests
            assert len(group) == 1 or sum(len(lines[i][1]) for i in group) <= limits.bytes
            assert len(group) == 1 or limits.tokens is None or sum(lines[i][2] for i in group) <= limits.tokens


def test_batch_against_a_server_without_batch_endpoints_says_so(tmp_path: Path, notes: Path) -> None:
    with FakeOpenAI() as server:
        proc = batch(server, tmp_path)
        assert server.requests == []
    assert proc.returncode == 2
    assert "has no batch engine" in proc.stderr and "run without --batch" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 2


def test_batch_is_refused_for_a_provider_without_a_batch_engine(tmp_path: Path, notes: Path) -> None:
    proc = run_cli("generate", "notes.md", "--batch", cwd=tmp_path)
    assert proc.returncode == 2 and "offline generator answers at once" in proc.stderr
    proc = run_cli("generate", "notes.md", "--provider", "ollama", "--batch", cwd=tmp_path)
    assert proc.returncode == 2 and "offered for openai and groq" in proc.stderr


def test_dry_run_and_prices_compare_live_and_batch(tmp_path: Path, notes: Path) -> None:
    proc = run_cli("generate", "notes.md", "--dry-run", "--json", "--api-key", "sk-x", "--model", "gpt-4o-mini",
                   "--batch", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["batch"] is True
    assert 0.5 * report["estimated_cost_usd"] < report["estimated_batch_cost_usd"] < report["estimated_cost_usd"]
    text = run_cli("generate", "notes.md", "--dry-run", "--api-key", "sk-x", "--model", "gpt-4o-mini", "--batch",
                   cwd=tmp_path).stdout  # fmt: skip
    assert "through the batch engine (live: $" in text


def test_ctrl_c_detaches_sessions_lists_the_batch_and_cancel_cancels_it(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=60.0)
    with FakeOpenAI(batches=engine) as server:
        proc = popen(server, tmp_path)
        wait_for(lambda: polls(engine) >= 1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "detached: 1 batch (6 requests) still run" in err and "sessions cancel" in err
        session = json.loads(out)["session"]
        listed = run_cli("sessions", "--data-dir", str(tmp_path / "data"))
        assert f"batch {engine.created()[0].id}: in progress" in listed.stdout
        cancelled = run_cli("sessions", "cancel", session, "--data-dir", str(tmp_path / "data"),
                            env={"OPENAI_API_KEY": "sk-batch-test"})  # fmt: skip
        assert cancelled.returncode == 0, cancelled.stderr
        assert "cancelling" in cancelled.stdout
        assert engine.created()[0].status == "cancelling"
        again = batch(server, tmp_path)  # the cancelled batch answered nothing: its requests go live
        assert again.returncode == 0, again.stderr
        assert engine.created()[0].status == "cancelled" and len(engine.created()) == 1
        assert len(chunk_calls(server)) == 6
    assert "batch" not in run_cli("sessions", "--data-dir", str(tmp_path / "data")).stdout.split("TITLE", 1)[1]


def test_a_shelf_sends_every_documents_chunks_in_one_batch(tmp_path: Path) -> None:
    (tmp_path / "course").mkdir()
    topics = {"a.md": ("comet", "returns every", "years"), "b.md": ("river", "floods each", "springs"),
              "c.txt": ("violin", "needs about", "strings")}  # fmt: skip
    for name, (thing, verb, unit) in topics.items():
        body = "\n\n".join(f"## {thing.title()} {i}\n\n" + " ".join(
            f"The {thing} named {thing[0].upper()}{i}-{j} {verb} {i * 7 + j * 3 + 2} {unit} in a row."
            for j in range(6)) for i in range(2))  # fmt: skip
        (tmp_path / "course" / name).write_text(f"# About {thing}s\n\n{body}\n")
    engine = BatchEngine(processing=0.2)
    with FakeOpenAI(batches=engine) as server:
        proc = run_cli("generate", "course", "-o", "course.apkg", "--json", "--chunk-tokens", "200", "--base-url",
                       server.base_url, "--api-key", "k", "--model", "test-model", "--yes", "--batch",
                       "--batch-poll", "0.05", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        [made] = engine.created()
        assert chunk_calls(server) == []  # the three summaries went live, every chunk in the batch
    sessions = {d["session"] for d in report["documents"]}
    assert {line["custom_id"].split(":")[0] for line in made.lines} == sessions and len(sessions) == 3
    assert len(made.lines) == report["chunks"] and made.metadata["mkflash_job"] == report["job"]
    assert report["batches"]["submitted"] == 1
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(tmp_path / "course.apkg")
        assert len({d for n in anki.notes() for d in n.decks}) == 3  # a subdeck per document
    finally:
        anki.close()


def test_answers_kept_but_not_yet_carded_are_used_by_the_next_run(tmp_path: Path, notes: Path) -> None:
    engine = BatchEngine(processing=0.2)
    dies = dying_at_store_write("real(self, name, **f)\n    os._exit(9) if 'output' in f else None")
    with FakeOpenAI(batches=engine) as server:
        proc = popen(server, tmp_path, python=dies)
        proc.communicate(timeout=60)
        assert proc.returncode == 9 and engine.created()[0].status == "completed"
        calls = len(engine.log)
        again = run_cli(*args(server, tmp_path / "data", tmp_path / "batch.apkg"), cwd=tmp_path)  # no --batch
        assert again.returncode == 0, again.stderr
        assert chunk_calls(server) == [] and len(engine.created()) == 1
        # The answers were in the store: no poll, no file read (only the check that the engine is there).
        assert engine.log[calls:] == [("GET", "/v1/batches")]
    assert json.loads(again.stdout)["chunks_with_cards"] == 6
