"""Adaptive throughput: how many calls may be in flight, and how fast new ones may start.

Two kinds of server limits look alike (both answer 429) and need different answers:

- a limit on calls in flight (a local server with N slots): the concurrency limit follows AIMD. When most
  recent calls end in 429, the limit halves (once per "generation" of calls, so a burst of 429s from calls
  already sent counts once); a full limit's worth of successes raises it by one. Once a limit has proven
  itself, a 429 one step above it goes back to that limit instead of halving, and probing upward slows down,
  so the limit settles at N instead of sawing between N/2 and N. A sporadic 429 among successes only waits
  out its Retry-After;
- a limit on requests per unit of time (OpenAI's RPM): starting calls faster only earns more 429s, so calls
  are paced. The rate comes from the ``x-ratelimit-*`` headers when the server sends them (the bucket refills
  at (limit - remaining) / reset requests per second), otherwise from how many calls succeeded recently.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .limiter import Limiter

OUTCOMES = 20  # recent call outcomes that decide whether 429s are the rule or an accident
PACE_MARGIN = 0.97  # pace slightly under the learned rate, so jitter does not turn into 429s
RATE_WINDOW = 10.0  # seconds of history used to estimate a rate without headers


@dataclass(frozen=True, slots=True)
class RateInfo:
    """What a server's ``x-ratelimit-*-requests`` headers said."""

    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None

    def refill_rate(self) -> float | None:
        """Requests per second the server's bucket refills at, if the headers tell."""
        if self.limit is None or self.remaining is None or not self.reset_seconds:
            return None
        used = self.limit - self.remaining
        if used <= 0:
            return None
        return used / self.reset_seconds


class Throttle:
    """The run's concurrency limiter plus a pacer; the engine reports every call's outcome to it."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self.ceiling = max(1, limit)
        self.limiter = Limiter(self.ceiling, on_change=on_change)
        self.clock = clock
        self.rate: float | None = None  # requests per second; None: not pacing
        self.rate_source = ""
        self._next_start = 0.0
        self._generation = 0
        self._successes = 0
        self._proven = 0  # the highest limit that saw a full window of successes since the last 429
        self._patience = 1  # windows of successes before probing one higher
        self._recent: deque[float] = deque()
        self._outcomes: deque[bool] = deque(maxlen=OUTCOMES)  # True: rate limited
        self._pace_lock = asyncio.Lock()

    # ------------------------------------------------------------------ before a call

    async def pace(self) -> None:
        """Wait until the pacer lets the next call start (no wait unless a rate limit was seen)."""
        if self.rate is None:
            return
        async with self._pace_lock:
            now = self.clock()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.rate
            if start > now:
                await asyncio.sleep(start - now)

    def generation(self) -> int:
        """Tag a call with the current generation: a 429 from an older one does not shrink the limit again."""
        return self._generation

    # ------------------------------------------------------------------ after a call

    def succeeded(self, info: RateInfo | None = None) -> None:
        self._outcomes.append(False)
        now = self.clock()
        self._recent.append(now)
        while self._recent and self._recent[0] < now - RATE_WINDOW:
            self._recent.popleft()
        if info is not None:
            self._learn(info)
        elif self.rate_source == "observed" and self.rate is not None:
            self.rate *= 1.02  # additive-ish increase of a guessed rate while calls succeed
        self._successes += 1
        limit = self.limiter.limit
        if self._successes >= limit:
            self._proven = max(self._proven, limit)
        if limit < self.ceiling and self._successes >= limit * self._patience:
            self._successes = 0
            self.limiter.set_limit(limit + 1)

    def rate_limited(self, generation: int, info: RateInfo | None = None) -> None:
        """A 429 that was not about quota: slow down once per generation of calls."""
        self._outcomes.append(True)
        if info is not None and self._learn(info, force=True):
            return  # a rate limit: the pacer handles it; the concurrency limit is not the problem
        if generation != self._generation:
            return
        limit = self.limiter.limit
        if self._looks_like_rate_limit(limit):
            # 429s keep coming though at most two calls are in flight: a rate limit without headers.
            # Pace at the rate that actually got through; it creeps back up while calls succeed.
            span = self._recent[-1] - self._recent[0]
            self._set_rate(max(0.2, (len(self._recent) - 1) / span * PACE_MARGIN), "observed")
        if 0 < self._proven < limit:
            self.limiter.set_limit(self._proven)  # one probe too far: back to what worked, probe less often
            self._patience = min(self._patience * 2, 16)
        elif sum(self._outcomes) * 2 >= len(self._outcomes):
            self._proven = 0
            self.limiter.set_limit(max(1, limit // 2))
        else:
            return  # a sporadic 429 among successes: its Retry-After is enough
        self._generation += 1
        self._successes = 0

    def _learn(self, info: RateInfo, force: bool = False) -> bool:
        rate = info.refill_rate()
        if rate is None:
            return False
        # Pace once the server says we are near its limit (or over it); until then, full speed.
        near = info.remaining is not None and info.limit and info.remaining <= max(1, info.limit // 10)
        if force or near or self.rate is not None:
            self._set_rate(rate * PACE_MARGIN, "headers")
        return True

    def _set_rate(self, rate: float, source: str) -> None:
        if self.rate is None:
            self._next_start = self.clock()
        self.rate = rate
        self.rate_source = source

    def _looks_like_rate_limit(self, limit: int) -> bool:
        enough = len(self._outcomes) >= OUTCOMES // 2 and len(self._recent) >= 3
        return (
            limit <= 2
            and enough
            and sum(self._outcomes) * 2 >= len(self._outcomes)
            and self._recent[-1] > self._recent[0]
        )
