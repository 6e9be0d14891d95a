"""What the user decided about the cards: deletions and cards made again (with multi-level undo), edits and a
text filter.

The review never copies cards: it keeps the ids of deleted ones and edits cards in place, so whatever the run
holds, minus what was deleted, is exactly what gets exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .models import Card

Decisions = dict[str, tuple[bool, str | None, str | None]]  # card id -> (deleted, edited front, edited back)


@dataclass(slots=True)
class Review:
    """Decisions over a growing list of cards. ``version`` changes whenever what would be exported changes."""

    deleted: dict[str, Card] = field(default_factory=dict)
    undo_stack: list[object] = field(default_factory=list)  # a deleted card's id, or what its owner undoes
    version: int = 0
    listeners: list[Callable[[str, Card], None]] = field(default_factory=list)

    def keep(self, cards: Iterable[Card]) -> list[Card]:
        """``cards`` without the deleted ones, in the same order."""
        return [c for c in cards if c.id not in self.deleted]

    def delete(self, card: Card) -> None:
        """Remove ``card`` from the export; ``undo`` brings it back."""
        if card.id in self.deleted:
            return
        self.deleted[card.id] = card
        self.undo_stack.append(card.id)
        self._changed("delete", card)

    def replaced(self, entry: object) -> None:
        """Cards were replaced (made again): ``undo`` gives ``entry`` back, in turn with the deletions, for its
        owner to undo."""
        self.undo_stack.append(entry)
        self.version += 1

    def undo(self) -> Card | object | None:
        """Restore the most recently deleted card still deleted, or give back the latest ``replaced`` entry,
        whichever came last; None when there is nothing to undo."""
        while self.undo_stack:
            entry = self.undo_stack.pop()
            if not isinstance(entry, str):
                self.version += 1
                return entry
            card = self.deleted.pop(entry, None)
            if card is not None:
                self._changed("undo", card)
                return card
        return None

    def edit(self, card: Card, front: str, back: str) -> bool:
        """Change a card's text in place; returns whether anything changed. Empty fronts are refused."""
        front, back = front.strip(), back.strip()
        if not front:
            raise ValueError("a card needs a front")
        if (front, back) == (card.front, card.back):
            return False
        card.front, card.back = front, back
        self._changed("edit", card)
        return True

    def adopt(self, cards: Iterable[Card], decisions: Decisions) -> None:
        """Apply what the user decided in an earlier session to newly made ``cards``: their edits, and their
        deletions (which stay deleted but are not on this session's undo stack)."""
        for card in cards:
            deleted, front, back = decisions.get(card.id, (False, None, None))
            if front is not None:
                card.front, card.back = front, back or ""
            if deleted:
                self.deleted[card.id] = card

    def _changed(self, what: str, card: Card) -> None:
        self.version += 1
        for listener in self.listeners:
            listener(what, card)


def matches(card: Card, query: str) -> bool:
    """Whether every word of ``query`` occurs (case-insensitively) in the card's front, back, quote or source."""
    haystack = " ".join((card.front, card.back, card.quote, card.location)).casefold()
    return all(term in haystack for term in query.casefold().split())


def apply_decisions(cards: Iterable[Card], decisions: Decisions) -> list[Card]:
    """``cards`` as the user left them in an earlier session: deleted ones dropped, edits applied in place."""
    cards = list(cards)
    review = Review()
    review.adopt(cards, decisions)
    return review.keep(cards)
