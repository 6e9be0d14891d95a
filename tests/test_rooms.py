"""The engine's rooms through their doors: the cards of plain values, the retry layer with a scripted transport,
a transport that answers by id in any order (as a batch will), and a run's timeline drawn from its events alone."""

from __future__ import annotations

import asyncio
import random

from conftest import sections
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary
from test_engine import fast, make_job

from mkflash_tui.core.calls import Caller
from mkflash_tui.core.cards import CardBook, make_cards
from mkflash_tui.core.limiter import Limiter
from mkflash_tui.core.models import (
    Card,
    CardDraft,
    CardKind,
    Chunk,
    ChunkFinished,
    RunSettings,
    RunStats,
    Span,
    SpanKind,
    Summary,
    Usage,
)
from mkflash_tui.core.providers.base import GenerationResult, SummaryResult, TransientError
from mkflash_tui.core.store import open_store
from mkflash_tui.core.throttle import Throttle
from mkflash_tui.core.transport import Request


def chunk(index: int, text: str) -> Chunk:
    return Chunk(id=f"c{index}", index=index, text=text, tokens=len(text) // 4, card_prefix=f"c{index}")


# ---------------------------------------------------------------- cards, without a run


def test_the_deck_is_made_of_plain_values_without_a_run() -> None:
    one = chunk(0, "Water boils at 100 degrees at sea level. Ice melts at zero degrees.")
    two = chunk(1, "Ice melts at zero degrees. Salt lowers the freezing point of water.")
    earlier = Card(id="old-boil", chunk_id="gone", chunk_index=0, ordinal=0, front="At what temperature does "
                   "water boil at sea level?", back="100 degrees", quote="", kind=CardKind.BASIC)  # fmt: skip
    forgotten = Card(id="old-gone", chunk_id="gone", chunk_index=1, ordinal=1, front="What is the capital of Peru?",
                     back="Lima", quote="", kind=CardKind.BASIC)  # fmt: skip
    book = CardBook([earlier, forgotten], exported_ids=())
    melt = CardDraft("At what temperature does ice melt?", "zero degrees", "Ice melts at zero degrees.")
    # The second chunk finishes first: the deck is still in document order, its repeat of the first one's card
    # is the one left out.
    second = book.make(two, [melt, CardDraft("What lowers the freezing point of water?", "salt")], markdown=True)
    first = book.make(one, [CardDraft(earlier.front, earlier.back, "Water boils at 100 degrees at sea level."), melt],
                      markdown=True)  # fmt: skip
    assert book.kept_of(two.id) == 2 and book.kept_of(one.id) == 1  # counted as they finished
    deck = book.deck([first, second])
    fronts = [c.front for c in deck]
    assert fronts == [earlier.front, melt.front, "What lowers the freezing point of water?", forgotten.front]
    assert deck[0].id == "old-boil"  # the card made again with the same text keeps the earlier id
    assert deck[1].chunk_id == one.id  # of two identical cards, the earlier chunk's
    assert [c.stale for c in deck] == [False, False, False, True]  # the one not made again is stale, last
    tally = book.tally()
    assert tally == {"made": 4, "kept": 3, "repeats": 1, "broken": 0}


def test_a_card_quote_is_the_chunks_own_text() -> None:
    source = chunk(0, "The Nile is the longest river in Africa. It flows north into the Mediterranean Sea.")
    made = make_cards(source, [CardDraft("Where does the Nile flow?", "north, into the Mediterranean",
                                         "it flows to the north")])  # fmt: skip
    assert made[0].quote == "It flows north into the Mediterranean Sea."  # the model's paraphrase replaced


# ---------------------------------------------------------------- the retry layer, with a scripted transport


class Scripted:
    """A transport that answers from a script: an exception is raised, anything else returned."""

    online = True
    capabilities = None

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.sent: list[Request] = []

    def fit(self, window: int | None) -> None:
        pass

    async def send(self, request: Request, on_tokens=None):
        self.sent.append(request)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def caller_for(transport: Scripted, clock: list[float], events: list) -> Caller:
    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Caller(transport, RunSettings(backoff_base=0.5), Throttle(4), RunStats(), check=lambda: None,
                  emit=events.append, now=lambda: clock[0], clock=lambda: clock[0], sleep=sleep,
                  rng=random.Random(1))  # fmt: skip


async def test_the_retry_layer_waits_out_retry_after_and_says_so_in_spans() -> None:
    answer = GenerationResult([CardDraft("Q", "A")], Usage(10, 10))
    transport = Scripted(TransientError("rate limited (429)", rate_limited=True, retry_after=3.0), answer)
    clock, events = [0.0], []
    result = await caller_for(transport, clock, events).call(Request("c0", 0))
    assert result is answer and len(transport.sent) == 2
    spans = [(e.kind, e.detail) for e in events if isinstance(e, Span)]
    assert spans == [(SpanKind.ATTEMPT, "rate limited (429)"), (SpanKind.WAIT, "retry-after"),
                     (SpanKind.ATTEMPT, "answered")]  # fmt: skip
    wait = next(e for e in events if e.kind is SpanKind.WAIT)
    assert 3.0 <= wait.at - wait.start <= 4.0  # the hint, plus at most a little jitter


# ---------------------------------------------------------------- a transport that answers by id, in any order


class Gathering:
    """Holds the card requests until all of them have been sent, then answers them in reverse order, each by its
    id — the shape of a batch submission behind the live transport's door."""

    online = False
    capabilities = None

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.pending: dict[str, tuple[Request, asyncio.Future]] = {}
        self.answered: list[str] = []

    def fit(self, window: int | None) -> None:
        pass

    async def send(self, request: Request, on_tokens=None):
        if request.cards is None:
            return SummaryResult(Summary("Gathered", "A document answered all at once."))
        future = asyncio.get_running_loop().create_future()
        self.pending[request.id] = (request, future)
        if len(self.pending) == self.expected:
            for request_id in reversed(list(self.pending)):
                sent, waiting = self.pending.pop(request_id)
                self.answered.append(request_id)
                waiting.set_result(GenerationResult([CardDraft(f"What does request {sent.id} say?", "its own text",
                                                               sent.cards.chunk_text[:40])], Usage()))  # fmt: skip
        return await future


async def test_a_transport_that_answers_by_id_in_any_order_fits_the_door() -> None:
    from mkflash_tui.config import Settings
    from mkflash_tui.core.engine import Run
    from mkflash_tui.core.plan import plan_document
    from mkflash_tui.core.providers.offline import OfflineProvider
    from mkflash_tui.core.sources import parse_bytes
    from mkflash_tui.job import plan_settings

    document = parse_bytes(sections(6).encode(), name="t.md", stem="t", suffix=".md")
    settings = Settings(chunk_tokens=120, overlap_tokens=0)
    chunks = plan_document(plan_settings(settings), document).chunks
    transport = Gathering(len(chunks))
    run = Run(document, chunks, OfflineProvider([]), RunSettings(concurrency=64), transport=transport)
    await run.run()
    assert run.counts()["done"] == len(chunks) and transport.answered == [c.id for c in reversed(chunks)]
    for c in chunks:  # each chunk its own answer
        assert [card.front for card in run.status[c.id].cards] == [f"What does request {c.id} say?"]
    assert run.summary.title == "Gathered"


# ---------------------------------------------------------------- a run's timeline, from its events alone


def timeline(events: list) -> dict[str | None, list[tuple[float, float, str, str]]]:
    """Each chunk's lane (None: the summary's): what happened from when to when."""
    lanes: dict[str | None, list[tuple[float, float, str, str]]] = {}
    for event in events:
        if isinstance(event, Span):
            assert event.start <= event.at
            lanes.setdefault(event.chunk_id, []).append((event.start, event.at, str(event.kind), event.detail))
    return lanes


async def test_a_runs_timeline_can_be_drawn_from_its_events_alone(tmp_path) -> None:
    text = sections(4)
    attempts: dict[str, int] = {}

    def faults(number: int, body: dict) -> Fault | None:
        if is_summary(body):
            return None
        which = chunk_of(body) or ""
        attempts[which] = attempts.get(which, 0) + 1
        first = attempts[which] == 1
        if "The part 0 fact 0" in which and first:
            return Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "300"})
        if "The part 1 fact 0" in which and first:
            return Fault(malformed=True)
        if "The part 2 fact 0" in which and first and "The part 2 fact 5" in which:
            return Fault(content='{"cards": [{"front": "What is', finish_reason="length")
        return None

    with FakeOpenAI(latency=0.02, fault_for=faults) as server:
        job = make_job(server, text, chunk_tokens=120)
        store = open_store(tmp_path)
        run = fast(job.make_run(store=store))
        events: list = []
        run.subscribe(events.append)
        await run.run()
        await run.aclose()
        assert run.counts()["done"] == len(job.chunks)
        lanes = timeline(events)
        ids = {c.index: c.id for c in job.chunks}
        limited = [(kind, detail) for _, _, kind, detail in lanes[ids[0]]]
        assert limited[0][0] == "attempt" and "rate limit" in limited[0][1].lower()
        assert ("wait", "retry-after") in limited and limited[-1] == ("attempt", "answered")
        wait = next(span for span in lanes[ids[0]] if span[2] == "wait")
        assert wait[1] - wait[0] >= 0.3  # the Retry-After, waited
        repaired = [kind for _, _, kind, _ in lanes[ids[1]]]
        assert repaired[0] == "attempt" and repaired[-1] == "repair"
        halved = lanes[ids[2]]
        parts = [span for span in halved if span[2] == "part"]
        assert [span[3] for span in parts] == ["1/2", "2/2"]
        for start, end, _, _ in parts:  # each part holds an answered attempt of its own
            assert any(s >= start and e <= end and k == "attempt" and d == "answered" for s, e, k, d in halved)
        assert lanes[None] and lanes[None][-1][2:] == ("attempt", "answered")  # the summary's call
        # Every chunk that finished has its spans before its end.
        finished = {e.chunk_id: e.at for e in events if isinstance(e, ChunkFinished)}
        assert all(max(end for _, end, _, _ in lanes[chunk_id]) <= at for chunk_id, at in finished.items())

        again = job.make_run(store=store)
        events = []
        again.subscribe(events.append)
        await again.run()
        await again.aclose()
        store.close()
        lanes = timeline(events)
        assert {chunk_id: [span[2:] for span in lane] for chunk_id, lane in lanes.items()} == {
            c.id: [("cache", "an earlier run")] for c in job.chunks
        }


