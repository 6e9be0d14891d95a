"""How many cards each chunk, or each part of a chunk, is asked for."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .models import Chunk

TOKENS_PER_CARD = 80  # default card density: one card per this many tokens of text
MAX_CARDS_PER_CHUNK = 40


def default_cards_total(chunks: Iterable[Chunk]) -> int:
    """A sensible number of cards for a text: about one per ``TOKENS_PER_CARD`` tokens, at least 3."""
    tokens = sum(c.tokens * len(c.body) / max(1, len(c.text)) for c in chunks)
    return max(3, round(tokens / TOKENS_PER_CARD))


def cards_for_size(chunk: Chunk) -> int:
    """A chunk's cards by its own size only (so an edit elsewhere never changes it): one per
    ``TOKENS_PER_CARD`` tokens of its body, at least one."""
    body_tokens = chunk.tokens * len(chunk.body) / max(1, len(chunk.text))
    return max(1, min(MAX_CARDS_PER_CHUNK, round(body_tokens / TOKENS_PER_CARD)))


def allot_cards(chunks: list[Chunk], total: int) -> list[int]:
    """Spread ``total`` cards over chunks in proportion to their size (largest remainder, capped)."""
    if not chunks:
        return []
    sizes = [max(1, c.tokens) for c in chunks]
    whole = sum(sizes)
    shares = [total * s / whole for s in sizes]
    counts = [math.floor(x) for x in shares]
    order = sorted(range(len(chunks)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return [min(MAX_CARDS_PER_CHUNK, c) for c in counts]


def allot_cards_by_size(sizes: list[int], total: int) -> list[int]:
    """``total`` cards over parts of these sizes (largest remainder), at least one each while cards last."""
    whole = max(1, sum(sizes))
    shares = [total * size / whole for size in sizes]
    counts = [max(1, math.floor(x)) if total >= len(sizes) else math.floor(x) for x in shares]
    order = sorted(range(len(sizes)), key=lambda i: (-(shares[i] - math.floor(shares[i])), i))
    for i in order:
        if sum(counts) >= total:
            break
        counts[i] += 1
    while sum(counts) > total:
        counts[counts.index(max(counts))] -= 1
    return counts


def wanted_per_chunk(chunks: list[Chunk], total: int | None) -> list[int]:
    """Each chunk's cards: its own count when the plan gave every chunk one, else ``total`` (or a sensible total
    for the text) spread by size."""
    if chunks and all(c.cards_wanted is not None for c in chunks):
        return [int(c.cards_wanted or 0) for c in chunks]
    return allot_cards(chunks, total or default_cards_total(chunks))
