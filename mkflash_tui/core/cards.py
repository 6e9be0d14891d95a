"""Cards: a model's drafts made into a chunk's cards, and the chunks' cards made into the run's deck.

Functions of plain values, testable without a run: ``bound_drafts`` (how many, how long), ``make_cards`` (ids,
verbatim quotes, where in the document), and ``CardBook`` — what a run knows of the cards of the session it
continues (earlier ids to adopt, cards Anki may already have, cards already in a deck file) and how the
finished chunks' cards become the deck (repeats, the quality gate, stale cards) and how they are counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from . import quality
from .models import Card, CardDraft, Chunk, make_card_id
from .text import sentences, words

MAX_FIELD_CHARS = 2000  # a card's front or back; longer text is cut (and reported)
MAX_QUOTE_CHARS = 1000


def bound_drafts(drafts: list[CardDraft], wanted: int) -> tuple[list[CardDraft], list[str]]:
    """At most ``wanted`` drafts (first in answer order), each field cut to its limit; and what was cut."""
    notes: list[str] = []
    if len(drafts) > wanted:
        notes.append(f"kept the first {wanted} of {len(drafts)} cards in the answer")
        drafts = drafts[:wanted]
    bounded: list[CardDraft] = []
    cut = 0
    for draft in drafts:
        front, back = _cut(draft.front, MAX_FIELD_CHARS), _cut(draft.back, MAX_FIELD_CHARS)
        quote = _cut(draft.quote, MAX_QUOTE_CHARS)
        if (front, back, quote) != (draft.front, draft.back, draft.quote):
            cut += 1
            draft = dataclasses.replace(draft, front=front, back=back, quote=quote)
        bounded.append(draft)
    if cut:
        notes.append(
            f"shortened {cut} {'card' if cut == 1 else 'cards'} with a field over {MAX_FIELD_CHARS} characters"
        )
    return bounded, notes


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def make_cards(chunk: Chunk, drafts: Iterable[CardDraft], *, markdown: bool = False) -> list[Card]:
    """A chunk's cards from its drafts: ids from the chunk's card key, quotes checked against its text, a card
    identical to an earlier one of the same chunk dropped. ``markdown``: a model wrote them (not the document)."""
    cards: list[Card] = []
    seen: set[str] = set()
    for draft in drafts:
        quote_found = quality.quote_in(draft.quote, chunk.text)  # the model's own quote, before any substitution
        quote = _verbatim_quote(draft.quote, chunk.text, draft.front + " " + draft.back)
        where = _offset_of(quote, chunk.text, default=chunk.overlap_chars)
        headings, page = chunk.place_of(where) if chunk.places else (chunk.headings, chunk.page)
        card = Card(
            id=make_card_id(chunk.card_key, len(cards), draft.front, draft.back),
            chunk_id=chunk.id,
            chunk_index=chunk.index,
            ordinal=len(cards),
            front=draft.front,
            back=draft.back,
            quote=quote,
            kind=draft.kind,
            headings=headings,
            page=page,
            markdown=markdown,
        )
        key = card.dedup_key()
        if key in seen:
            continue
        seen.add(key)
        card.flags = tuple(str(f) for f in quality.check(card, quote_found=quote_found))
        cards.append(card)
    return cards


def _offset_of(quote: str, text: str, *, default: int) -> int:
    """Where ``quote`` (whitespace collapsed) starts in ``text``, by its first words; ``default`` (where the
    chunk's own text starts, after its overlap) if it has no quote or the quote is not found."""
    first, *rest = quote.split()[:8] or [""]
    if not first:
        return default
    at = text.find(first)
    while at != -1:  # what re.search(r"\s+".join(map(re.escape, words))) finds, without a pattern per card
        if _words_follow(text, at + len(first), rest):
            return at
        at = text.find(first, at + 1)
    return default


def _words_follow(text: str, pos: int, words: list[str]) -> bool:
    """Whether ``words`` follow ``pos`` in ``text``, each after at least one whitespace character."""
    for word in words:
        start = pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == start or not text.startswith(word, pos):
            return False
        pos += len(word)
    return True


def _verbatim_quote(quote: str, chunk_text: str, card_text: str) -> str:
    """The model's quote if it really occurs in the chunk, else the chunk sentence that best supports the card."""
    flat_chunk = " ".join(chunk_text.split())
    flat_quote = " ".join(quote.split()).strip().strip('"“”')
    if flat_quote and flat_quote in flat_chunk:
        return flat_quote
    target = set(words(card_text + " " + quote))
    best, best_score = "", 0.0
    for sentence in sentences(chunk_text):
        overlap = len(target & set(words(sentence)))
        if overlap > best_score:
            best, best_score = sentence, overlap
    return best


class CardBook:
    """The cards of one run: made chunk by chunk, put together as the deck in document order.

    ``previous_cards``: a continued session's cards of chunks that are gone or changed (a regenerated card with the
    same text takes over its id; the rest are stale); ``exported_ids``: the cards the session's last run would
    have exported (Anki may have notes for them); ``keep_ids``: cards already written to a deck file, which the
    quality gate never drops; ``stored``: the cards a continued session kept for its unchanged chunks, whose ids
    a card made again of the same answer takes (cards made again from Review keep the ids of those they replaced).
    """

    def __init__(self, previous_cards: Iterable[Card] = (), exported_ids: Iterable[str] = (),
                 keep_ids: Iterable[str] = (), *, drop_flagged: bool = False,
                 stored: dict[str, list[Card]] | None = None) -> None:  # fmt: skip
        # One card each: a card whose id a later chunk took over is listed under both chunks once they are gone.
        self.previous_cards: list[Card] = []
        listed: set[str] = set()
        for card in previous_cards:
            if card.id not in listed:
                listed.add(card.id)
                self.previous_cards.append(dataclasses.replace(card, stale=True))
        self._adoptable: dict[str, str] = {}
        for card in self.previous_cards:
            self._adoptable.setdefault(card.dedup_key(), card.id)
        self._adopted: set[str] = set()
        self._exported = set(exported_ids)
        self._keep = set(keep_ids)
        self.drop_flagged = drop_flagged
        self.quality: dict = {"gate": quality.GATE_VERSION, "flagged": {}, "dropped": {}}
        self._tally: dict[str, int] = {"made": 0, "kept": 0, "repeats": 0, "broken": 0}
        self._kept_at_finish: dict[str, int] = {}
        self._seen_keys: set[str] = set()
        self._stored = dict(stored or {})

    def make(self, chunk: Chunk, drafts: Iterable[CardDraft], *, markdown: bool) -> list[Card]:
        """A finished chunk's cards (earlier ids adopted), counted as they add to the deck."""
        cards = make_cards(chunk, drafts, markdown=markdown)
        self._keep_stored_ids(chunk, cards)
        self._adopt(cards)
        self._count_kept(chunk, cards)
        return cards

    def _keep_stored_ids(self, chunk: Chunk, cards: list[Card]) -> None:
        """Each card takes the id the session stored for the card of its text in this chunk."""
        stored = self._stored.pop(chunk.id, None)
        if not stored:
            return
        ids = {c.dedup_key(): c.id for c in stored}
        taken = {c.id for c in cards}
        for card in cards:
            kept = ids.get(card.dedup_key())
            if kept is not None and kept != card.id and kept not in taken:
                taken.discard(card.id)
                card.id = kept
                taken.add(kept)

    def kept_of(self, chunk_id: str) -> int:
        """The cards this chunk added to the deck when it finished: less the repeats of cards finished before it
        and the clearly broken ones. Counted once, as it finishes (the deck's own count, ``tally``, settles
        near-duplicates and document order at the end)."""
        return self._kept_at_finish.get(chunk_id, 0)

    def tally(self) -> dict[str, int]:
        """How the last deck put together came of the chunks' cards: made = kept + repeats (of a card in an
        earlier chunk, or nearly so) + broken (left out by the quality gate); stale cards are counted apart."""
        return dict(self._tally)

    def deck(self, cards_by_chunk: Iterable[list[Card]]) -> list[Card]:
        """Every card of these chunks (in document order), a card identical to one of an earlier chunk dropped,
        through the quality gate; then the stale cards. Duplicates are decided by chunk order, not by finishing
        order, so the result is deterministic."""
        seen: dict[str, int] = {}
        out: list[Card] = []
        made = repeats = 0
        for cards in cards_by_chunk:
            for card in cards:
                made += 1
                key = card.dedup_key()
                if key not in seen:
                    seen[key] = len(out)
                    out.append(card)
                else:
                    repeats += 1
                    if self._exported and card.id in self._exported and out[seen[key]].id not in self._exported:
                        out[seen[key]] = card  # the one of two identical cards that Anki already has a note for
        before = out
        out = self._gate(out)
        near = self.quality["dropped"].get(str(quality.Flag.DUPLICATE), 0)
        gated = len(before) - len(out)
        self._tally = {"made": made, "kept": len(out), "repeats": repeats + near, "broken": gated - near}
        # A card that was a duplicate last time (never exported) and is the only one of its text now takes the id
        # of the earlier card with its text, so Anki does not get that text twice.
        self._adopt(out)
        out.extend(self._stale(set(seen)))
        return out

    def _adopt(self, cards: Iterable[Card]) -> None:
        """A card with the same text as one made of the source before it changed takes that card's id (its note,
        its review history in Anki, the user's decisions about it), unless it is itself one Anki may have."""
        if not self._adoptable:
            return
        for card in cards:
            earlier = self._adoptable.get(card.dedup_key())
            if earlier is not None and earlier not in self._adopted and card.id not in self._exported:
                card.id = earlier
                self._adopted.add(earlier)

    def _count_kept(self, chunk: Chunk, cards: list[Card]) -> None:
        kept = 0
        for card in cards:
            if any(flag in quality.BROKEN or self.drop_flagged for flag in card.flags):
                continue
            key = card.dedup_key()
            if key not in self._seen_keys:
                self._seen_keys.add(key)
                kept += 1
        self._kept_at_finish[chunk.id] = kept

    def _gate(self, cards: list[Card]) -> list[Card]:
        """The quality gate over the run's cards, in document order: near-duplicates and clearly broken cards
        dropped (and counted), every other flagged card kept with its flags unless ``drop_flagged``. A card the
        user edited or that was exported before is never dropped."""
        keep = {c.id for c in cards if c.edited or c.id in self._keep}
        out, self.quality = quality.gate(cards, keep, drop_flagged=self.drop_flagged)
        return out

    def _stale(self, current: set[str]) -> list[Card]:
        """Earlier cards no chunk of this run made again: none of an unfinished chunk's cards count yet."""
        return [c for c in self.previous_cards if c.id not in self._adopted and c.dedup_key() not in current]
