"""A run's transport in batch mode: its whole chunks through the job's ``BatchDesk``, everything else live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..providers.base import GenerationResult, TransientError
from ..transport import Answer, LiveTransport, Request
from .desk import BatchDesk, BatchMiss


class BatchTransport:
    """One run's transport in batch mode: whole chunks through ``desk``, everything else live."""

    def __init__(self, live: LiveTransport, desk: BatchDesk, session_id: str) -> None:
        self.live = live
        self.desk = desk
        self.session_id = session_id
        self.online = True
        self._missed: set[str] = set()  # requests a batch did not answer: they go live

    @property
    def provider(self) -> Any:
        return self.live.provider

    @property
    def capabilities(self):
        return self.live.capabilities

    def fit(self, window: int | None) -> None:
        self.live.fit(window)

    def deferred(self, request: Request) -> bool:
        """Answered by a batch, later (no slot of the limiter is held, no deadline applies)."""
        return (request.cards is not None and not request.part and not request.is_repair
                and request.id not in self._missed)  # fmt: skip

    async def send(self, request: Request, on_tokens: Callable[[int], None] | None = None) -> Answer:
        if not self.deferred(request):
            return await self.live.send(request, on_tokens)
        assert request.cards is not None
        provider = self.live.provider
        try:
            body = await self.desk.answer(f"{self.session_id}:{request.chunk_id}", provider.batch_body(request.cards))
        except BatchMiss as exc:
            self._missed.add(request.id)
            # Not the server failing this request as sent live: the next attempt goes live, at once.
            raise TransientError(f"{exc}; sending it live", adapted=True) from None
        result: GenerationResult = provider.batch_result(body, request.cards)
        if on_tokens:
            on_tokens(result.usage.completion_tokens)
        return result
