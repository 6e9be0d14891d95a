"""The app's provider sends its requests and reads its streams on the stream thread, not on the caller's loop.

Against the real ``AsyncOpenAI`` client and the loopback server: the stream is read on the thread named
``mkflash-streams``, paced (its connection rests between reads), token counts reach the caller on its own
thread (batched, the last one always), an error comes back as the same exception, and cancelling the caller
hangs up the request on the thread.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from fake_openai import FakeOpenAI

from mkflash_tui.core.prompts import CardRequest
from mkflash_tui.core.providers import openai_compat, wire
from mkflash_tui.core.providers.base import RunRefused
from mkflash_tui.core.providers.openai_compat import OpenAICompatProvider

TEXT = ("Basalt is a dark volcanic rock that forms when lava cools quickly. Granite is a light rock that forms "
        "when magma cools slowly underground. Quartz is a hard mineral found in granite.")  # fmt: skip


def request() -> CardRequest:
    return CardRequest(TEXT, "Rocks", 3, "Rocks", "A note about rocks.")


def provider(server: FakeOpenAI, *, stream: bool = True) -> OpenAICompatProvider:
    return OpenAICompatProvider(model="fake-model", api_key="test", base_url=server.base_url, stream=stream)


async def test_a_streaming_provider_reads_on_the_stream_thread_and_reports_tokens_on_the_callers(monkeypatch) -> None:
    readers: list[str] = []
    real = openai_compat.read_stream

    async def recording(response, on_tokens, server, **pacing):
        readers.append(threading.current_thread().name)
        return await real(response, on_tokens, server, **pacing)

    monkeypatch.setattr(openai_compat, "read_stream", recording)
    rests: list[bool] = []
    real_rest = wire._rest

    async def resting(seconds, socket):
        rests.append(socket is not None and socket.is_reading())
        await real_rest(seconds, socket)
        rests.append(socket.is_reading())  # reading again after the rest

    monkeypatch.setattr(wire, "_rest", resting)
    reports: list[tuple[int, int]] = []
    with FakeOpenAI(chars_per_delta=3, delta_delay=0.002) as server:
        app = provider(server)
        result = await app.generate(request(), lambda tokens: reports.append((threading.get_ident(), tokens)))
        await app.aclose()
        deltas = server.events_sent
    assert readers == ["mkflash-streams"]
    assert rests and all(rests)  # the connection rested between reads (not read meanwhile), then read again
    assert [card.front for card in result.drafts] and all(card.quote in TEXT for card in result.drafts)
    assert reports and {ident for ident, _ in reports} == {threading.get_ident()}
    assert reports[-1][1] == deltas  # the last count is delivered, whatever the batching
    assert len(reports) < deltas / 2  # batched: not one call per event


async def test_a_plain_provider_stays_on_the_callers_loop(monkeypatch) -> None:
    with FakeOpenAI() as server:
        app = provider(server, stream=False)
        threads: list[str] = []
        real = app._send

        async def recording(*args):
            threads.append(threading.current_thread().name)
            return await real(*args)

        monkeypatch.setattr(app, "_send", recording)
        await app.generate(request(), lambda tokens: None)
        await app.aclose()
    assert threads == [threading.current_thread().name]


async def test_an_error_on_the_stream_thread_reaches_the_caller_as_itself() -> None:
    with FakeOpenAI(api_key="the-right-key") as server:
        app = provider(server)
        with pytest.raises(RunRefused) as refused:
            await app.generate(request(), lambda tokens: None)
        await app.aclose()
    assert refused.value.field == "key"


async def test_cancelling_the_caller_hangs_up_the_request_on_the_stream_thread() -> None:
    with FakeOpenAI() as server:
        held = server.hold()
        app = provider(server)
        call = asyncio.create_task(app.generate(request(), lambda tokens: None))
        assert await held.wait_arrived_async(1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(300):
            if held.disconnected:
                break
            await asyncio.sleep(0.01)
        hung_up = held.disconnected
        held.release()
        await app.aclose()
    assert hung_up == 1, "the held request was still open on the server after the call was cancelled"
