"""Each chunk's state in a run, and the events that say it changed."""

from __future__ import annotations

from collections.abc import Callable

from .journal import RunJournal
from .models import (
    Card,
    Chunk,
    ChunkFailed,
    ChunkFinished,
    ChunkProgress,
    ChunkQueued,
    ChunkRetrying,
    ChunkStarted,
    ChunkState,
    ChunkStatus,
    Event,
    RunSettings,
    Usage,
)
from .text import strip_controls


class ChunkStates:
    """``status``: what the run knows of each chunk right now, by id (in document order)."""

    def __init__(self, chunks: list[Chunk], wanted: list[int], settings: RunSettings, journal: RunJournal, *,
                 emit: Callable[[Event], None], now: Callable[[], float]) -> None:  # fmt: skip
        self.status: dict[str, ChunkStatus] = {c.id: ChunkStatus(c, n) for c, n in zip(chunks, wanted, strict=True)}
        self.settings = settings
        self.journal = journal
        self._emit = emit
        self._now = now
        self.finished = 0  # chunks that have finished so far
        self.revision = 0  # changes whenever a chunk's cards do: it finishes, or its cards are made again

    def replace(self, chunk_id: str, cards: list[Card], key: str) -> None:
        """A finished chunk's cards are now ``cards``, made of the answer kept under ``key`` (``core.remake``)."""
        status = self.status[chunk_id]
        status.cards, status.key = list(cards), key
        self.revision += 1

    def queue_all(self) -> list[str]:
        """Report every chunk as queued; returns their ids in document order."""
        for status in self.status.values():
            self._emit(ChunkQueued(self._now(), status.chunk.id, status.chunk.index))
        return list(self.status)

    def requeue_failed(self) -> list[str]:
        """Failed and cancelled chunks back in the queue; returns their ids."""
        ids = []
        for status in self.status.values():
            if status.state in (ChunkState.FAILED, ChunkState.CANCELLED):
                status.state = ChunkState.QUEUED
                status.reason = ""
                status.raw_output = ""
                status.attempt = 0
                ids.append(status.chunk.id)
                self._emit(ChunkQueued(self._now(), status.chunk.id, status.chunk.index))
        return ids

    def progress(self, status: ChunkStatus) -> Callable[[int], None]:
        """What a call streaming this chunk's answer reports its tokens to (an event at most every
        ``progress_interval`` seconds)."""
        last = [0.0]
        chunk = status.chunk

        def on_tokens(tokens: int) -> None:
            status.tokens = tokens
            now = self._now()
            if now - last[0] >= self.settings.progress_interval:
                last[0] = now
                self._emit(ChunkProgress(now, chunk.id, chunk.index, tokens))

        return on_tokens

    def started(self, status: ChunkStatus, attempt: int) -> None:
        status.attempt = attempt
        status.state = ChunkState.RUNNING
        status.tokens = 0
        if status.started_at is None:
            status.started_at = self._now()
        self._emit(ChunkStarted(self._now(), status.chunk.id, status.chunk.index, attempt))

    def retrying(self, status: ChunkStatus, attempt: int, wait: float, reason: str) -> None:
        status.state = ChunkState.RETRYING
        self._emit(ChunkRetrying(self._now(), status.chunk.id, status.chunk.index, attempt, wait, reason))

    def skipped(self, status: ChunkStatus) -> ChunkStatus:
        status.state = ChunkState.SKIPPED
        status.finished_at = self._now()
        self._emit(ChunkFinished(self._now(), status.chunk.id, status.chunk.index, (), Usage(), 0.0, skipped=True))
        return status

    def done(self, status: ChunkStatus, cards: list[Card], usage: Usage, *, raw: str, trimmed: list[str],
             nothing: str = "") -> ChunkStatus:  # fmt: skip
        """The chunk finished with these cards (``nothing``: why it has none, when it has none on purpose)."""
        chunk = status.chunk
        status.cards = cards
        self.finished += 1
        self.revision += 1
        status.raw_output = raw
        status.trimmed = trimmed
        status.state = ChunkState.DONE
        status.finished_at = self._now()
        seconds = status.finished_at - (status.finished_at if status.started_at is None else status.started_at)
        note = "" if cards else (nothing or "the model gave no cards for this passage")
        self._emit(ChunkFinished(self._now(), chunk.id, chunk.index, tuple(cards), usage, seconds, note=note))
        return status

    def fail(self, status: ChunkStatus, reason: str, *, raw: str = "", cancelled: bool = False) -> ChunkStatus:
        reason = strip_controls(reason)  # shown on the board, in the log and on stderr
        status.state = ChunkState.CANCELLED if cancelled else ChunkState.FAILED
        self.journal.chunk_state(status.chunk, status.state.value, reason)
        status.reason = reason
        status.raw_output = raw
        status.finished_at = self._now()
        chunk = status.chunk
        self._emit(ChunkFailed(self._now(), chunk.id, chunk.index, reason, raw, cancelled=cancelled))
        return status

    def counts(self) -> dict[str, int]:
        """Chunks by state: done (or skipped), failed, cancelled (or not sent), running, and the total."""
        states = [s.state for s in self.status.values()]
        return {
            "done": sum(1 for s in states if s.finished),
            "failed": states.count(ChunkState.FAILED),
            "cancelled": states.count(ChunkState.CANCELLED),
            "running": states.count(ChunkState.RUNNING) + states.count(ChunkState.RETRYING),
            "total": len(states),
        }

    def failures(self) -> list[ChunkStatus]:
        return [s for s in self.status.values() if s.state in (ChunkState.FAILED, ChunkState.CANCELLED)]
