"""Benchmark: throughput against rate-limited servers, as a fraction of the limit (not part of the test suite).

Two servers (the fake one, its minute scaled down so this takes about a minute):
  - a request-rate limit: a bucket of R requests refilled at R per W seconds, with OpenAI's x-ratelimit headers;
  - a limit on calls in flight: N slots, a 429 for the N+1th call.

For each, it runs the engine (adaptive limiter and pacer) and a fixed-pause baseline like the OpenAI cookbook's
parallel processor (every worker pauses 15 s after any 429; scaled by W/60 for the rate server so the
comparison is fair, and also unscaled), and prints sustained throughput / limit. Target for the engine: >= 0.9.

    python tests/bench/bench_ratelimit.py [--timeline FOLDER]

``--timeline FOLDER`` also draws the engine's two runs (``rate.svg``, ``slots.svg``), as ``generate --timeline``
does: the README's picture is ``slots.svg``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from conftest import sections  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402

from mkflash_tui.config import Settings  # noqa: E402
from mkflash_tui.core.prompts import CardRequest, card_messages  # noqa: E402
from mkflash_tui.core.sources import parse_bytes  # noqa: E402
from mkflash_tui.core.timeline import Timeline  # noqa: E402
from mkflash_tui.job import prepare  # noqa: E402

RATE = (60, 6.0)  # 60 requests per 6 s: 10 requests/s
SLOTS, SLOT_LATENCY = 8, 0.25  # 8 calls in flight, each 0.25 s: at most 32 requests/s
SECTIONS = 160  # of the bench text: 202 chunks of 120 tokens
COOKBOOK_PAUSE = 15.0  # seconds, per minute of rate window


def job_for(server: FakeOpenAI, concurrency: int = 64):
    settings = Settings(provider="openai", model="gpt-4o-mini", base_url=server.base_url, api_key="bench",
                        chunk_tokens=120, overlap_tokens=0, concurrency=concurrency)  # fmt: skip
    document = parse_bytes(sections(SECTIONS).encode(), name="b.md", stem="b", suffix=".md")
    return prepare(settings, document)


def steady_throughput(times: list[float], start_after: int) -> float:
    """Requests per second admitted after the first ``start_after`` ones (the initial burst the bucket allows)."""
    steady = sorted(times)[start_after:]
    if len(steady) < 2:
        return 0.0
    return (len(steady) - 1) / (steady[-1] - steady[0])


async def engine(server: FakeOpenAI, title: str, picture: Path | None = None) -> tuple[float, int]:
    job = job_for(server)
    run = job.make_run(stream=False)
    timeline = Timeline(job.settings.concurrency)
    run.subscribe(timeline.add)
    await run.run()
    await run.aclose()
    if picture is not None:
        picture.write_text(timeline.svg(f"bench_ratelimit.py: {title}"), encoding="utf-8")
    return time.monotonic(), len(run.failures())


async def cookbook(server: FakeOpenAI, pause: float, workers: int = 64) -> int:
    """Fixed pause: after any 429, every worker waits ``pause`` seconds before its next request."""
    import openai

    job = job_for(server)
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
    queue: asyncio.Queue = asyncio.Queue()
    for chunk in job.chunks:
        queue.put_nowait(CardRequest(chunk.text, chunk.location, 2, "t", "s"))
    pause_until = [0.0]
    failed = [0]

    async def worker() -> None:
        while not queue.empty():
            request = queue.get_nowait()
            for _ in range(50):
                wait = pause_until[0] - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    await client.chat.completions.create(model="gpt-4o-mini", messages=card_messages(request))
                    break
                except openai.RateLimitError:
                    pause_until[0] = max(pause_until[0], time.monotonic() + pause)
            else:
                failed[0] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    await client.close()
    return failed[0]


async def rate_case(pictures: Path | None) -> None:
    capacity, window = RATE
    limit = capacity / window
    title = f"request-rate limit: {capacity} requests per {window:g} s ({limit:g}/s)"
    with FakeOpenAI(rate_limit=RATE, latency=0.05) as server:
        print(f"{title}, {len(job_for(server).chunks)} chunks")
        _, failed = await engine(server, title, pictures and pictures / "rate.svg")
        ours = steady_throughput(server.admitted_at[1:], capacity)  # [1:]: the summary call
        print(f"  engine:   {ours:5.2f}/s = {ours / limit:.2f} of the limit, {server.rejected_429} x 429, "
              f"{failed} failed chunks")  # fmt: skip
    for pause in (COOKBOOK_PAUSE * window / 60, COOKBOOK_PAUSE):
        with FakeOpenAI(rate_limit=RATE, latency=0.05) as server:
            failed = await cookbook(server, pause)
            theirs = steady_throughput(server.admitted_at, capacity)
            print(f"  baseline: {theirs:5.2f}/s = {theirs / limit:.2f} of the limit, {server.rejected_429} x 429, "
                  f"{failed} failed (pause {pause:g} s on any 429)")  # fmt: skip


async def slots_case(pictures: Path | None) -> None:
    limit = SLOTS / SLOT_LATENCY
    title = f"calls-in-flight limit: {SLOTS} slots, {SLOT_LATENCY:g} s per call (at most {limit:g}/s)"
    with FakeOpenAI(max_in_flight=SLOTS, latency=SLOT_LATENCY) as server:
        print(f"{title}, {len(job_for(server).chunks)} chunks")
        _, failed = await engine(server, title, pictures and pictures / "slots.svg")
        ours = steady_throughput(server.admitted_at[1:], 0)
        print(f"  engine:   {ours:5.2f}/s = {ours / limit:.2f} of the limit, {server.rejected_429} x 429, "
              f"{failed} failed chunks")  # fmt: skip
    with FakeOpenAI(max_in_flight=SLOTS, latency=SLOT_LATENCY) as server:
        failed = await cookbook(server, COOKBOOK_PAUSE * RATE[1] / 60)
        theirs = steady_throughput(server.admitted_at, 0)
        print(f"  baseline: {theirs:5.2f}/s = {theirs / limit:.2f} of the limit, {server.rejected_429} x 429, "
              f"{failed} failed (pause {COOKBOOK_PAUSE * RATE[1] / 60:g} s on any 429)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeline", type=Path, help="a folder: draw the engine's runs there")
    args = parser.parse_args()
    if args.timeline:
        args.timeline.mkdir(parents=True, exist_ok=True)
    asyncio.run(rate_case(args.timeline))
    asyncio.run(slots_case(args.timeline))


if __name__ == "__main__":
    main()
