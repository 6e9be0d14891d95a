"""Fitting a run to the server: chunk sizes and the summary's input to its context window per request, calls in
flight to its slots, and how long the run will take.

A request holds the card prompt, the title and summary, the chunk and, as it is written, the answer; all of it
must fit the window one request gets (a llama.cpp slot, Ollama's num_ctx, vLLM's max_model_len). We count with
our tokenizer and the server with its own, which may count the same text longer (Gemma's against cl100k, by up
to about a fifth on prose): ``TOKENIZER_MARGIN`` keeps that room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .prompts import COMPACT_SUMMARY_CHARS, fixed_prompt_tokens

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
