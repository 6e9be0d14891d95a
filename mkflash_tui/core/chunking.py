"""Split a Document into token-bounded chunks whose boundaries follow the content.

Units are paragraphs (a paragraph longer than a chunk is cut into sentences, then words, then characters). A
chunk ends at a section change or at a unit whose hash says "cut here", once it holds at least ``MIN_FILL`` of
its room; with no such place before the chunk is full, at the best-ranked place in that window. Every decision
depends on the text near the cut only, so an edit moves the boundaries around it and no others: an insertion at
the top does not shift every later chunk. A chunk's id is the hash of its text plus its occurrence number.

``anchors`` (the chunks of an earlier run of the same source) are kept where their text still stands: their body
starts and ends where it did, and only the text between them is cut anew. Each chunk starts with up to
``overlap_tokens`` of the previous chunk's tail and never exceeds ``chunk_tokens`` in total. Each chunk keeps the
heading path or page of its first paragraph.

``legacy_chunks`` is the packing of versions before 0.2 (greedy, ids by position), kept so sessions they made
can be read again and upgraded.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .models import Chunk, Document, legacy_chunk_id, make_chunk_id, short_hash
from .text import SENTENCE_END
from .tokens import Encoding, count_tokens

DEFAULT_CHUNK_TOKENS = 1500
DEFAULT_OVERLAP_TOKENS = 100
MIN_CHUNK_TOKENS = 64
MIN_FILL = 0.5  # a chunk is not cut by content before its body fills this share of its room
CUT_GAP = 0.5  # past that, a content cut comes on average every this share of the room
CHUNKER_VERSION = 2

Anchor = tuple[str, int, str]  # (hash of the first body unit, number of body units, hash of the body)


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
    *,
    anchors: Iterable[Anchor] = (),
) -> list[Chunk]:
    """Split ``document`` into chunks of at most ``chunk_tokens`` tokens with ``overlap_tokens`` of overlap,
    keeping the bodies of ``anchors`` (an earlier run's chunks) wherever their text is unchanged."""
    _check(chunk_tokens, overlap_tokens)
    return _ContentChunker(document, encoding, chunk_tokens, overlap_tokens).run(anchors)


def legacy_chunks(document: Document, encoding: Encoding, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """The chunks (and ids) versions before 0.2 made of ``document``; ``id`` is the content id, and
    ``card_prefix`` the old id their cards' ids begin with."""
    _check(chunk_tokens, overlap_tokens)
    return _LegacyChunker(document, encoding, chunk_tokens, overlap_tokens).run()


def _check(chunk_tokens: int, overlap_tokens: int) -> None:
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise ChunkingError(f"--chunk-tokens must be at least {MIN_CHUNK_TOKENS}.")
    if overlap_tokens < 0 or overlap_tokens > chunk_tokens // 2:
        raise ChunkingError("--overlap-tokens must be between 0 and half of --chunk-tokens.")


def unit_hash(text: str) -> str:
    return short_hash(text, 16)


class _Units:
    """Splitting a document into units, and what both packers share."""

    def __init__(self, document: Document, encoding: Encoding, limit: int, overlap: int) -> None:
        self.document = document
        self.encoding = encoding
        self.limit = limit
        self.overlap = overlap
        self.max_unit = limit - overlap - 2  # any unit fits after an overlap and separators
        self.seen: dict[str, int] = defaultdict(int)  # chunk text hash -> chunks with that text so far

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

    # ---- what both packers share

    def make_chunk(self, overlap_units: list[_Unit], body: list[_Unit], index: int, tokens: int) -> Chunk:
        text, overlap_chars = _join(overlap_units, body)
        digest = short_hash(text, 16)
        occurrence = self.seen[digest]
        self.seen[digest] += 1
        first = body[0]
        return Chunk(
            id=make_chunk_id(text, occurrence),
            index=index,
            text=text,
            tokens=tokens,
            headings=first.headings,
            page=first.page,
            overlap_chars=overlap_chars,
            anchor=(unit_hash(first.text), len(body), body_hash(body)),
            places=_places(overlap_units, body),
        )

    def fit(self, overlap_units: list[_Unit], body: list[_Unit]) -> tuple[list[_Unit], list[_Unit], list[_Unit], int]:
        """Overlap and body whose joined text is within the limit (joining can merge tokens differently than
        counting pieces did), and its tokens: the overlap shrinks first, then units at the end of the body are
        given back."""
        given_back: list[_Unit] = []
        if not overlap_units and len(body) == 1:
            return overlap_units, body, given_back, body[0].tokens  # the chunk is the unit: counted already
        tokens = self.count(_join(overlap_units, body)[0])
        while tokens > self.limit and (overlap_units or len(body) > 1):
            if overlap_units:
                overlap_units = overlap_units[1:]
            else:
                given_back.insert(0, body.pop())
            tokens = self.count(_join(overlap_units, body)[0])
        return overlap_units, body, given_back, tokens

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


class _LegacyChunker(_Units):
    """The greedy packing of versions before 0.2: each chunk is filled to the limit, cutting a paragraph into
    sentences to fill the rest; ids by position."""

    def run(self) -> list[Chunk]:
        queue = self.paragraph_units()
        chunks: list[Chunk] = []
        overlap_units: list[_Unit] = []
        body: list[_Unit] = []
        used = 0  # tokens of overlap + body, with one token per separator
        document_hash = self.document.hash

        def emit() -> None:
            nonlocal overlap_units, body, used
            overlap_units, body, given_back, tokens = self.fit(overlap_units, body)
            queue.extendleft(reversed(given_back))
            chunk = self.make_chunk(overlap_units, body, len(chunks), tokens)
            chunks.append(replace(chunk, card_prefix=legacy_chunk_id(document_hash, len(chunks))))
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


class _ContentChunker(_Units):
    """Content-defined boundaries, with an earlier run's chunk bodies kept where their text is unchanged."""

    def run(self, anchors: Iterable[Anchor]) -> list[Chunk]:
        units = list(self.paragraph_units())
        hashes = [unit_hash(u.text) for u in units]
        kept = self.find_anchors(units, hashes, anchors)
        starts = sorted(kept)
        chunks: list[Chunk] = []
        overlap_units: list[_Unit] = []
        i = 0
        next_start = 0  # index into ``starts``
        while i < len(units):
            while next_start < len(starts) and starts[next_start] <= i:
                next_start += 1
            stop = starts[next_start] if next_start < len(starts) else len(units)
            if i in kept:
                end = kept[i]
            else:
                used = sum(u.tokens + _sep_cost(u) for u in overlap_units)
                while overlap_units and used + units[i].tokens + _sep_cost(units[i]) > self.limit:
                    overlap_units = overlap_units[1:]  # only the overlap is here and the unit does not fit
                    used = sum(u.tokens + _sep_cost(u) for u in overlap_units)
                end = self.cut(units, hashes, i, stop, self.limit - used)
            overlap_units, body, given_back, tokens = self.fit(overlap_units, units[i:end])
            chunks.append(self.make_chunk(overlap_units, body, len(chunks), tokens))
            overlap_units = self.tail(body)
            i = end - len(given_back)
        return chunks

    def find_anchors(self, units: list[_Unit], hashes: list[str], anchors: Iterable[Anchor]) -> dict[int, int]:
        """Where earlier chunk bodies stand unchanged in ``units``: start index -> end index.

        ``anchors`` come in the earlier text's order. Of every place each one's body stands now, the kept ones
        are in that same order, never overlap, and cover as many units as can be: repeated text (boilerplate, a
        paragraph quoted twice) cannot pull a chunk to the wrong copy and misalign the rest."""
        anchors = [a for a in anchors if a[0] and a[1] > 0]
        if not anchors:
            return {}
        at: dict[str, list[int]] = defaultdict(list)
        for i, digest in enumerate(hashes):
            at[digest].append(i)
        candidates: list[tuple[int, int, int]] = []  # (start, end, the anchor's place in the earlier order)
        for k, (first, count, whole) in enumerate(anchors):
            for i in at.get(first, ()):
                if i + count <= len(units) and body_hash(units[i : i + count]) == whole:
                    candidates.append((i, i + count, k))
        if not candidates:
            return {}
        candidates.sort()
        # The heaviest chain, increasing in both orders, in O(n log n): a Fenwick tree of the best chain
        # ending with each anchor, filled with the candidates that end before the one being placed.
        size = len(anchors)
        tree: list[tuple[int, int]] = [(0, -1)] * (size + 1)

        def update(k: int, value: tuple[int, int]) -> None:
            k += 1
            while k <= size:
                if value > tree[k]:
                    tree[k] = value
                k += k & -k

        def best_before(k: int) -> tuple[int, int]:  # the best chain through anchors 0..k-1
            out = (0, -1)
            while k > 0:
                out = max(out, tree[k])
                k -= k & -k
            return out

        score = [0] * len(candidates)
        prev = [-1] * len(candidates)
        pending: list[tuple[int, int]] = []  # (end, candidate) not yet in the tree
        for n, (begin, end, k) in enumerate(candidates):
            while pending and pending[0][0] <= begin:
                _, m = heapq.heappop(pending)
                update(candidates[m][2], (score[m], m))
            before, link = best_before(k)
            score[n], prev[n] = before + end - begin, link
            heapq.heappush(pending, (end, n))
        n = max(range(len(candidates)), key=lambda m: (score[m], -m))
        found: dict[int, int] = {}
        while n >= 0:
            begin, end, _ = candidates[n]
            found[begin] = end
            n = prev[n]
        return found

    def cut(self, units: list[_Unit], hashes: list[str], start: int, stop: int, room: int) -> int:
        """Where the chunk whose body starts at ``start`` ends (never after ``stop``): at a section change or a
        unit whose hash is a cut point once the body holds ``MIN_FILL`` of its room; else, when the room is
        full, at the best of those places (section changes first, then the lowest hash)."""
        budget = self.limit - self.overlap
        min_body = int(budget * MIN_FILL)
        gap = max(1.0, budget * CUT_GAP)
        body = 0
        best: tuple[tuple[int, str], int] | None = None
        j = start
        while j < stop:
            unit = units[j]
            cost = unit.tokens + _sep_cost(unit)
            if j > start and body + cost > room:
                break
            body += cost
            j += 1
            if j >= stop or body < min_body:
                continue
            section = self.new_section(units[j - 1], units[j])
            if section or int(hashes[j - 1], 16) / 16**16 < unit.tokens / gap:
                return j
            rank = (1, hashes[j - 1])
            if best is None or rank < best[0]:
                best = (rank, j)
        if j >= stop:
            return stop
        return best[1] if best else j


def _sep_cost(unit: _Unit) -> int:
    # A space usually merges into the next word's token; a paragraph break is a token of its own.
    return 1 if unit.sep == "\n\n" else 0


def _places(overlap: list[_Unit], body: list[_Unit]) -> tuple[tuple[int, tuple[str, ...], int | None], ...]:
    """Where in a chunk's text the heading path or page changes (the first entry is its start)."""
    places: list[tuple[int, tuple[str, ...], int | None]] = []
    offset = 0
    for i, unit in enumerate(overlap + body):
        if i:
            offset += len(unit.sep)
        if not places or places[-1][1:] != (unit.headings, unit.page):
            places.append((offset, unit.headings, unit.page))
        offset += len(unit.text)
    return tuple(places) if len(places) > 1 else ()


def body_hash(body: list[_Unit]) -> str:
    return short_hash(_join([], body)[0], 16)


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
