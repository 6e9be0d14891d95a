"""The transport: what turns a run's requests into answers.

A ``Request`` is cards for a passage (a chunk, or a part of one) or the document's summary, named by ``id``.
``Transport.send`` gives one request's answer, or raises what the provider raises (``providers.base``). The
live transport makes one chat-completions call per request as it is sent; a transport may instead gather the
requests sent together and answer each by its id as the answers come back, in any order (a batch), behind the
same door.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .prompts import CardRequest
from .providers.base import Capabilities, GenerationResult, Provider, SummaryResult

Answer = GenerationResult | SummaryResult


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a run. ``chunk_id`` None: the summary (of ``text``, titled ``title`` if it finds none)."""

    chunk_id: str | None
    index: int = -1  # the chunk's place in the document (-1: the summary)
    cards: CardRequest | None = None
    text: str = ""
    title: str = ""
    part: str = ""  # "2/3": the second of three parts of its chunk

    @property
    def id(self) -> str:
        """Unique in a run: what an answer that comes back later is matched by."""
        name = self.chunk_id or "summary"
        return f"{name}#{self.part}" if self.part else name

    @property
    def is_repair(self) -> bool:
        return bool(self.cards and self.cards.repair_of)


class Transport(Protocol):
    online: bool  # requests leave the machine (and count as requests)

    @property
    def capabilities(self) -> Capabilities | None: ...  # what the server is known to take (None: offline)

    def fit(self, window: int | None) -> None: ...  # requests must fit this many tokens (None: not known)

    async def send(self, request: Request, on_tokens: Callable[[int], None] | None = None) -> Answer: ...


class LiveTransport:
    """Chat completions as they happen, through the provider: one call per request, streamed when it can."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.online = provider.online

    @property
    def capabilities(self) -> Capabilities | None:
        return getattr(self.provider, "capabilities", None)

    def fit(self, window: int | None) -> None:
        """The server's window as the run knows it: the provider bounds each answer to what is left of it."""
        if window is not None and hasattr(self.provider, "window"):
            self.provider.window = window  # type: ignore[attr-defined]

    async def send(self, request: Request, on_tokens: Callable[[int], None] | None = None) -> Answer:
        if request.cards is None:
            return await self.provider.summarize(request.text, request.title)
        return await self.provider.generate(request.cards, on_tokens or _ignore)


def _ignore(tokens: int) -> None:
    pass
