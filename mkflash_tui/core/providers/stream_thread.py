"""Answers read on a thread of their own, so that the loop driving the calls (the app's) never parses a stream.

A server streams one small event per token, about a hundred a second, and the app runs hundreds of streams at
once: tens of thousands of events a second, each read from its socket, split and parsed. On the app's event
loop that work stood between every key and its repaint (p90 241 ms from key to screen with 266 streams). Here
one daemon thread runs an asyncio loop of its own: a provider that streams sends its HTTP requests there (its
client lives on that loop), while the calls themselves (one worker per chunk on the app's loop, the limiter,
retries, the store, events) stay where they were. Cancelling the awaiting call cancels the request on the
thread. Token counts come back in batches, at most every ``FLUSH`` seconds for all of a loop's streams.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

FLUSH = 0.2  # seconds between deliveries of token counts to the caller's loop (the board shows them twice a second)


class StreamThread:
    """One daemon thread with an asyncio loop, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name="mkflash-streams", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``coro`` run on the thread's loop, awaited here; cancelling this await cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop()))


STREAMS = StreamThread()


class Relay:
    """Token counts reported on the stream thread, delivered on ``loop`` (the caller's) in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: dict[Callable[[int], None], int] = {}
        self._lock = threading.Lock()
        self._scheduled = False

    def wrap(self, on_tokens: Callable[[int], None]) -> Callable[[int], None]:
        """A callback for the stream thread that hands ``on_tokens`` its latest count on the caller's loop."""

        def report(tokens: int) -> None:
            with self._lock:
                self._pending[on_tokens] = tokens
                if self._scheduled:
                    return
                self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self.loop.call_later, FLUSH, self._flush)
            except RuntimeError:  # the caller's loop has closed: nobody is left to tell
                pass

        return report

    def deliver(self, on_tokens: Callable[[int], None]) -> None:
        """On the caller's loop: the last count reported for ``on_tokens``, now, if one is waiting."""
        with self._lock:
            tokens = self._pending.pop(on_tokens, None)
        if tokens is not None:
            on_tokens(tokens)

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._scheduled = False
        for on_tokens, tokens in pending.items():
            on_tokens(tokens)
