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
                 wrong_server: bool = False, adapted: bool = False, cut_stream: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.unreachable = unreachable  # no connection at all (refused, unknown host), not a failed answer
        self.timed_out = timed_out  # the attempt ran out of time or the stream went silent
        self.wrong_server = wrong_server  # the answer was not a chat completion (an HTML page, another API)
        # The provider changed how it asks (the server refused a response format or stream_options): send again
        # at once, without counting an attempt.
        self.adapted = adapted
        # The stream ended ([DONE]) without a finish_reason: the answer was cut, not finished. A server that does
        # this when another request arrives (llama-cpp-python) must be given one request at a time.
        self.cut_stream = cut_stream
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.rate_info = rate_info


class RequestRejected(ProviderError):
    """This request cannot succeed as sent (400, 422 …); the chunk fails, the run goes on."""


class RunRefused(ProviderError):
    """The server refuses the whole run (bad key, no quota, unknown model, nothing answers).

    ``str(error)`` is the reason with the fix a command-line user can make (``--api-key``, ``--model``); ``reason``
    is the reason alone and ``field`` the setting to correct ("key", "base_url", "model" or ""), so the app can
    point at its own field instead.
    """

    def __init__(self, reason: str, *, fix: str = "", field: str = "") -> None:
        reason = strip_controls(str(reason))
        super().__init__(f"{reason}; {fix}" if fix else reason)
        self.reason = reason
        self.fix = fix
        self.field = field


class NoBatchEngine(RunRefused):
    """``--batch`` against a server without ``/v1/files`` and ``/v1/batches``."""


class ContextTooLong(RequestRejected):
    """The request does not fit the server's context window; ``prompt_tokens`` and ``window`` are what the
    server said (None where it did not)."""

    def __init__(self, message: str, *, prompt_tokens: int | None = None, window: int | None = None) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.window = window


# How we ask for JSON, best first: OpenAI's structured outputs; JSON mode with the schema alongside (what
# llama-cpp-python's server, Anyscale and Fireworks take, turned into a grammar); plain JSON mode; the prompt alone.
FORMAT_MODES = ("json_schema", "json_object_schema", "json_object", "prompt")


@dataclass(slots=True)
class Capabilities:
    """What a server is known to accept, learned from its answers and kept per address and model."""

    format_mode: str = FORMAT_MODES[0]
    confirmed: bool = False  # a request in ``format_mode`` has been answered (else the next one probes it)
    one_at_a_time: bool = False  # it ends a running stream when another request arrives
    from_store: bool = False  # as an earlier run left them

    def as_dict(self) -> dict[str, object]:
        return {"format_mode": self.format_mode, "one_at_a_time": self.one_at_a_time}

    @classmethod
    def from_dict(cls, data: object) -> Capabilities | None:
        """Capabilities an earlier run kept, or None if they are not readable as such."""
        if not isinstance(data, dict) or data.get("format_mode") not in FORMAT_MODES:
            return None
        return cls(str(data["format_mode"]), True, bool(data.get("one_at_a_time")), from_store=True)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    drafts: list[CardDraft]
    usage: Usage
    raw: str = ""
    finish_reason: str | None = None
    rate_info: RateInfo | None = None
    notes: tuple[str, ...] = ()  # what was cut from the answer, for the report
    nothing: str = ""  # why the answer holds no cards, when it holds none on purpose ("the answer was empty")


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
