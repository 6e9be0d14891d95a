"""Calls: the single retry layer every request of a run goes through (the summary, chunks, their parts and
repairs).

``Caller.call`` sends one request through the transport and returns its answer: a slot of the limiter held only
while a request is in flight, backoff with full jitter, ``Retry-After`` honoured, deadlines that allow for a
server's queue, the server's refusals of how we ask taken as a change of how to ask rather than a failure, and
errors classified (rate limits, timeouts, dropped connections, unreadable output). The throttle (and its
limiter) is handed in, so several runs can share one. Every attempt and every wait is reported as a ``Span``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable

from .models import Event, Notice, RunSettings, RunStats, Span, SpanKind, Usage
from .parsing import OutputError
from .providers.base import TransientError
from .throttle import Throttle
from .transport import Answer, Request, Transport

UNREACHABLE_ATTEMPTS = 3  # a server that refuses connections is tried this often, not max_attempts times
TINY_HINT = 0.01  # a Retry-After shorter than this (0, as some servers send) is no hint: our backoff applies
MAX_ADAPTATIONS = 8  # attempts one call may spend on the server's refusals of how we ask, or on cut streams
ONE_AT_A_TIME = (
    "the server ends a running answer whenever another request arrives (llama-cpp-python does, unless started "
    "with --interrupt_requests False): sending one request at a time"
)

OnAttempt = Callable[[int], None]
OnRetry = Callable[[int, float, str], None]
Repair = Callable[[Request, OutputError], Request]


class Caller:
    """One run's retry layer over ``transport``. ``check()`` raises when no request may be sent any more (the
    run was refused or halted); it is asked before every attempt and again once a slot is free."""

    def __init__(self, transport: Transport, settings: RunSettings, throttle: Throttle, stats: RunStats, *,
                 check: Callable[[], None], emit: Callable[[Event], None], now: Callable[[], float],
                 clock: Callable[[], float], sleep: Callable[[float], object],
                 rng: random.Random) -> None:  # fmt: skip
        self.transport = transport
        self.settings = settings
        self.throttle = throttle
        self.stats = stats
        self._check = check
        self._emit = emit
        self._now = now
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self.speeds: list[float] = []  # seconds per 1,000 tokens of each answered call

    async def call(self, request: Request, *, on_tokens: Callable[[int], None] | None = None,
                   on_attempt: OnAttempt | None = None, on_retry: OnRetry | None = None,
                   repair: Repair | None = None, cut_off_retries: int = 0) -> Answer:  # fmt: skip
        """``request``'s answer, after as many attempts as the settings allow; raises the last error.

        ``repair(request, error)`` gives the next attempt after unreadable output (a repair request); an answer
        cut off at the output limit is retried ``cut_off_retries`` times (the caller of a whole chunk splits it
        instead).
        """
        settings = self.settings
        limiter = self.throttle.limiter
        waited = 0.0
        repairs = cut_offs = attempt = limited = timeouts = adaptations = 0
        failures = 0  # attempts that failed for a reason other than a rate limit
        deferred = getattr(self.transport, "deferred", None)
        while True:
            attempt += 1
            self._check()
            asked = self._now()
            # Answered later by a batch: it holds no slot, waits for no pace and has no deadline.
            later = bool(deferred and deferred(request))
            # A call waits when every slot is taken, or when calls are paced (a rate limit was seen).
            queued = not later and (limiter.in_use >= limiter.limit or self.throttle.rate is not None)
            # A retry goes before the chunks not yet sent.
            async with contextlib.nullcontext() if later else limiter.slot(ahead=attempt > 1):
                self._check()  # decided while this call waited for its slot
                generation = self.throttle.generation()
                if not later:
                    await self.throttle.pace()
                sent = self._now()
                if queued and sent > asked:
                    self._span(asked, SpanKind.WAIT, request, "throttle", attempt)
                self.stats.max_concurrency_reached = max(self.stats.max_concurrency_reached, limiter.in_use)
                if on_attempt:
                    on_attempt(attempt)
                if self.transport.online:
                    self.stats.requests += 1
                deadline = None if later else self._attempt_deadline()
                kind = SpanKind.REPAIR if request.is_repair else SpanKind.ATTEMPT
                try:
                    async with asyncio.timeout(deadline):
                        result = await self.transport.send(request, self._queue_watch(request, sent, on_tokens))
                except TimeoutError:
                    timeouts += 1
                    failures += 1
                    error: Exception = TransientError(f"no complete answer within {deadline:g} s (--timeout)",
                                                      timed_out=True)  # fmt: skip
                    hint = None
                    self._span(sent, kind, request, str(error), attempt)
                except TransientError as exc:
                    self._span(sent, kind, request, str(exc), attempt)
                    if (exc.adapted or (exc.cut_stream and self._cut_by_others())) and adaptations < MAX_ADAPTATIONS:
                        # Not the server failing: it refused how we asked (the provider now asks another way),
                        # or it cut this answer because another request arrived. Send again at once.
                        adaptations += 1
                        self.stats.retries += 1
                        if on_retry:
                            on_retry(attempt + 1, 0.0, str(exc))
                        continue
                    if exc.rate_limited:
                        self.throttle.rate_limited(generation, exc.rate_info)
                        limited += 1
                    else:
                        failures += 1
                    timeouts += exc.timed_out
                    error, hint = exc, exc.retry_after
                except OutputError as exc:
                    self._span(sent, kind, request, str(exc), attempt)
                    self.stats.usage += getattr(exc, "usage", Usage())
                    if getattr(exc, "truncated", False):
                        if cut_offs >= cut_off_retries:
                            raise
                        cut_offs += 1
                        self.stats.retries += 1
                        if on_retry:
                            on_retry(attempt + 1, 0.0, str(exc))
                        continue
                    if repairs >= settings.output_repairs:
                        raise
                    repairs += 1
                    failures += 1
                    if repair:
                        request = repair(request, exc)
                    error, hint = exc, 0.0
                except BaseException as exc:
                    self._span(sent, kind, request, "cancelled" if isinstance(exc, asyncio.CancelledError)
                               else str(exc), attempt)  # fmt: skip
                    raise
                else:
                    self._span(sent, kind, request, "answered by a batch" if later else "answered", attempt)
                    if later:
                        self.stats.batch_usage += getattr(result, "usage", None) or Usage()
                    self.throttle.succeeded(getattr(result, "rate_info", None))
                    used = getattr(result, "usage", None)
                    tokens = used.prompt_tokens + used.completion_tokens if used else 0
                    if self.transport.online and tokens >= 100:
                        self.speeds.append((self._now() - sent) * 1000 / tokens)
                    return result
            if timeouts >= settings.max_timeouts:
                if timeouts > 1:
                    error = TransientError(f"{error}, {timeouts} times", timed_out=True)
                raise error
            if failures >= settings.max_attempts or limited >= settings.max_rate_limited:
                raise error
            stop_early = getattr(error, "unreachable", False) or getattr(error, "wrong_server", False)
            if stop_early and failures >= UNREACHABLE_ATTEMPTS:
                raise error
            wait, cause = self._wait_for(attempt, hint)
            if waited + wait > settings.max_total_wait:
                raise error
            waited += wait
            self.stats.retries += 1
            if on_retry:
                on_retry(attempt + 1, wait, str(error))
            if wait > 0:
                start = self._now()
                await self._sleep(wait)
                self._span(start, SpanKind.WAIT, request, cause, attempt)

    def _wait_for(self, attempt: int, hint: float | None) -> tuple[float, str]:
        """Seconds to wait before the next attempt, and why: the server's Retry-After, or our backoff."""
        settings = self.settings
        backoff = min(settings.backoff_cap, settings.backoff_base * 2 ** (attempt - 1))
        if hint is not None and hint >= TINY_HINT:
            return hint + self._rng.uniform(0, min(1.0, 0.1 + hint * 0.1)), "retry-after"
        if hint is not None:
            # "Retry-After: 0" from every call at once would be a storm in lockstep: a zero or tiny hint still
            # gets the growing backoff, half of it fixed and half jittered.
            return max(hint, backoff / 2 + self._rng.uniform(0, backoff / 2)), "backoff"
        return self._rng.uniform(0, backoff), "backoff"

    def _attempt_deadline(self) -> float | None:
        """Seconds one attempt may take: ``--timeout``, times the requests ahead of it in the server's queue on a
        server that queues (a llama.cpp server sends no byte until a slot is free; Ollama serves one at a time),
        so a call that only waited its turn is never taken for a dead one."""
        base = self.settings.attempt_timeout
        if base is None:
            return None
        slots = self._server_slots()
        if not slots:
            return base
        return base * max(1, math.ceil(self.throttle.limiter.in_use / slots))

    def _server_slots(self) -> int | None:
        return self.settings.server_slots or (1 if self.settings.queue_prone else None)

    def _queue_watch(self, request: Request, sent: float, on_tokens: Callable[[int], None] | None):
        """``on_tokens``, reporting the wait in the server's queue when this request was sent while the server
        was serving all the requests it said it serves at once: from sending until its first token."""
        slots = self.settings.server_slots
        if not slots or self.throttle.limiter.in_use <= slots:
            return on_tokens
        first = [True]

        def watch(tokens: int) -> None:
            if first[0]:
                first[0] = False
                self._span(sent, SpanKind.WAIT, request, "queue")
            if on_tokens is not None:
                on_tokens(tokens)

        return watch

    def _cut_by_others(self) -> bool:
        """A stream ended without its end while other calls were in flight: the server interrupts a running
        answer when another request arrives. From now on the run sends one request at a time (said once)."""
        capabilities = self.transport.capabilities
        if capabilities is None or (self.throttle.limiter.in_use <= 1 and not capabilities.one_at_a_time):
            return False
        if not capabilities.one_at_a_time or self.throttle.ceiling > 1:
            capabilities.one_at_a_time = True
            self.set_concurrency(1)
            self._emit(Notice(self._now(), ONE_AT_A_TIME))
        return True

    def set_concurrency(self, limit: int) -> None:
        """Resize the limiter (and the most it may grow back to) while calls go on."""
        self.throttle.ceiling = max(1, limit)
        self.throttle.limiter.set_limit(limit)

    def start(self) -> None:
        """What an earlier run learned about the server applies from the first call."""
        capabilities = self.transport.capabilities
        if capabilities is not None and capabilities.one_at_a_time and self.throttle.ceiling > 1:
            self.set_concurrency(1)
            self._emit(Notice(self._now(), ONE_AT_A_TIME + " (as learned in an earlier run)"))

    def server_report(self) -> dict | None:
        """What is known of how the server takes requests (``--json``'s ``server``), None offline."""
        capabilities = self.transport.capabilities
        if capabilities is None:
            return None
        return {**capabilities.as_dict(), "learned": "an earlier run" if capabilities.from_store else "this run"}

    def server_facts(self) -> dict | None:
        """What to keep of the server for the next run: how it took requests and how fast it answered (None:
        nothing confirmed)."""
        capabilities = self.transport.capabilities
        if capabilities is None or not capabilities.confirmed:
            return None
        facts: dict = capabilities.as_dict()
        if self.speeds:
            facts["seconds_per_1k"] = round(sorted(self.speeds)[len(self.speeds) // 2], 3)
        return facts

    def _span(self, start: float, kind: SpanKind, request: Request, detail: str, attempt: int = 0) -> None:
        self._emit(Span(self._now(), start, kind, request.chunk_id, request.index, detail, attempt))
