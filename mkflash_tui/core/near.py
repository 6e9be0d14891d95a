"""Near-duplicate cards: one index of the cards seen so far, in order, that says which earlier card a new one
repeats. The quality gate uses it within a run; a shelf of documents uses one across its documents, in
document order; cards already in a collection can be added to it first.
"""

from __future__ import annotations

import re
import unicodedata

from .models import Card, CardKind
from .text import words

CLOZE = re.compile(r"\{\{c(\d+)::(.*?)(?:::[^}]*)?\}\}", re.S)
MAX_SAME_DELETION = 2  # clozes that delete the same term; later ones are repeats
_SPACE = re.compile(r"\s+")


def norm(text: str) -> str:
    """``text`` as compared: NFKC, case folded, punctuation and runs of space made one space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return _SPACE.sub(" ", text).strip()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 1.0 if a == b else 0.0
    return len(a & b) / len(a | b)


class NearIndex:
    """Two cards repeat each other with the same question, the same answer to nearly the same question, or the
    same sentence carded for the same answer; a term deleted by more than ``MAX_SAME_DELETION`` clozes is a
    repeat too."""

    __slots__ = ("_answers", "_deletions", "_fronts", "_sentences")

    def __init__(self) -> None:
        self._fronts: dict[str, str] = {}
        self._deletions: dict[str, list[str]] = {}  # a cloze's deleted term -> the clozes that delete it
        self._answers: dict[str, list[tuple[frozenset[str], str]]] = {}
        self._sentences: dict[tuple[str, str], str] = {}

    def repeats(self, card: Card) -> str | None:
        """The id of the earlier card ``card`` repeats (None: it is new)."""
        front, answer, sentence, terms = features(card)
        earlier = self._fronts.get(front) if front else None
        if earlier is None and answer:
            for other_terms, other_id in self._answers.get(answer, ()):
                if jaccard(terms, other_terms) >= 0.5:
                    earlier = other_id
                    break
        if earlier is None and sentence and answer:
            earlier = self._sentences.get((sentence, answer))
        if earlier is None and card.kind is CardKind.CLOZE and answer:
            same = self._deletions.get(answer, ())
            if len(same) >= MAX_SAME_DELETION:
                earlier = same[0]  # the same term deleted again and again ("covered work" 8 times)
        return earlier

    def add(self, card: Card) -> None:
        """Remember ``card``: later cards that repeat it are said to."""
        front, answer, sentence, terms = features(card)
        if card.kind is CardKind.CLOZE and answer:
            self._deletions.setdefault(answer, []).append(card.id)
        if front:
            self._fronts.setdefault(front, card.id)
        if answer:
            self._answers.setdefault(answer, []).append((terms, card.id))
        if sentence and answer:
            self._sentences.setdefault((sentence, answer), card.id)

    def check(self, card: Card, *, keep: bool = False) -> str | None:
        """The earlier card ``card`` repeats, or None after remembering it; a ``keep`` card (edited or exported)
        is never a repeat."""
        earlier = self.repeats(card)
        if earlier is not None and not keep:
            return earlier
        self.add(card)
        return None


def features(card: Card) -> tuple[str, str, str, frozenset[str]]:
    """What near-duplicates are judged by (of the card's original text, which never changes: computed once)."""
    if not card._near:
        front = norm(CLOZE.sub(lambda m: m.group(2), card.original_front))
        answer = norm(" ".join(t for _, t in CLOZE.findall(card.original_front)) or card.original_back)
        card._near = (front, answer, norm(card.quote), frozenset(words(front)))
    return card._near  # type: ignore[return-value]
