"""Split a Document into token-bounded chunks.

Cuts fall at paragraph boundaries where possible, then sentences, then words; a "word" longer than a chunk
(a 1 MB line with no spaces) is cut by characters. Each chunk starts with up to ``overlap_tokens`` of the
previous chunk's tail and never exceeds ``chunk_tokens`` in total. Each chunk keeps the heading path or page
of its first paragraph.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, replace

from .models import Chunk, Document, make_chunk_id
from .text import SENTENCE_END
from .tokens import Encoding, count_tokens

DEFAULT_CHUNK_TOKENS = 1500
DEFAULT_OVERLAP_TOKENS = 100
MIN_CHUNK_TOKENS = 64


class ChunkingError(ValueError):
    """Chunking settings that cannot work (e.g. overlap not smaller than the chunk)."""


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    tokens: int
    level: int  # 0 paragraph, 1 sentence, 2 word group, 3 character cut
    sep: str  # what stands between this unit and the one before it in the source
    headings: tuple[str, ...]
    page: int | None


def chunk_document(
    document: Document,
    encoding: Encoding,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Split ``document`` into chunks of at most ``chunk_tokens`` tokens with ``overlap_tokens`` of overlap."""
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise ChunkingError(f"--chunk-tokens must be at least {MIN_CHUNK_TOKENS}.")
    if overlap_tokens < 0 or overlap_tokens > chunk_tokens // 2:
        raise ChunkingError("--overlap-tokens must be between 0 and half of --chunk-tokens.")
    return _Chunker(document, encoding, chunk_tokens, overlap_tokens).run()