async def test_the_wait_in_a_servers_queue_is_a_span() -> None:
    with FakeOpenAI(latency=0.05, chars_per_delta=8) as server:
        job = make_job(server, sections(3), chunk_tokens=120, concurrency=4)
        run = job.make_run(stream=True)
        run.settings.server_slots = 1  # the server serves one request at a time: the others wait in its queue
        events: list = []
        run.subscribe(events.append)
        await run.run()
        await run.aclose()
    queued = [e for e in events if isinstance(e, Span) and e.detail == "queue"]
    assert queued and all(e.kind is SpanKind.WAIT and e.chunk_id is not None and e.start < e.at for e in queued)


async def test_a_retry_waits_for_its_slot_ahead_of_the_calls_not_yet_sent() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    served: list[str] = []

    async def call(name: str, ahead: bool) -> None:
        async with limiter.slot(ahead=ahead):
            served.append(name)
            await asyncio.sleep(0)

    first = [asyncio.create_task(call(name, False)) for name in ("a", "b")]
    await asyncio.sleep(0)
    retries = [asyncio.create_task(call(name, True)) for name in ("retry 1", "retry 2")]
    await asyncio.sleep(0)
    assert limiter.waiting == 4
    limiter.release()
    await asyncio.gather(*first, *retries)
    assert served == ["retry 1", "retry 2", "a", "b"]  # retries first, each queue first come, first served
    assert limiter.in_use == 0 and limiter.waiting == 0
