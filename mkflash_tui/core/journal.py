"""The journal: where a run keeps its answers (``core.store.Store`` in practice), read before a request is sent
and written before a chunk is reported finished.

``RunJournal`` is one run's use of it: answers found again (an unchanged chunk of a continued session by the key
its answer had, any other by its request), an answer being made shared with the chunks of the same text, and a
store that fails turned into a halt (``Control.halt``): no new requests; what is in flight finishes in memory
and keeps its cards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from .control import Control
from .models import Card, CardDraft, Chunk, Summary, Usage
from .store import StoreError, cache_key


class Journal(Protocol):
    def cached_summary(self, key: str) -> Summary | None: ...

    def save_summary(self, key: str, summary: Summary) -> None: ...

    def set_session_summary(self, session_id: str | None, summary: Summary) -> None: ...

    def cached_chunk(self, key: str) -> Any: ...

    def save_chunk(self, session_id: str | None, chunk: Chunk, key: str, drafts: Iterable[CardDraft], raw: str,
                   usage: Usage, cards: list[Card], wanted: int) -> None: ...  # fmt: skip

    def chunk_done(self, session_id: str | None, chunk: Chunk, key: str, cards: list[Card], wanted: int) -> None: ...

    def chunk_state(self, session_id: str | None, chunk_id: str, index: int, state: str, reason: str = "",
                    cards: int = 0) -> None: ...  # fmt: skip

    def save_server_facts(self, key: str, facts: dict) -> None: ...

    def reset_decisions(self, session_id: str | None, cards: Iterable[Card]) -> None: ...  # cards made again


class RunJournal:
    """One run's journal. ``use_cache`` False (``--fresh``, ``--no-cache``): ask again, but still keep the answers.
    ``known_keys``: a continued session's unchanged chunks, by the key of the answer they had."""

    def __init__(self, journal: Journal | None, session_id: str | None, control: Control, *,
                 use_cache: bool = True, known_keys: dict[str, str] | None = None) -> None:  # fmt: skip
        self.journal = journal
        self.session_id = session_id
        self.control = control  # told when the store cannot be written
        self.use_cache = use_cache
        self.known_keys = dict(known_keys or {})
        self.from_cache = 0  # chunks answered from the store by an earlier run, with no call
        self.repeats = 0  # chunks whose text (and request) another chunk of this run had: answered by that one
        self._saved_keys: set[str] = set()
        self._inflight: dict[str, asyncio.Future] = {}  # cache key -> the answer of the chunk sending it now

    # ------------------------------------------------------------------ answers

    def summary(self, key: str) -> Summary | None:
        return self.read("cached_summary", key) if self.use_cache else None

    def keep_summary(self, key: str | None, summary: Summary) -> None:
        """The summary made (``key``: kept for other runs too) or found, as the session's."""
        if key is not None:
            self.write("save_summary", key, summary)
        self.write("set_session_summary", self.session_id, summary)

    async def answer(self, chunk_id: str, key: str) -> tuple[str, Any, str]:
        """The answer a chunk has already, its key, and where it comes from ("an earlier run", "a repeat"); the
        answer is None when there is none (or ``use_cache`` is off). An unchanged chunk of a continued session
        has the answer of the session's last run (whatever the summary is now); another, the answer to its
        request, made by an earlier run or by this one for another chunk of the same text (if that chunk is
        being answered now, once it is)."""
        if not self.use_cache:
            return key, None, ""
        cached = None
        if chunk_id in self.known_keys:
            cached = self.read("cached_chunk", self.known_keys[chunk_id])
            if cached is not None:
                key = self.known_keys[chunk_id]
        if cached is None:
            cached = self.read("cached_chunk", key)
        shared = cached is None and key in self._inflight
        if shared:
            cached = await asyncio.shield(self._inflight[key])  # None: that chunk failed; this one sends its own
        if cached is None:
            return key, None, ""
        if shared or key in self._saved_keys:
            self.repeats += 1
            return key, cached, "a repeat"
        self.from_cache += 1
        return key, cached, "an earlier run"

    def sending(self, key: str) -> asyncio.Future:
        """A request with this key is being sent: the future its answer (or None, if it fails) is given to."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight.setdefault(key, future)
        return future

    def sent(self, key: str, future: asyncio.Future) -> None:
        """The request is over: a chunk waiting on a failed one sends its own."""
        if not future.done():
            future.set_result(None)
        if self._inflight.get(key) is future:
            del self._inflight[key]

    def save_chunk(self, chunk: Chunk, key: str, drafts: list[CardDraft], raw: str, usage: Usage, cards: list[Card],
                   wanted: int) -> None:  # fmt: skip
        self._saved_keys.add(key)
        self.write("save_chunk", self.session_id, chunk, key, drafts, raw, usage, cards, wanted)

    def chunk_done(self, chunk: Chunk, key: str, cards: list[Card], wanted: int) -> None:
        self.write("chunk_done", self.session_id, chunk, key, cards, wanted)

    def chunk_state(self, chunk: Chunk, state: str, reason: str) -> None:
        self.write("chunk_state", self.session_id, chunk.id, chunk.index, state, reason)

    def save_server_facts(self, identity: tuple[str, ...], facts: dict | None) -> None:
        """What the run learned about its server (by provider, address and model), for the next run."""
        if facts is not None:
            self.write("save_server_facts", cache_key("server", *identity), facts)

    # ------------------------------------------------------------------ the store

    def read(self, method: str, *args: Any) -> Any:
        """A read from the store, or None when there is none (or it failed: then the run goes on without it)."""
        if self.journal is None or self.control.halted:
            return None
        try:
            return getattr(self.journal, method)(*args)
        except StoreError as exc:
            self.control.halt(str(exc))
            return None

    def write(self, method: str, *args: Any) -> None:
        """A write to the store. If it fails, the run halts: nothing new is sent, calls in flight finish in
        memory and keep their cards, and the face writes the deck."""
        if self.journal is None or self.control.halted:
            return
        try:
            getattr(self.journal, method)(*args)
        except StoreError as exc:
            self.control.halt(str(exc))
