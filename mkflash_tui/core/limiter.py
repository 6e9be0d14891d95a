"""A concurrency limiter whose limit can change while calls are waiting or running."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Limiter:
    """Like ``asyncio.Semaphore``, but ``limit`` can be raised or lowered at any time.

    Lowering the limit never interrupts running calls; new calls wait until the number in flight drops
    below the new limit. Waiters are served first come, first served, those that asked ``ahead`` (a call sent
    again after a refusal or a failure) before the others: a retry never waits behind every chunk not yet sent.
    """

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ahead: deque[asyncio.Future[None]] = deque()  # served before ``_waiters``
        self._on_change = on_change
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for w in (*self._ahead, *self._waiters) if not w.done())

    def set_limit(self, limit: int) -> None:
        """Change the limit (at least 1) and admit waiters if there is room."""
        limit = max(1, int(limit))
        if limit == self._limit:
            return
        self._limit = limit
        if self._on_change:
            self._on_change(limit)
        self._wake()

    async def acquire(self, *, ahead: bool = False) -> None:
        if self._in_use < self._limit and not self.waiting:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._ahead if ahead else self._waiters
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # We were granted a slot just as we were cancelled: pass it on.
                self.release()
            raise
        finally:
            try:
                queue.remove(future)
            except ValueError:
                pass

    def slot(self, *, ahead: bool = False) -> _Slot:
        """``async with limiter.slot(ahead=True):`` — one slot, asked for ahead of the first-come waiters."""
        return _Slot(self, ahead)

    def release(self) -> None:
        self._in_use -= 1
        self._wake()

    def _take(self) -> None:
        self._in_use += 1
        self.peak = max(self.peak, self._in_use)

    def _wake(self) -> None:
        for future in [*self._ahead, *self._waiters]:
            if self._in_use >= self._limit:
                break
            if not future.done():
                self._take()
                future.set_result(None)

    async def __aenter__(self) -> Limiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class _Slot:
    def __init__(self, limiter: Limiter, ahead: bool) -> None:
        self.limiter, self.ahead = limiter, ahead

    async def __aenter__(self) -> Limiter:
        await self.limiter.acquire(ahead=self.ahead)
        return self.limiter

    async def __aexit__(self, *exc: object) -> None:
        self.limiter.release()
