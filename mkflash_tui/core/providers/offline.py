"""The offline generator: real cards from the text with no network and no key.

It makes two kinds of card, both answered by words that occur in the chunk:

- definition questions from sentences of the form "X is …" / "X are …" / "X refers to …";
- cloze deletions of the chunk's most salient term in its most informative sentences, where salience is
  TF-IDF over the document's paragraphs (stopwords never count).

Its "summary" is extractive: the document's most central sentences.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable

from ..models import CardDraft, CardKind, Summary, Usage, short_hash
from ..prompts import CardRequest
from ..text import STOPWORDS, WORD, is_content, sentences, words
from .base import GenerationResult, ProgressCallback, SummaryResult

_PRONOUN_START = re.compile(
    r"^(it|this|that|these|those|they|he|she|there|here|we|you|i|its|their|his|her|such|which|what|each|every"
    r"|one|some|most|many|all|no|both|either|neither|another|other|much|more)\b",
    re.I,
)
_DEFINITION = re.compile(
    r"^(?P<subject>(?:(?:an?|the)\s+)?[^\s,;:]+(?:\s+[^\s,;:]+){0,6}?)\s+"
    r"(?P<verb>is|are|was|were|refers to|means|describes)\s+"
    r"(?P<predicate>.{8,240}?)[.!]?$",
    re.IGNORECASE | re.DOTALL,
)
_SUBJECT_GLUE = frozenset({"of", "and", "the", "in", "on", "for", "de", "du", "des", "der", "die", "das", "la", "le"})
_QUESTION_FOR_VERB = {
    "is": "What is {}?",
    "are": "What are {}?",
    "was": "What was {}?",
    "were": "What were {}?",
    "refers to": "What does {} refer to?",
    "means": "What does {} mean?",
    "describes": "What does {} describe?",
}


class Salience:
    """TF-IDF term weights, with document frequencies counted over a collection of paragraphs."""

    def __init__(self, paragraphs: Iterable[str]) -> None:
        self.df: Counter[str] = Counter()
        self.phrases: Counter[str] = Counter()  # adjacent content-word pairs, counted over the whole text
        self.n = 0
        for para in paragraphs:
            self.n += 1
            self.df.update(set(words(para)))
            tokens = [m.group(0).lower() for m in WORD.finditer(para)]
            self.phrases.update(f"{a} {b}" for a, b in itertools.pairwise(tokens) if is_content(a) and is_content(b))

    def idf(self, term: str) -> float:
        return math.log((1 + self.n) / (1 + self.df.get(term, 0))) + 1.0

    def weights(self, text: str) -> dict[str, float]:
        tf = Counter(words(text))
        return {term: (1 + math.log(count)) * self.idf(term) for term, count in tf.items()}


class OfflineProvider:
    """Generates cards locally. ``pace`` adds a delay per call (used by the demo so progress is visible)."""

    name = "offline"
    model = "offline"
    online = False

    def __init__(self, paragraphs: Iterable[str] = (), pace: float = 0.0) -> None:
        self.salience = Salience(paragraphs)
        self.pace = pace

    cache_identity = ("offline", "", "offline")

    async def aclose(self) -> None:
        return None

    async def summarize(self, document_text: str, fallback_title: str) -> SummaryResult:
        if self.pace:
            await asyncio.sleep(self.pace / 4)
        return SummaryResult(Summary(fallback_title, self.extractive_summary(document_text)), Usage())

    def extractive_summary(self, text: str, count: int = 3, max_chars: int = 600) -> str:
        """The ``count`` most central sentences of ``text``, in their original order."""
        candidates = sentences(text)[:2000]
        weights = self.salience.weights(text)
        scored = []
        for i, sentence in enumerate(candidates):
            terms = words(sentence)
            if len(sentence.split()) < 6 or not terms:
                continue
            score = sum(weights.get(t, 0.0) for t in terms) / math.sqrt(len(terms))
            scored.append((score, i, sentence))
        best = sorted(sorted(scored, reverse=True)[:count], key=lambda s: s[1])
        summary = " ".join(s for _, _, s in best)
        return summary[:max_chars].rstrip()

    async def generate(self, request: CardRequest, on_tokens: ProgressCallback) -> GenerationResult:
        drafts = self.cards_for(request.chunk_text, request.cards_wanted)
        tokens = sum(len(d.front.split()) + len(d.back.split()) for d in drafts)
        if self.pace:
            # Chunks take between half and one and a half ``pace`` (fixed per text), "streaming" as they go,
            # so the demo shows calls overlapping and finishing out of order, the way a real server does.
            seconds = self.pace * (0.5 + int(short_hash(request.chunk_text, 4), 16) / 0xFFFF)
            steps = 8
            for step in range(1, steps + 1):
                await asyncio.sleep(seconds / steps)
                on_tokens(tokens * step // steps)
        on_tokens(tokens)
        return GenerationResult(drafts, Usage(), "", "stop")

    def cards_for(self, text: str, wanted: int) -> list[CardDraft]:
        """Up to ``wanted`` cards from ``text``: definitions first, then clozes of salient terms."""
        if wanted <= 0:
            return []
        all_sentences = sentences(text)
        weights = self.salience.weights(text)
        drafts: list[CardDraft] = []
        used_answers: set[str] = set()
        used_sentences: set[str] = set()

        definitions = []
        for sentence in all_sentences:
            card = self.definition(sentence)
            if card is not None and card.back.lower() not in used_answers:
                definitions.append((sentence, card))
                used_answers.add(card.back.lower())

        def add_definitions(limit: int) -> None:
            while definitions and len(drafts) < limit:
                sentence, card = definitions.pop(0)
                drafts.append(card)
                used_answers.update(words(_subject_of(card.front)))
                used_sentences.add(sentence)

        # A mix reads better than a wall of "What is …?": definitions for about 60 %, clozes for the rest.
        add_definitions(math.ceil(wanted * 0.6))
        ranked = sorted(
            (
                (self.sentence_score(s, weights), i, s)
                for i, s in enumerate(all_sentences)
                if s not in used_sentences and 6 <= len(s.split()) <= 45
            ),
            reverse=True,
        )
        for _, _, sentence in ranked:
            if len(drafts) >= wanted:
                break
            term = self.best_term(sentence, weights, used_answers)
            if term is None:
                continue
            cloze = _cloze(sentence, term)
            if cloze is None:
                continue
            drafts.append(CardDraft(cloze, "", sentence, CardKind.CLOZE))
            used_answers.add(term.lower())
        add_definitions(wanted)
        return drafts

    @staticmethod
    def sentence_score(sentence: str, weights: dict[str, float]) -> float:
        terms = words(sentence)
        if not terms:
            return 0.0
        length = len(sentence.split())
        # Mid-length sentences make the best clozes: long ones are hard to remember, short ones say little.
        return sum(weights.get(t, 0.0) for t in set(terms)) / math.sqrt(length) / (1 + max(0, length - 28) / 10)

    def term_ok(self, token: str, chunk_tf: dict[str, float], used: set[str]) -> bool:
        """Could ``token`` be a cloze answer? Content words, not verb or adverb forms unless they recur."""
        low = token.lower().strip("'’-")
        if not is_content(low) or low in used:
            return False
        recurring = self.salience.df.get(low, 0) >= 2
        if low.endswith(("ly", "ed", "ing")) and not recurring:
            return False
        return recurring or token[0].isupper() or len(low) >= 7

    def best_term(self, sentence: str, weights: dict[str, float], used: set[str]) -> str | None:
        """The most salient word or two-word phrase of ``sentence`` not already used as an answer."""
        tokens = [m.group(0) for m in WORD.finditer(sentence)]
        candidates: list[tuple[float, str]] = []
        for i, token in enumerate(tokens):
            if not self.term_ok(token, weights, used):
                continue
            low = token.lower().strip("'’-")
            score = weights.get(low, 0.0)
            candidates.append((score, token))
            if i + 1 < len(tokens) and self.term_ok(tokens[i + 1], weights, used):
                phrase = f"{token} {tokens[i + 1]}"
                nxt = tokens[i + 1].lower().strip("'’-")
                if phrase in sentence and self.salience.phrases.get(f"{low} {nxt}", 0) >= 2:
                    candidates.append(((score + weights.get(nxt, 0.0)) * 0.9, phrase))
        if not candidates:
            return None
        return max(candidates, key=lambda c: (c[0], -len(c[1])))[1]

    @staticmethod
    def definition(sentence: str) -> CardDraft | None:
        """A "What is X?" card from a defining sentence, or None."""
        if len(sentence) > 300 or _PRONOUN_START.match(sentence):
            return None
        match = _DEFINITION.match(sentence)
        if not match:
            return None
        subject = match.group("subject").strip()
        predicate = match.group("predicate").strip().rstrip(".!")
        subject_words = words(subject)
        if not subject_words or len(predicate.split()) < 3:
            return None
        inner = subject.split()[1:]
        if any(w.lower() in STOPWORDS and w.lower() not in _SUBJECT_GLUE for w in inner):
            return None  # "Magma rises because it …" is a clause, not a term
        article = ""
        if subject.split()[0].lower() in ("the", "a", "an"):
            article, subject = subject.split()[0].lower() + " ", " ".join(subject.split()[1:])
        if subject.count("(") != subject.count(")"):
            return None
        display = article + (subject if _is_proper(subject) else subject[0].lower() + subject[1:])
        question = _QUESTION_FOR_VERB[match.group("verb").lower()].format(display)
        answer = predicate[0].upper() + predicate[1:]
        return CardDraft(question, answer, sentence, CardKind.BASIC)


def _is_proper(phrase: str) -> bool:
    """Keep the capital of acronyms ("DNA") and multi-word names ("Mount Etna"); lower a sentence-initial word."""
    parts = phrase.split()
    return any(c.isupper() for c in parts[0][1:]) or sum(p[0].isupper() for p in parts) >= 2


def _subject_of(question: str) -> str:
    for template in _QUESTION_FOR_VERB.values():
        prefix, _, suffix = template.partition("{}")
        if question.startswith(prefix) and question.endswith(suffix):
            return question[len(prefix) : len(question) - len(suffix)]
    return question


def _cloze(sentence: str, term: str) -> str | None:
    index = sentence.find(term)
    if index < 0:
        return None
    return f"{sentence[:index]}{{{{c1::{term}}}}}{sentence[index + len(term) :]}"
