"""Fitting a run to the server: chunk sizes and the summary's input to its context window per request, calls in
flight to its slots, and how long the run will take.

A request holds the card prompt, the title and summary, the chunk and, as it is written, the answer; all of it
must fit the window one request gets (a llama.cpp slot, Ollama's num_ctx, vLLM's max_model_len). We count with
our tokenizer and the server with its own, which may count the same text longer (Gemma's against cl100k, by up
to about a fifth on prose): ``TOKENIZER_MARGIN`` keeps that room.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .allot import allot_cards_by_size
from .prompts import COMPACT_SUMMARY_CHARS, CardRequest, fixed_prompt_tokens

TOKENIZER_MARGIN = 1.25
COMPACT_BELOW = 6144  # windows smaller than this get the short card prompt
SUMMARY_CONTEXT_TOKENS = 400  # title and summary in a full request (a summary is up to 1,500 characters)
COMPACT_SUMMARY_TOKENS = COMPACT_SUMMARY_CHARS // 4 + 30
ANSWER_BASE = 80  # tokens of an answer besides its cards (the JSON around them)
ANSWER_PER_CHUNK_TOKEN = 1.0  # a card of about 80 tokens (with its quote) for every 80 tokens of text
SUMMARY_PROMPT_TOKENS = 120  # the summary prompt without the document
SUMMARY_ANSWER_TOKENS = 250
MIN_CHUNK_TOKENS = 64  # below this a chunk holds too little to card: the window is too small for a run


@dataclass(frozen=True, slots=True)
class Fit:
    """How a run is shaped for a window of ``window`` tokens per request."""

    window: int
    chunk_tokens: int  # the largest chunk that fits, or the user's size if smaller
    overlap_tokens: int
    summary_input_tokens: int  # how much of the document the summary call may carry
    compact: bool  # the short card prompt
    shrunk: bool  # chunks are smaller than asked for

    def sentence(self) -> str:
        """The one line a run says about it (empty when nothing had to change)."""
        if not self.shrunk and not self.compact:
            return ""
        prompt = ", with the short card prompt" if self.compact else ""
        return (f"the server's context is {self.window:,} tokens per request: chunks of {self.chunk_tokens:,} "
                f"tokens{prompt}")


class WindowTooSmall(ValueError):
    """The window holds no useful chunk beside the prompt; one sentence for the user."""


def request_overhead(compact: bool) -> int:
    """Tokens of a card request besides its chunk: the prompt, the title and summary, the framing."""
    return fixed_prompt_tokens(compact) + (COMPACT_SUMMARY_TOKENS if compact else SUMMARY_CONTEXT_TOKENS) + 60


def largest_chunk(window: int, compact: bool, ratio: float = TOKENIZER_MARGIN) -> int:
    """The most chunk tokens (ours) a request may carry in ``window`` (the server's) and still leave room for the
    answer; ``ratio``: how much longer the server counts a text than we do."""
    usable = window / ratio
    return int((usable - request_overhead(compact) - ANSWER_BASE) / (1 + ANSWER_PER_CHUNK_TOKEN))


def largest_summary(window: int, ratio: float = TOKENIZER_MARGIN) -> int:
    """The most document tokens (ours) the summary call may carry in ``window``."""
    return max(128, int(window / ratio) - SUMMARY_PROMPT_TOKENS - SUMMARY_ANSWER_TOKENS)


def fit(window: int, chunk_tokens: int, overlap_tokens: int) -> Fit:
    """The chunk size, summary input and prompt for a window of ``window`` tokens. Raises WindowTooSmall."""
    compact = window < COMPACT_BELOW
    largest = largest_chunk(window, compact)
    if largest < MIN_CHUNK_TOKENS:
        raise WindowTooSmall(
            f"the server's context is {window:,} tokens per request, too small for a card prompt and a passage; "
            "start it with a larger context (llama-server: -c, and fewer slots with -np)"
        )
    size = min(chunk_tokens, largest)
    overlap = min(overlap_tokens, size // 8)
    summary_input = largest_summary(window)
    return Fit(window, size, overlap, summary_input, compact, size < chunk_tokens)


def split_for_window(text: str, tokens: int, limit: int) -> list[str]:
    """``text`` (``tokens`` long) cut into the fewest pieces of at most about ``limit`` tokens, at paragraph
    breaks where it can, else at sentences, else anywhere."""
    parts = max(2, math.ceil(tokens / max(1, limit)))
    target = len(text) / parts
    pieces: list[str] = []
    start = 0
    for _ in range(parts - 1):
        goal = int(start + target)
        cut = -1
        for mark in ("\n\n", ". ", "\n", " "):
            cut = text.rfind(mark, start + int(target * 0.5), goal + 1)
            if cut > start:
                cut += len(mark)
                break
        if cut <= start:
            cut = goal
        pieces.append(text[start:cut].strip())
        start = cut
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def wall_seconds(chunks: int, slots: int, seconds_per_call: float, *, summary: bool) -> float:
    """How long a run takes: the summary call, then the chunks in waves of ``slots``."""
    waves = math.ceil(chunks / max(1, slots)) if chunks else 0
    return seconds_per_call * (waves + (1 if summary else 0))


def describe_seconds(seconds: float) -> str:
    """"about 40 s", "about 6 minutes", "about 2.5 hours"."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"


class ServerWindow:
    """The window one request gets, as the server stated it or as its refusals revealed it, and how its
    tokenizer counts against ours; every request of the run is shaped to it."""

    def __init__(self, window: int | None = None, *, compact: bool = False) -> None:
        self.window = window
        self.compact = compact  # the short card prompt
        self.ratio = TOKENIZER_MARGIN
        self._said = False

    def learn(self, *, window: int | None, prompt_tokens: int | None, tokens: int) -> str:
        """A refusal for length of a request of ``tokens`` (ours): the window it said (or ``prompt_tokens``, the
        request as the server counted it). Returns the sentence to say the first time, else ""."""
        window = window or (int(prompt_tokens * 0.8) if prompt_tokens else None)
        if window is None:
            window = int(tokens * 0.6)  # the server said no number: assume a good deal less than was sent
        if self.window is None or window < self.window:
            self.window = window
        if prompt_tokens and tokens:
            self.ratio = max(self.ratio, prompt_tokens / tokens)
        if self.window < COMPACT_BELOW:
            self.compact = True
        if self._said:
            return ""
        self._said = True
        return f"the server's context is {self.window:,} tokens per request: what does not fit is sent in parts"

    def request_tokens(self, text_tokens: int) -> int:
        """Our count of a card request carrying ``text_tokens`` of a chunk."""
        return text_tokens + request_overhead(self.compact)

    def part_limit(self) -> int | None:
        """The most chunk tokens one request may carry in the known window (None: no window known)."""
        if self.window is None:
            return None
        return max(MIN_CHUNK_TOKENS, largest_chunk(self.window, self.compact, self.ratio))

    def summary_budget(self, budget: int) -> int:
        """The next summary input after a refusal for length of one of ``budget`` tokens."""
        fitted = self.window and largest_summary(self.window, self.ratio)
        return max(128, min(budget // 2, fitted or budget))

    def parts(self, request: CardRequest, tokens: int, *, at_least: int = 1) -> list[tuple[CardRequest, int]]:
        """``request`` as one or more requests that each fit the known window, cards shared by their size;
        with their chunk tokens."""
        limit = self.part_limit()
        if limit is None or (tokens <= limit and at_least == 1):
            return [(request, tokens)]
        texts = split_for_window(request.chunk_text, tokens, min(limit, max(1, tokens // at_least)))
        sizes = [len(t) for t in texts]
        wanted = allot_cards_by_size(sizes, request.cards_wanted)
        total = max(1, sum(sizes))
        return [(dataclasses.replace(request, chunk_text=text, cards_wanted=n, repair_of="", overlap_chars=0,
                                     compact=self.compact), max(1, tokens * len(text) // total))
                for text, n in zip(texts, wanted, strict=True) if n > 0]  # fmt: skip