class _Chunker:
    def __init__(self, document: Document, encoding: Encoding, limit: int, overlap: int) -> None:
        self.document = document
        self.encoding = encoding
        self.limit = limit
        self.overlap = overlap
        self.max_unit = limit - overlap - 2  # any unit fits after an overlap and separators
        self.document_hash = document.hash  # computed once: it hashes the whole text

    def count(self, text: str) -> int:
        return count_tokens(self.encoding, text)

    # ---- splitting into units

    def paragraph_units(self) -> deque[_Unit]:
        units: deque[_Unit] = deque()
        for block in self.document.blocks:
            for para in re.split(r"\n\s*\n", block.text):
                para = para.strip()
                if not para:
                    continue
                unit = _Unit(para, self.count(para), 0, "\n\n", block.headings, block.page)
                if unit.tokens > self.max_unit:
                    units.extend(self.split(unit))
                else:
                    units.append(unit)
        return units

    def split(self, unit: _Unit) -> list[_Unit]:
        """Split a unit one level finer, recursively until every piece fits ``max_unit``."""
        if unit.level == 0:
            pieces = [p for p in SENTENCE_END.split(unit.text) if p.strip()]
            level = 1
        elif unit.level == 1:
            pieces = self.word_groups(unit.text)
            level = 2
        else:
            pieces = self.char_cuts(unit.text)
            level = 3
        if len(pieces) <= 1 and level < 3:
            return self.split(replace(unit, level=level))
        out: list[_Unit] = []
        for piece in pieces:
            if level < 3:
                piece = piece.strip()
            if not piece:
                continue
            sep = unit.sep if not out else ("" if level == 3 else " ")
            sub = _Unit(piece, self.count(piece), level, sep, unit.headings, unit.page)
            if sub.tokens > self.max_unit and level < 3:
                out.extend(self.split(sub))
            else:
                out.append(sub)
        return out

    def word_groups(self, text: str) -> list[str]:
        """Group words into pieces of roughly a quarter of the unit bound."""
        words = text.split()
        target = max(1, self.max_unit // 4)
        groups: list[str] = []
        current: list[str] = []
        current_tokens = 0
        for word in words:
            tokens = self.count(" " + word) if len(word) < 2000 else self.max_unit + 1
            if current and current_tokens + tokens > target:
                groups.append(" ".join(current))
                current, current_tokens = [], 0
            current.append(word)
            current_tokens += tokens
        if current:
            groups.append(" ".join(current))
        return groups

    def char_cuts(self, text: str) -> list[str]:
        """Cut text with no usable boundaries by characters, each piece within ``max_unit`` tokens."""
        pieces: list[str] = []
        start = 0
        probe = text[:20000]
        chars_per_token = max(1.0, len(probe) / max(1, self.count(probe)))
        while start < len(text):
            size = max(1, int(self.max_unit * chars_per_token))
            while size > 1 and self.count(text[start : start + size]) > self.max_unit:
                size = max(1, int(size * 0.85))
            pieces.append(text[start : start + size])
            start += size
        return pieces

    # ---- packing units into chunks

    def run(self) -> list[Chunk]:
        queue = self.paragraph_units()
        chunks: list[Chunk] = []
        overlap_units: list[_Unit] = []
        body: list[_Unit] = []
        used = 0  # tokens of overlap + body, with one token per separator

        def emit() -> None:
            nonlocal overlap_units, body, used
            text, overlap_chars = _join(overlap_units, body)
            while self.count(text) > self.limit and (overlap_units or len(body) > 1):
                # Joining can merge tokens differently than counting pieces did; give back until it fits.
                if overlap_units:
                    overlap_units = overlap_units[1:]
                else:
                    queue.appendleft(body.pop())
                text, overlap_chars = _join(overlap_units, body)
            first = body[0]
            chunks.append(
                Chunk(
                    id=make_chunk_id(self.document_hash, len(chunks)),
                    index=len(chunks),
                    text=text,
                    tokens=self.count(text),
                    headings=first.headings,
                    page=first.page,
                    overlap_chars=overlap_chars,
                )
            )
            overlap_units = self.tail(body)
            body = []
            used = sum(u.tokens + _sep_cost(u) for u in overlap_units)

        while queue or body:
            if not queue:
                emit()  # may hand a unit back to the queue if joining made the chunk too long
                continue
            unit = queue[0]
            if body and self.new_section(body[0], unit) and used >= self.limit // 2:
                emit()
                continue
            if used + unit.tokens + _sep_cost(unit) <= self.limit:
                body.append(queue.popleft())
                used += unit.tokens + _sep_cost(unit)
                continue
            room = self.limit - used
            if unit.level < 2 and body and room >= self.limit // 5:
                # Fill the rest of this chunk with sentences (or word groups) of the next paragraph.
                queue.popleft()
                queue.extendleft(reversed(self.split(unit)))
                continue
            if not body:
                # Only the overlap is here and the unit still does not fit: shrink the overlap.
                overlap_units = overlap_units[1:]
                used = sum(u.tokens + _sep_cost(u) for u in overlap_units)
                continue
            emit()
        return chunks

    @staticmethod
    def new_section(first: _Unit, unit: _Unit) -> bool:
        return first.headings[:2] != unit.headings[:2] or (first.page is not None and first.page != unit.page)

    def tail(self, body: list[_Unit]) -> list[_Unit]:
        """The end of a chunk's body, up to ``overlap`` tokens, in sentence or word pieces."""
        if not self.overlap:
            return []
        picked: list[_Unit] = []
        total = 0
        for unit in reversed(body):
            pieces = [unit] if unit.tokens + _sep_cost(unit) <= self.overlap - total else self.split_for_tail(unit)
            for piece in reversed(pieces):
                if total + piece.tokens + _sep_cost(piece) > self.overlap:
                    return picked
                picked.insert(0, piece)
                total += piece.tokens + _sep_cost(piece)
        return picked

    def split_for_tail(self, unit: _Unit) -> list[_Unit]:
        if unit.level >= 3:
            return []
        pieces = self.split(unit)
        if len(pieces) == 1 and pieces[0].level < 3:
            return self.split_for_tail(pieces[0])
        return pieces


def _sep_cost(unit: _Unit) -> int:
    # A space usually merges into the next word's token; a paragraph break is a token of its own.
    return 1 if unit.sep == "\n\n" else 0


def _join(overlap: list[_Unit], body: list[_Unit]) -> tuple[str, int]:
    parts: list[str] = []
    overlap_chars = 0
    for i, unit in enumerate(overlap + body):
        if i:
            parts.append(unit.sep)
        if i == len(overlap):
            overlap_chars = sum(len(p) for p in parts)
        parts.append(unit.text)
    return "".join(parts), overlap_chars
