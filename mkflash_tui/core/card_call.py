"""One chunk's cards asked for: in one request, or in parts that fit the server's window, or in halves when the
answer is cut off at the model's output limit; a part the server still finds too long is cut again."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from . import fitting
from .calls import Caller, OnAttempt, OnRetry
from .models import CardDraft, ChunkStatus, Event, RunSettings, Span, SpanKind, Summary, Usage
from .parsing import OutputError
from .prompts import COMPACT_SUMMARY_CHARS, CardRequest
from .providers.base import ContextTooLong, GenerationResult
from .transport import Request

SPLIT_DEPTH = 3  # a chunk refused for its length is cut in parts this many times over at most
MIN_PART_CHARS = 300  # a part smaller than this is not cut again
MIN_HALVES_CHARS = 200  # a chunk whose answer is cut off is asked for in halves only if its text is this long
CUT_PROMPT_SHARE = 0.5  # a server reading less than this share of the prompt we sent cut it (Ollama, silently)

Learn = Callable[[ContextTooLong, int], None]


def card_request(status: ChunkStatus, summary: Summary, settings: RunSettings, *, compact: bool) -> CardRequest:
    """What a chunk's call asks for: its text, its cards, the document's title and summary, the user's asks."""
    chunk, context = status.chunk, summary.summary
    if compact and len(context) > COMPACT_SUMMARY_CHARS:
        context = context[: COMPACT_SUMMARY_CHARS - 1].rstrip() + "…"
    return CardRequest(chunk.text, chunk.location, status.cards_wanted, summary.title, context, settings.instructions,
                       language=settings.language, style=settings.style, overlap_chars=chunk.overlap_chars,
                       compact=compact)  # fmt: skip


class CardCall:
    """The call (or calls) that make one chunk's cards; ``run()`` gives their answers together."""

    def __init__(self, caller: Caller, window: fitting.ServerWindow, status: ChunkStatus, request: CardRequest, *,
                 on_tokens: Callable[[int], None], on_attempt: OnAttempt, on_retry: OnRetry, learn: Learn,
                 emit: Callable[[Event], None], now: Callable[[], float],
                 cut_off_retries: int) -> None:  # fmt: skip
        self.caller = caller
        self.window = window
        self.status = status
        self.request = request
        self.on_tokens = on_tokens
        self.on_attempt = on_attempt
        self.on_retry = on_retry
        self.learn = learn
        self._emit = emit
        self._now = now
        self.cut_off_retries = cut_off_retries

    async def run(self) -> GenerationResult:
        chunk = self.status.chunk
        parts = self.window.parts(self.request, chunk.tokens)
        try:
            if len(parts) > 1:  # the window the server revealed is smaller than this chunk
                return await self._parts(parts)
            return await self.caller.call(self._request(self.request), on_tokens=self.on_tokens,  # type: ignore[return-value]
                                          on_attempt=self.on_attempt, on_retry=self.on_retry,
                                          repair=self._repair)  # fmt: skip
        except OutputError as exc:
            if not getattr(exc, "truncated", False) or len(chunk.body) < MIN_HALVES_CHARS:
                raise
            # Cut off at the model's output limit: ask for the two halves of the chunk separately.
            self.on_retry(self.status.attempt + 1, 0.0, "answer cut off at the output limit; asking for each half")
            return await self._parts(halves(self.request), cut_off_retries=self.cut_off_retries)
        except ContextTooLong as exc:
            # Longer than the server's window: cut the chunk to fit, and send its parts.
            self.learn(exc, self.window.request_tokens(chunk.tokens))
            if len(chunk.text) < 2 * MIN_PART_CHARS:
                raise
            self.on_retry(self.status.attempt + 1, 0.0, f"{exc}; sending the chunk in parts")
            return await self._parts(self.window.parts(self.request, chunk.tokens, at_least=2))

    def _request(self, cards: CardRequest, part: str = "") -> Request:
        chunk = self.status.chunk
        return Request(chunk.id, chunk.index, cards, part=part)

    def _repair(self, current: Request, error: OutputError) -> Request:
        if getattr(error, "runaway", False):
            return current  # showing a loop back to the model only feeds it: ask again as at first
        return dataclasses.replace(current, cards=dataclasses.replace(self.request, repair_of=error.raw or "(empty)"))

    async def _parts(self, parts: list[tuple[CardRequest, int]], *, cut_off_retries: int = 0, depth: int = 0,
                     within: str = "") -> GenerationResult:  # fmt: skip
        """One call per part (each with its share of the cards); their cards together."""
        drafts: list[CardDraft] = []
        raws: list[str] = []
        notes: list[str] = []
        usage = Usage()
        chunk = self.status.chunk
        for number, (part, tokens) in enumerate(parts, 1):
            place = f"{within}{number}/{len(parts)}"
            start = self._now()
            try:
                result = await self.caller.call(self._request(part, place), on_tokens=self.on_tokens,
                                                on_attempt=self.on_attempt, on_retry=self.on_retry,
                                                cut_off_retries=cut_off_retries)  # fmt: skip
            except ContextTooLong as exc:
                if depth >= SPLIT_DEPTH or len(part.chunk_text) < 2 * MIN_PART_CHARS:
                    raise
                tokens = tokens or len(part.chunk_text) // 4
                self.learn(exc, self.window.request_tokens(tokens))
                result = await self._parts(self.window.parts(part, tokens, at_least=2),
                                           cut_off_retries=cut_off_retries, depth=depth + 1, within=place + ":")
            assert isinstance(result, GenerationResult)
            self._emit(Span(self._now(), start, SpanKind.PART, chunk.id, chunk.index, place))
            drafts.extend(result.drafts)
            raws.append(result.raw)
            usage += result.usage
            notes.extend(result.notes)
        return GenerationResult(drafts, usage, "\n".join(raws), "stop", notes=tuple(notes))


def halves(request: CardRequest) -> list[tuple[CardRequest, int]]:
    """The request as two, one per half of its text (cut at a paragraph or a sentence), each for half the cards."""
    text = request.chunk_text
    middle = len(text) // 2
    cut = text.rfind("\n\n", 0, middle + 1)
    if cut < len(text) // 4:
        cut = text.rfind(". ", 0, middle + 1) + 1 or middle
    pieces = (text[:cut].strip(), text[cut:].strip())
    wanted = request.cards_wanted
    return [(dataclasses.replace(request, chunk_text=half, cards_wanted=count, repair_of=""), 0)
            for half, count in zip(pieces, (wanted - wanted // 2, max(1, wanted // 2)), strict=True)]  # fmt: skip


class PromptCutWatch:
    """Whether the server reads the prompts it is sent: one that read far less than was sent cut the prompt to its
    window, silently (Ollama does, and then the card rules at its start are gone)."""

    def __init__(self) -> None:
        self.cut = 0  # answers whose server read far less of the prompt than was sent

    def reason(self, result: GenerationResult, expected: int, where: str) -> str:
        """Why the run must stop, once a second answer read far less than the ``expected`` tokens, else ""."""
        reported = result.usage.prompt_tokens
        if not reported or expected < 300 or reported >= CUT_PROMPT_SHARE * expected:
            return ""
        self.cut += 1
        if self.cut < 2:
            return ""  # one odd count may be a server's mistake; two are its habit
        return (f"the server at {where} read only {reported:,} of the about {expected:,} tokens of a request: it cut "
                "the prompt to fit its context window, dropping the card rules at its start; raise the server's "
                "context (Ollama: OLLAMA_CONTEXT_LENGTH, or num_ctx in a Modelfile) or lower --chunk-tokens")
