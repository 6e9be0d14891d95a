"""The Run against a real loopback chat-completions server through the real AsyncOpenAI client."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import sections
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary

from mkflash_tui.config import Settings
from mkflash_tui.core.models import (
    ChunkFailed,
    ChunkFinished,
    ChunkQueued,
    ChunkRetrying,
    ChunkStarted,
    ChunkState,
    RunFinished,
    SummaryFinished,
    SummaryStarted,
)
from mkflash_tui.core.prompts import CHUNK_CLOSE, CHUNK_OPEN
from mkflash_tui.core.sources import parse_bytes
from mkflash_tui.job import prepare


def make_job(server: FakeOpenAI, text: str, **overrides):
    settings = Settings(
        provider="openai", model="test-model", base_url=server.base_url, api_key="sk-test", chunk_tokens=200,
        overlap_tokens=0, concurrency=8,
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(settings, key, value)
    document = parse_bytes(text.encode(), name="t.md", stem="t", suffix=".md")
    return prepare(settings, document)


def fast(run):
    """No real waiting in retry backoff: tests assert on what happens, not on time."""
    run.settings.backoff_base = 0.001
    run.settings.backoff_cap = 0.002
    return run


async def test_summary_first_then_every_chunk_with_summary_inside_delimiters(server: FakeOpenAI) -> None:
    job = make_job(server, sections(6))
    run = job.make_run()
    await run.run()
    await run.aclose()
    assert len(job.chunks) >= 5
    assert is_summary(server.requests[0])
    chunk_bodies = server.chunk_requests()
    assert len(chunk_bodies) == len(job.chunks)
    sent_chunks = set()
    for body in chunk_bodies:
        user = body["messages"][-1]["content"]
        assert "A test summary of the document." in user
        assert "Document title: A document about things" in user
        assert user.index(CHUNK_OPEN) < user.index(CHUNK_CLOSE)
        sent_chunks.add(chunk_of(body))
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["schema"]["required"] == ["cards"]
        assert body["model"] == "test-model"
    assert sent_chunks == {c.text for c in job.chunks}
    assert run.counts()["done"] == len(job.chunks)
    # Results keep input order, whatever order the calls finished in.
    indexes = [c.chunk_index for c in run.cards()]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(job.chunks)


async def test_peak_in_flight_equals_concurrency_counted_by_server(server: FakeOpenAI) -> None:
    job = make_job(server, sections(12), concurrency=5)
    hold = server.hold(lambda body: chunk_of(body) is not None)
    run = job.make_run()
    task = asyncio.create_task(run.run())
    assert await hold.wait_arrived_async(5)
    # The moment a sixth request could have been sent has passed once every other chunk waits for a slot.
    others = len(job.chunks) - 5
    for _ in range(500):
        if run.limiter.waiting == others:
            break
        await asyncio.sleep(0.01)
    assert run.limiter.waiting == others and hold.arrived == 5
    assert run.limiter.in_use == 5
    hold.release()
    await task
    await run.aclose()
    assert server.peak_in_flight == 5
    assert len(server.chunk_requests()) == len(job.chunks) == 12


async def test_all_chunks_at_once_when_concurrency_exceeds_chunks(server: FakeOpenAI) -> None:
    job = make_job(server, sections(7), concurrency=64)
    hold = server.hold(lambda body: chunk_of(body) is not None)
    run = job.make_run()
    task = asyncio.create_task(run.run())
    assert await hold.wait_arrived_async(len(job.chunks))
    assert server.peak_in_flight == len(job.chunks) == min(64, len(job.chunks))
    hold.release()
    await task
    await run.aclose()


async def test_exactly_one_request_per_attempt_and_retries_on_429_and_500() -> None:
    faults = {1: Fault(status=429, headers={"retry-after-ms": "10"}), 2: Fault(status=500), 3: Fault(status=503)}
    with FakeOpenAI(faults=faults) as server:
        job = make_job(server, sections(3), concurrency=1)
        run = fast(job.make_run())
        events = []
        run.subscribe(events.append)
        await run.run()
        await run.aclose()
    starts = [e for e in events if isinstance(e, ChunkStarted)]
    retries = [e for e in events if isinstance(e, ChunkRetrying)]
    assert len(server.requests) == 1 + len(starts)  # summary + one request per attempt
    assert len(retries) == 3 and run.stats.retries == 3
    assert run.stats.requests == len(server.requests)
    assert run.counts()["done"] == len(job.chunks)
    # The 429's retry-after-ms (10 ms) was honoured, plus a little jitter.
    assert 0.01 <= retries[0].wait <= 0.2


async def test_failure_stays_local(server: FakeOpenAI) -> None:
    job = make_job(server, sections(6))
    bad = job.chunks[2].text
    server.fault_for = lambda n, body: Fault(status=422, message="nope") if chunk_of(body) == bad else None
    run = job.make_run()
    await run.run()
    await run.aclose()
    states = [run.status[c.id].state for c in job.chunks]
    assert states[2] == ChunkState.FAILED
    assert all(s == ChunkState.DONE for i, s in enumerate(states) if i != 2)
    assert "422" in run.status[job.chunks[2].id].reason
    assert all(c.chunk_index != 2 for c in run.cards())
    assert sum(1 for b in server.chunk_requests() if chunk_of(b) == bad) == 1  # 422 is never retried


async def test_unparseable_output_is_repaired_once_then_fails_with_raw_kept(server: FakeOpenAI) -> None:
    job = make_job(server, sections(3))
    bad = job.chunks[1].text
    server.fault_for = lambda n, body: Fault(content="I cannot do that, sorry.") if chunk_of(body) == bad else None
    run = job.make_run()
    await run.run()
    await run.aclose()
    status = run.status[job.chunks[1].id]
    assert status.state == ChunkState.FAILED
    assert status.raw_output == "I cannot do that, sorry."
    assert sum(1 for b in server.chunk_requests() if chunk_of(b) == bad) == 2


async def test_tolerant_parsing_of_fenced_json_with_trailing_comma(server: FakeOpenAI) -> None:
    job = make_job(server, sections(1))
    answer = 'Here you go:\n```json\n{"cards": [{"front": "Q1?", "back": "A1", "quote": "",},],}\n```\nEnjoy!'
    server.fault_for = lambda n, body: Fault(content=answer) if chunk_of(body) else None
    run = job.make_run()
    await run.run()
    await run.aclose()
    assert [(c.front, c.back) for c in run.cards()] == [("Q1?", "A1")]


async def test_cancel_stops_every_outstanding_request(server: FakeOpenAI) -> None:
    job = make_job(server, sections(10), concurrency=4)
    hold = server.hold(lambda body: chunk_of(body) is not None)
    run = job.make_run()
    task = asyncio.create_task(run.run())
    assert await hold.wait_arrived_async(4)
    run.cancel()
    await asyncio.wait_for(task, 5)
    await run.aclose()
    hold.release()
    counts = run.counts()
    assert counts["cancelled"] == len(job.chunks) and counts["failed"] == counts["done"] == 0
    assert all(s.state == ChunkState.CANCELLED for s in run.status.values())
    # Every chunk's coroutine has ended: the engine's own count says how many calls were ever made.
    assert run.stats.requests == 1 + 4 and len(server.chunk_requests()) == 4  # the summary, the 4 in flight


async def test_retry_failed_runs_only_failed_chunks(server: FakeOpenAI) -> None:
    job = make_job(server, sections(4))
    bad = job.chunks[0].text
    failing = {"on": True}
    server.fault_for = lambda n, body: (
        Fault(status=400, message="bad") if failing["on"] and chunk_of(body) == bad else None
    )
    run = job.make_run()
    await run.run()
    assert run.counts()["failed"] == 1
    failing["on"] = False
    before = len(server.chunk_requests())
    ids = run.retry_failed()
    assert ids == [job.chunks[0].id]
    await run.run(ids)
    await run.aclose()
    assert run.counts()["done"] == 4
    assert len(server.chunk_requests()) == before + 1


async def test_bad_key_stops_the_run_once(tmp_path) -> None:
    with FakeOpenAI(api_key="the-right-key") as server:
        job = make_job(server, sections(8))
        run = job.make_run()
        await run.run()
        await run.aclose()
    assert run.fatal and "API key" in run.fatal and "sk-test" not in run.fatal
    assert len(server.requests) <= 2
    assert run.counts()["done"] == 0


async def test_response_format_fallback_once_for_the_run() -> None:
    with FakeOpenAI(reject_response_format={"json_schema"}) as server:
        job = make_job(server, sections(5), concurrency=1)
        run = job.make_run()
        await run.run()
        await run.aclose()
    assert run.counts()["done"] == len(job.chunks)
    formats = [(b.get("response_format") or {}).get("type") for b in server.requests]
    # The first request is refused; every later one uses JSON mode.
    assert formats[0] == "json_schema"
    assert formats.count("json_schema") == 1
    assert set(formats[1:]) == {"json_object"}
    assert "JSON" in server.requests[-1]["messages"][0]["content"]


async def test_events_in_order_with_injected_clock(server: FakeOpenAI) -> None:
    ticks = iter(range(10_000))
    job = make_job(server, sections(2))
    run = job.make_run(clock=lambda: float(next(ticks)))
    events = []
    run.subscribe(events.append)
    await run.run()
    await run.aclose()
    kinds = [type(e) for e in events]
    assert kinds[0] is ChunkQueued and kinds[len(job.chunks)] is SummaryStarted
    assert SummaryFinished in kinds and kinds[-1] is RunFinished
    times = [e.at for e in events]
    assert times == sorted(times) and all(float(t).is_integer() for t in times)
    for chunk in job.chunks:
        mine = [type(e) for e in events if getattr(e, "chunk_id", None) == chunk.id]
        assert mine[0] is ChunkQueued and mine[1] is ChunkStarted and mine[-1] is ChunkFinished
    finished = [e for e in events if isinstance(e, ChunkFinished)]
    assert sum(len(e.cards) for e in finished) == len(run.cards())
    assert not [e for e in events if isinstance(e, ChunkFailed)]


async def test_streaming_reports_progress_and_usage(server: FakeOpenAI) -> None:
    from mkflash_tui.core.models import ChunkProgress

    job = make_job(server, sections(2))
    run = job.make_run(stream=True)
    run.settings.progress_interval = 0
    events = []
    run.subscribe(events.append)
    await run.run()
    await run.aclose()
    progress = [e for e in events if isinstance(e, ChunkProgress)]
    assert progress and all(e.tokens > 0 for e in progress)
    assert all(b.get("stream") is True for b in server.chunk_requests())
    assert run.stats.usage.completion_tokens > 0 and run.stats.usage.prompt_tokens > 0


async def test_dropped_stream_is_retried(server: FakeOpenAI) -> None:
    job = make_job(server, sections(2), concurrency=1)
    server.faults = {1: Fault(drop_mid_stream=True)}
    run = fast(job.make_run(stream=True))
    await run.run()
    await run.aclose()
    assert run.counts()["done"] == len(job.chunks)
    assert run.stats.retries == 1


async def test_identical_cards_from_overlapping_chunks_are_dropped(server: FakeOpenAI) -> None:
    same = json.dumps({"cards": [{"front": "Same Q?", "back": "Same A", "quote": ""}]})
    server.fault_for = lambda n, body: Fault(content=same) if chunk_of(body) else None
    job = make_job(server, sections(4))
    run = job.make_run()
    await run.run()
    await run.aclose()
    assert len(run.cards()) == 1 and run.cards()[0].chunk_index == 0


def test_card_ids_do_not_depend_on_edits() -> None:
    from mkflash_tui.core.models import Card, CardKind, make_card_id

    card_id = make_card_id("abc-0001", 0, "Q", "A")
    card = Card(card_id, "abc-0001", 1, 0, "Q", "A", "", CardKind.BASIC)
    card.front = "Edited Q"
    assert card.id == card_id and card.edited
    assert make_card_id("abc-0001", 1, "Q", "A") != card_id  # same text, different card


@pytest.mark.parametrize("total,expected", [(10, [4, 3, 3]), (2, [1, 1, 0]), (3, [1, 1, 1])])
def test_allot_cards_spreads_by_size(total, expected) -> None:
    from mkflash_tui.core.allot import allot_cards
    from mkflash_tui.core.models import Chunk

    chunks = [Chunk(f"c{i}", i, "x", tokens) for i, tokens in enumerate([100, 90, 80])]
    assert allot_cards(chunks, total) == expected


async def test_long_document_is_shrunk_to_fit_the_summary_call(server: FakeOpenAI) -> None:
    from mkflash_tui.core.fitting import largest_summary
    from mkflash_tui.core.tokens import count_tokens, encoding_for_model

    job = make_job(server, sections(60), context_tokens=2700)  # the window, as --context-tokens gives it
    budget = largest_summary(2700)  # the document's share, with room for the prompt and the answer
    assert budget < 2700 - 500
    run = job.make_run()
    await run.summarize()
    await run.aclose()
    sent = server.summary_requests()[0]["messages"][-1]["content"]
    body = sent.split("<<<DOCUMENT\n", 1)[1].rsplit("\nDOCUMENT>>>", 1)[0]
    assert count_tokens(encoding_for_model("test-model"), body) <= budget + 50
    assert job.chunks[0].body in body and job.chunks[-1].body in body  # the start and the end are kept
    assert "[…]" in body
    middle = [c for c in job.chunks[2:-2] if c.body in body]
    assert middle  # and some of the middle is sampled
    assert len(server.requests) == 1


async def test_headless_progress_on_a_terminal_and_in_a_pipe(server: FakeOpenAI) -> None:
    import io

    from mkflash_tui.headless import Progress

    for live in (True, False):
        job = make_job(server, sections(3))
        run = job.make_run()
        stream = io.StringIO()
        progress = Progress(run, stream, live=live)
        run.subscribe(progress)
        await run.run()
        await run.aclose()
        progress.close()
        text = stream.getvalue()
        total = len(job.chunks)
        if live:
            assert f"{total}/{total} chunks · {len(run.cards())} cards" in text and "\r" in text
        else:
            assert text.count("START chunk") == total and text.count("END chunk") == total and "\r" not in text
