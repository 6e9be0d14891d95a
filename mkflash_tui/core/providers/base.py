"""What a card generator looks like to the engine, and the typed errors it may raise.

A provider makes exactly one attempt per call (one HTTP request for online providers); retrying is the
engine's job. Errors are sorted by what the engine should do about them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..models import CardDraft, Summary, Usage
from ..prompts import CardRequest
from ..text import strip_controls
from ..throttle import RateInfo


class ProviderError(Exception):
    """Base of the errors below; ``str(error)`` is readable by a user (and printable: a server's message may carry
    escape sequences, and it is shown on screens and stderr)."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(strip_controls(str(message)), *args)


class TransientError(ProviderError):
    """Worth retrying: rate limits, 5xx, timeouts, dropped connections."""

    def __init__(self, message: str, *, retry_after: float | None = None, rate_limited: bool = False,
                 rate_info: RateInfo | None = None, unreachable: bool = False, timed_out: bool = False,
                 wrong_server: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.unreachable = unreachable  # no connection at all (refused, unknown host), not a failed answer
        self.timed_out = timed_out  # the attempt ran out of time or the stream went silent
        self.wrong_server = wrong_server  # the answer was not a chat completion (an HTML page, another API)
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.rate_info = rate_info


class RequestRejected(ProviderError):
    """This request cannot succeed as sent (400, 422 …); the chunk fails, the run goes on."""


class RunRefused(ProviderError):
    """The server refuses the whole run (bad key, no quota, unknown model, context too long)."""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    drafts: list[CardDraft]
    usage: Usage
    raw: str = ""
    finish_reason: str | None = None
    rate_info: RateInfo | None = None
    notes: tuple[str, ...] = ()  # what was cut from the answer, for the report


@dataclass(frozen=True, slots=True)
class SummaryResult:
    summary: Summary
    usage: Usage = field(default_factory=Usage)
    rate_info: RateInfo | None = None


ProgressCallback = Callable[[int], None]


class Provider(Protocol):
    """A source of cards. ``online`` says whether calls leave the machine (and count as requests)."""

    name: str
    model: str
    online: bool
    cache_identity: tuple[str, ...]  # (provider, base URL, model): what decides answers besides the request

    async def summarize(self, document_text: str, fallback_title: str) -> SummaryResult: ...

    async def generate(self, request: CardRequest, on_tokens: ProgressCallback) -> GenerationResult: ...

    async def aclose(self) -> None: ...
