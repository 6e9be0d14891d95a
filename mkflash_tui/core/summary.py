"""The summary: one call over the whole document (or as much of it as fits) for the title and the context
every card request carries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from . import fitting
from .calls import Caller
from .control import Control, RunCancelled, RunHalted
from .journal import RunJournal
from .models import (
    Chunk,
    Document,
    Event,
    RunSettings,
    RunStats,
    Summary,
    SummaryFailed,
    SummaryFinished,
    SummaryStarted,
    Usage,
)
from .parsing import OutputError
from .pricing import context_tokens as model_context_tokens
from .prompts import PROMPT_VERSION
from .providers.base import ContextTooLong, Provider, RequestRejected, RunRefused, SummaryResult, TransientError
from .store import cache_key
from .transport import Request

SUMMARY_RESERVE_TOKENS = 1200  # prompt and answer room kept free when shrinking a document for the summary
SUMMARY_TRIES = 3  # a summary refused for its length is asked again this often, with less of the document

Learn = Callable[[ContextTooLong, int], None]


class SummaryMaker:
    """One document's summary, made once: a continued session's, else one an earlier run made of the same text,
    else a call. A summary that fails leaves the title alone (it is context, not a product), unless the call
    found no server at all: then the run is refused."""

    def __init__(self, document: Document, chunks: list[Chunk], settings: RunSettings, *, caller: Caller,
                 window: fitting.ServerWindow, journal: RunJournal, control: Control, stats: RunStats, learn: Learn,
                 emit: Callable[[Event], None], now: Callable[[], float],
                 kept: Summary | None = None) -> None:  # fmt: skip
        self.document = document
        self.chunks = chunks
        self.caller = caller
        self.window = window
        self.journal = journal
        self.control = control
        self.stats = stats
        self.learn = learn
        self._emit = emit
        self._now = now
        self.kept = kept
        self.settings = settings

    async def make(self, provider: Provider) -> Summary:
        """The summary. Raises RunCancelled when the run is refused or halted (or the call cancelled)."""
        if self.kept is not None:
            return self._made(self.kept, Usage())
        key = cache_key("summary", provider.cache_identity, PROMPT_VERSION, self.document.hash)
        found = self.journal.summary(key)
        if found is not None:
            self.journal.keep_summary(None, found)
            return self._made(found, Usage())
        self.control.track(asyncio.current_task())
        self._emit(SummaryStarted(self._now()))
        # The document's share of the call: as fitted to the server's window, else by the model's context.
        budget = self.settings.summary_input_tokens or (
            model_context_tokens(provider.model, self.settings.context_tokens) - SUMMARY_RESERVE_TOKENS)
        fallback = Summary(self.document.title, "")
        try:
            result = await ask_for_summary(self.caller, self.window, self.chunks, self.document.title,
                                           max(256, budget), self.learn)  # fmt: skip
        except RunRefused as exc:
            raise self._refused(str(exc), exc) from None
        except RunHalted:
            raise RunCancelled(self.control.halted or "cancelled") from None
        except (TransientError, RequestRejected, OutputError) as exc:
            if isinstance(exc, TransientError) and (exc.unreachable or exc.wrong_server):
                # The first call of the run found no server, or something that is not a chat-completions API:
                # every chunk would too. Stop once.
                raise self._refused(str(exc), RunRefused(str(exc), field="base_url")) from None
            self._emit(SummaryFailed(self._now(), str(exc)))
            return fallback
        except asyncio.CancelledError:
            raise RunCancelled("cancelled") from None
        finally:
            self.control.untrack(asyncio.current_task())
        made = Summary(result.summary.title or fallback.title, result.summary.summary)
        self.journal.keep_summary(key, made)
        self.stats.usage += result.usage
        return self._made(made, result.usage)

    def _made(self, summary: Summary, usage: Usage) -> Summary:
        self._emit(SummaryFinished(self._now(), summary, usage))
        return summary

    def _refused(self, reason: str, error: RunRefused) -> RunCancelled:
        self.control.refuse(reason, error)
        self._emit(SummaryFailed(self._now(), reason))
        return RunCancelled(reason)


async def ask_for_summary(caller: Caller, window: fitting.ServerWindow, chunks: list[Chunk], title: str,
                          budget: int, learn: Learn) -> SummaryResult:  # fmt: skip
    """The summary of the document in ``chunks`` (``budget`` tokens of it at most); refused for its length, it
    is asked again with less of the document (``learn`` is told of the refusal)."""
    for attempt in range(SUMMARY_TRIES):
        request = Request(None, text=shrink_for_summary(chunks, budget), title=title)
        try:
            return await caller.call(request)  # type: ignore[return-value]
        except ContextTooLong as exc:
            if attempt + 1 == SUMMARY_TRIES:
                raise
            learn(exc, budget + fitting.SUMMARY_PROMPT_TOKENS)
            budget = window.summary_budget(budget)
    raise AssertionError("unreachable")


def shrink_for_summary(chunks: list[Chunk], budget_tokens: int) -> str:
    """The document's text if it fits ``budget_tokens``; else its start and end with evenly sampled middle."""
    bodies = [(c.body, max(1, c.tokens - (c.tokens * c.overlap_chars) // max(1, len(c.text)))) for c in chunks]
    if sum(t for _, t in bodies) <= budget_tokens:
        return "\n\n".join(b for b, _ in bodies)
    picked: set[int] = set()
    used = 0

    def take(i: int) -> bool:
        nonlocal used
        if i in picked or used + bodies[i][1] > budget_tokens:
            return False
        picked.add(i)
        used += bodies[i][1]
        return True

    head_budget, tail_budget = budget_tokens * 0.4, budget_tokens * 0.2
    i = 0
    while i < len(bodies) and used + bodies[i][1] <= head_budget and take(i):
        i += 1
    j = len(bodies) - 1
    tail_start = used
    while j > i and used - tail_start + bodies[j][1] <= tail_budget and take(j):
        j -= 1
    middle = list(range(i, j + 1))
    if middle:
        room = budget_tokens - used
        average = sum(bodies[k][1] for k in middle) / len(middle)
        wanted = max(1, int(room // max(1.0, average)))
        step = max(1.0, len(middle) / wanted)
        position = step / 2
        while position < len(middle):
            take(middle[int(position)])
            position += step
    if not picked:
        # A single chunk larger than the budget: keep its start.
        return bodies[0][0][: budget_tokens * 3]
    parts, previous = [], None
    for k in sorted(picked):
        if previous is not None and k != previous + 1:
            parts.append("[…]")
        parts.append(bodies[k][0])
        previous = k
    return "\n\n".join(parts)
