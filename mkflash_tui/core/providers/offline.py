"""The offline generator: real cards from the text with no network and no key.

It makes three kinds of card, all answered by words that occur in the chunk, and rather fewer than weak ones:

- term → definition cards from the text's structure (glossaries, definition lists: ``glossary``);
- definition questions from sentences of the form "X is a …" / "X are …" / "X refers to …" (English only),
  where X is a real noun phrase and the answer says what X is;
- cloze deletions of the chunk's most salient term in its most informative sentences, where salience is
  TF-IDF over the document's paragraphs, and a term is never a function word or an everyday word of the text's
  language (``core.lexicon``: real word frequencies).

Only sentences that stand alone are used (``core.standalone``), and every candidate goes through the quality
gate's checks (``core.quality``) before it is kept: code, captions, list items, boilerplate, pointers elsewhere
and vague questions never become cards. Sentences
of the chunk's overlap (the end of the previous chunk) are left to that chunk, so a sentence is carded once.

Its "summary" is extractive: the document's most central sentences.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from .. import lexicon, quality
from ..models import Card, CardDraft, CardKind, Summary, Usage, normalise_for_dedup, short_hash
from ..prompts import CardRequest
from ..standalone import HEADING_LINE, PRONOUN_START, leans, stands_alone
from ..text import FUNCTION_WORDS, STOPWORDS, WORD, detect_language, is_content, sentences, words
from . import glossary
from .base import GenerationResult, ProgressCallback, SummaryResult

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
        self.tf: Counter[str] = Counter()  # content words over the whole text
        self.names: Counter[str] = Counter()  # words written with a capital inside sentences (names, acronyms)
        self.spelling: dict[str, str] = {}  # a name as first written ("KStars", "Git")
        self.phrases: Counter[str] = Counter()  # adjacent content-word pairs, counted over the whole text
        self.n = 0
        for para in _bounded(paragraphs):
            self.n += 1
            terms = words(para)
            self.df.update(set(terms))
            self.tf.update(terms)
            found = list(WORD.finditer(para))
            tokens = [m.group(0).lower() for m in found]
            self.phrases.update(f"{a} {b}" for a, b in itertools.pairwise(tokens) if is_content(a) and is_content(b))
            for before, match in itertools.pairwise(found):
                between = para[before.end() : match.start()]
                if match.group(0)[:1].isupper() and not re.search(r"[.!?:]", between):
                    self.names[match.group(0).lower()] += 1
                    self.spelling.setdefault(match.group(0).lower(), match.group(0))

    def idf(self, term: str) -> float:
        return math.log((1 + self.n) / (1 + self.df.get(term, 0))) + 1.0

    def weights(self, text: str) -> dict[str, float]:
        tf = Counter(words(text))
        return {term: (1 + math.log(count)) * self.idf(term) for term, count in tf.items()}


PIECE_CHARS = 20_000  # a "paragraph" longer than this (a one-line file) is read as pieces of about this size


def _bounded(paragraphs: Iterable[str]) -> Iterator[str]:
    """The paragraphs, a very long one cut at white space into pieces: memory stays in proportion to a piece, not
    to a 20 MB line (its word matches alone took 40 times its size)."""
    for para in paragraphs:
        start = 0
        while len(para) - start > PIECE_CHARS:
            cut = para.rfind(" ", start + PIECE_CHARS // 2, start + PIECE_CHARS)
            cut = cut if cut > start else start + PIECE_CHARS
            yield para[start:cut]
            start = cut
        yield para[start:] if start else para


class OfflineProvider:
    """Generates cards locally. ``pace`` adds a delay per call (used by the demo so progress is visible)."""

    name = "offline"
    model = "offline"
    online = False

    def __init__(self, paragraphs: Iterable[str] = (), pace: float = 0.0) -> None:
        paragraphs = list(paragraphs)
        self.salience = Salience(paragraphs)
        self.language = detect_language("\n\n".join(paragraphs[:400]))
        self.function_words = FUNCTION_WORDS.get(self.language, frozenset())
        self.title_words: frozenset[str] = frozenset()
        # The name the text is about (the commonest one, if common): "Rust" in a book on Rust is no answer.
        top = self.salience.names.most_common(1)
        self.topic = top[0][0] if top and top[0][1] >= 5 else ""
        self.topic_name = self.salience.spelling.get(self.topic, "")
        self.pace = pace

    def set_title(self, title: str) -> None:
        """The document's title: its words are never the answer of a cloze (every card is about them)."""
        self.title_words = frozenset(words(title))

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
        drafts = self.cards_for(request.chunk_text, request.cards_wanted + len(request.again),
                                overlap_chars=request.overlap_chars)  # fmt: skip
        if request.again:
            # Made again (it takes no note): the next best cards of the chunk, leaving out those it replaces (none
            # when the chunk holds no others).
            before = {(normalise_for_dedup(front), normalise_for_dedup(back)) for front, back in request.again}
            others = [d for d in drafts if (normalise_for_dedup(d.front), normalise_for_dedup(d.back)) not in before]
            drafts = others[: request.cards_wanted]
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

    def cards_for(self, text: str, wanted: int, *, overlap_chars: int = 0) -> list[CardDraft]:
        """Up to ``wanted`` cards from ``text`` (its first ``overlap_chars`` belong to the previous chunk): the
        terms its structure defines first, then definitions, then clozes of salient terms; none that the quality
        gate would flag, none the generator is unsure of (fewer cards rather than weak ones)."""
        if wanted <= 0:
            return []
        paragraphs = [p for p in re.split(r"\n\s*\n", text[overlap_chars:]) if p.strip()]
        body = HEADING_LINE.sub(r"\1\n\n", text[overlap_chars:])
        drafts: list[CardDraft] = []
        used_answers: set[str] = set()
        used_sentences: set[str] = set()
        for entry in glossary.entries(paragraphs, self.language):
            # A definition's sentences are carded with their term or not at all: without it they are riddles.
            used_sentences.update(sentences(entry.paragraph))
            if len(drafts) >= wanted or entry.term.lower() in used_answers or leans(entry.definition, self.language):
                continue  # "This is smart enough to …": the definition leans on a sentence that is not there
            answer = entry.definition[0].upper() + entry.definition[1:]
            draft = CardDraft(glossary.question(entry.term, self.language, self.topic_name), answer,
                              entry.definition, CardKind.BASIC)  # fmt: skip
            if _passes(draft):
                drafts.append(draft)
                used_answers.add(entry.term.lower())
                used_answers.update(words(entry.term))
        # Questions and exclamations are rhetoric, not facts; markup, code and program output are not prose; a
        # sentence that leans on another (a pronoun, "the parameter") cannot stand alone on a card.
        all_sentences = [s for s in sentences(body) if s not in used_sentences and stands_alone(s, self.language)]
        weights = self.salience.weights(text)

        definitions = []
        if self.language == "en":  # the patterns are English verbs; other languages get clozes only
            for sentence in all_sentences:
                card = self.definition(sentence)
                if card is not None and card.back.lower() not in used_answers and _passes(card):
                    definitions.append((sentence, card))
                    used_answers.add(card.back.lower())

        def add_definitions(limit: int) -> None:
            while definitions and len(drafts) < limit:
                sentence, card = definitions.pop(0)
                drafts.append(card)
                used_answers.update(words(_subject_of(card.front)))
                used_sentences.add(sentence)

        # A mix reads better than a wall of "What is …?": definitions for about 60 %, clozes for the rest.
        add_definitions(max(len(drafts), math.ceil(wanted * 0.6)))
        ranked = sorted(
            (
                (self.sentence_score(s, weights), i, s)
                for i, s in enumerate(all_sentences)
                if s not in used_sentences and 6 <= len(s.split()) <= 45
            ),
            reverse=True,
        )
        # Clozes delete a term of the document (a name, a word that recurs without being everyday). A short or
        # plain passage may have none: then a second, lenient pass takes any content word of five letters.
        for lenient in (False, True):
            if lenient and (drafts or definitions):
                break
            for _, _, sentence in ranked:
                if len(drafts) >= wanted:
                    break
                if sentence in used_sentences:
                    continue
                term = self.best_term(sentence, weights, used_answers, lenient=lenient)
                if term is None:
                    continue
                cloze = _cloze(sentence, term)
                if cloze is None:
                    continue
                draft = CardDraft(cloze, "", sentence, CardKind.CLOZE)
                if not _passes(draft):
                    continue
                drafts.append(draft)
                used_sentences.add(sentence)
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
        if not is_content(low) or low in used or low in self.function_words:
            return False
        if lexicon.is_function_word(low, self.language):
            return False
        if any(part in self.function_words for part in re.split(r"['’]", low)):
            return False  # "qu'il", "jusqu'à": an elided function word
        recurring = self.salience.df.get(low, 0) >= 2
        if low.endswith(("ly", "ed", "ing")) and not recurring:
            return False
        return recurring or token[0].isupper() or len(low) >= 7

    def is_term(self, low: str, token: str, *, lenient: bool = False) -> bool:
        """A word worth asking for on its own: a name (capitalised inside a sentence), or a word that recurs in
        the document without being everywhere (a word in most paragraphs is the topic itself: too easy).
        ``lenient``: any word of five letters or more, or with a capital."""
        if lenient:
            return len(low) >= 5 or token[:1].isupper()
        if token[:1].isupper():
            return self.salience.names.get(low, 0) >= 2 or (token.isupper() and len(token) >= 2)
        df, n = self.salience.df.get(low, 0), max(1, self.salience.n)
        if lexicon.is_everyday(low, self.language):
            return False
        return len(low) >= 5 and self.salience.tf.get(low, 0) >= 2 and 2 <= df <= max(3, 0.12 * n)

    def best_term(self, sentence: str, weights: dict[str, float], used: set[str], *,
                  lenient: bool = False) -> str | None:  # fmt: skip
        """The most salient word or two-word phrase of ``sentence`` not already used as an answer."""
        matches = list(WORD.finditer(sentence))
        tokens = [m.group(0) for m in matches]
        candidates: list[tuple[float, str]] = []
        for i, token in enumerate(tokens):
            if i == 0 or "'" in token or "’" in token:
                continue  # a sentence's first word is capitalised by position, not a name; contractions are not terms
            if not self.term_ok(token, weights, used) or token.lower() in self.title_words:
                continue  # the document's own subject ("Rust" in a book on Rust) is too easy to guess
            follows = sentence[matches[i].end() : matches[i].end() + 2]
            if len(follows) == 2 and follows[0] == "." and follows[1].isalpha():
                continue  # part of a name like "Node.js"
            if sentence[matches[i].start() - 1 : matches[i].start()] in (".", "_", "`") and i:
                continue  # "net.Socket", "_religionis": part of a longer name
            if sentence[: matches[i].start()].count("`") % 2:
                continue  # inside `code`
            if not lenient and (
                token.lower() == self.topic
                or sentence[: matches[i].start()].count("(") > sentence[: matches[i].start()].count(")")
            ):
                continue  # the text's own topic, or an aside in parentheses
            before = tokens[i - 1].lower()
            if self.language == "en" and token.islower() and (
                before in ("to", "will", "may", "can", "must", "not", "cannot", "should") or before.endswith("ly")
                or "-" in token
            ):
                continue  # a verb ("to specify", "automatically terminate") or a compound adjective
            low = token.lower().strip("'’-")
            score = weights.get(low, 0.0)
            if self.single_ok(token, low, sentence, matches[i].end(), lenient=lenient) and not _part_of_more(
                sentence, matches, i, self.salience.phrases, self.language
            ):
                candidates.append((score, token))  # a single word: a term, not an everyday word
            nouny = not tokens[i + 1 if i + 1 < len(tokens) else i].lower().endswith(("ing", "ed", "ly")) and not (
                token.lower().endswith(("ing", "ly"))
            )
            german_noun = self.language != "de" or tokens[i + 1 : i + 2] == [] or tokens[i + 1][:1].isupper()
            # (German writes nouns with a capital: "systemd gesteuert" is a name and a verb)
            if i + 1 < len(tokens) and nouny and german_noun and self.term_ok(tokens[i + 1], weights, used):
                phrase = f"{token} {tokens[i + 1]}"
                nxt = tokens[i + 1].lower().strip("'’-")
                verb_after_name = token[:1].isupper() and nxt.endswith("s") and not tokens[i + 1][:1].isupper()
                if (
                    phrase in sentence
                    and self.salience.phrases.get(f"{low} {nxt}", 0) >= 3
                    and low not in _MODIFIERS
                    and not verb_after_name
                    and not (lexicon.is_everyday(low, self.language) and lexicon.is_everyday(nxt, self.language))
                    and not _repeats(sentence, phrase, matches[i].start())
                ):
                    candidates.append(((score + weights.get(nxt, 0.0)) * 0.9, phrase))
        if not candidates:
            return None
        return max(candidates, key=lambda c: (c[0], -len(c[1])))[1]

    def single_ok(self, token: str, low: str, sentence: str, end: int, *, lenient: bool) -> bool:
        """Whether one word of ``sentence`` (ending at ``end``) is a sure cloze answer: a term of the document, not
        an everyday word (by the language's word frequencies), not a verb or an adverb, not repeated elsewhere on
        the card."""
        if lexicon.is_everyday(low, self.language) or _repeats(sentence, token, end - len(token)):
            return False
        if self.language == "en" and (low.endswith(("ed", "ing", "ly")) or low in _NOT_TERMS or _superlative(low)):
            return False
        if self.language == "de" and not token[:1].isupper():
            return False  # German writes its nouns with a capital: a small word is a verb, an adjective, …
        if self.language in ("es", "it", "fr") and low.endswith(_VERB_ENDINGS[self.language]):
            return False
        return self.is_term(low, token, lenient=lenient)

    @staticmethod
    def definition(sentence: str) -> CardDraft | None:
        """A "What is X?" card from a defining sentence, or None."""
        if len(sentence) > 300 or PRONOUN_START.match(sentence):
            return None
        match = _DEFINITION.match(sentence)
        if not match:
            return None
        subject = match.group("subject").strip()
        predicate = match.group("predicate").strip().rstrip(".!")
        subject_words = words(subject)
        if not subject_words or len(predicate.split()) < 3:
            return None
        if not _defines(match.group("verb").lower(), predicate) or re.search(r"\(\)|[_=<>/\\]", subject):
            return None  # "Scientists are now quite comfortable …", "Calling Py_INCREF() …": not a definition
        if subject.split()[0].lower().endswith("ing") and len(subject.split()) >= 2:
            return None  # "Calling the function twice is …": a clause as subject
        if set(subject_words) & set(words(" ".join(predicate.split()[:4]))):
            return None  # "A product is a consumer product …": the answer repeats the question
        inner = subject.split()[1:]
        if any(w.lower() in STOPWORDS and w.lower() not in _SUBJECT_GLUE for w in inner):
            return None  # "Magma rises because it …" is a clause, not a term
        article = ""
        if subject.split()[0].lower() in ("the", "a", "an"):
            article, subject = subject.split()[0].lower() + " ", " ".join(subject.split()[1:])
        if subject.count("(") != subject.count(")"):
            return None
        if article == "the " and not _is_proper(subject) and not subject[:1].isupper():
            return None  # "the capacity", "the variable": a thing of the passage, not a concept to define
        display = article + (subject if _is_proper(subject) else subject[0].lower() + subject[1:])
        question = _QUESTION_FOR_VERB[match.group("verb").lower()].format(display)
        answer = predicate[0].upper() + predicate[1:]
        return CardDraft(question, answer, sentence, CardKind.BASIC)


def _defines(verb: str, predicate: str) -> bool:
    """Whether "X <verb> <predicate>" says what X is: "is a …", "is molten rock …", "refers to …"; not
    "is now quite …", "is compiled into …", "are often …"."""
    if verb not in ("is", "are", "was", "were"):
        return True
    first = predicate.split()[0].strip(",;:\"“'(").lower()
    if re.split(r"\W", predicate.lower(), maxsplit=1)[0] in quality.DETERMINERS or predicate[:1].isupper():
        return True
    if lexicon.is_function_word(first) or first in quality.NOT_A_NOUN:
        return False  # "is now quite …", "are often …", "is responsible for …"
    return not (len(first) > 4 and first.endswith(("ly", "ed", "ing")))  # "is compiled into …"


# Verb forms and adverbs (by their endings) a cloze should not ask for on their own, and words that only modify
# the next one.
_VERB_ENDINGS = {
    "es": ("ar", "er", "ir", "ado", "ada", "ados", "adas", "ido", "ida", "idos", "idas", "ando", "iendo", "mente"),
    "it": ("are", "ere", "ire", "ato", "ata", "ito", "ita", "ando", "endo", "mente"),
    "fr": ("er", "ir", "é", "ée", "és", "ées", "ant", "ment"),
}
_NOT_TERMS = frozenset(
    """means calls uses takes makes gives has have stated written created following instead certain positive
    negative additional mere several enough often sometimes already finally simply rather whether provide provides
    include includes offer offers enable enables understand understands compile compiles require requires allow
    allows contain contains support supports create creates return returns call use make give receive receives
    apply applies need needs change changes different original major various specific particular entire""".split()  # noqa: SIM905
)
_MODIFIERS = frozenset(
    """big small large still returned new old same different other various certain whole entire simple single
    specific general common main real actual possible""".split()  # noqa: SIM905 - a readable list
)


def _part_of_more(sentence: str, matches: list[re.Match[str]], i: int, phrases: Counter[str], language: str) -> bool:
    """Whether ``matches[i]`` is half of something larger, which a cloze of it alone would cut: a name ("Ian
    {{Murdock}}", "{{Linux}} Kernel"), a phrase the text keeps using ("Virgo {{cluster}}", "surface
    {{temperatures}}"), or one name of a pair ("{{GNOME}} oder KDE")."""

    def next_to(j: int, k: int) -> str:  # matches[j] when only a space parts it from matches[k], else ""
        if not 0 <= j < len(matches) or sentence[min(matches[j].end(), matches[k].end()) : max(
                matches[j].start(), matches[k].start())].strip():  # fmt: skip
            return ""
        return matches[j].group(0)

    before, after, token = next_to(i - 1, i), next_to(i + 1, i), matches[i].group(0)
    if token[:1].isupper() and (before[:1].isupper() or after[:1].isupper()) and language != "de":
        return True  # (German capitalises every noun: "Debian-Systems Kernel" is no name)
    low = token.lower()
    pairs = (f"{before.lower()} {low}", f"{low} {after.lower()}")
    if any(phrases.get(pair, 0) >= 3 for pair in pairs):
        return True  # the phrase is the term (and a candidate of its own)
    return token[:1].isupper() and _AND_OR.search(f" {before.lower()} | {after.lower()} ") is not None


_AND_OR = re.compile(r" (?:and|or|und|oder|y|o|e|u|et|ou|ni|nor|vs) ")


def _superlative(word: str) -> bool:
    """"faintest", "hottest": an adjective's degree, not a term."""
    if not word.endswith("est") or len(word) < 7:
        return False
    stem = word[:-3]
    return any(lexicon.zipf(s) > 0 for s in (stem, stem + "e", stem[:-1] if stem[-1:] == stem[-2:-1] else ""))


def _repeats(sentence: str, term: str, start: int) -> bool:
    """Whether ``term`` (at ``start``) shows again elsewhere in ``sentence``, itself or a form of it ("scale",
    "scales"): the card would give its own answer away."""
    stem = term.lower()[: max(4, len(term) - 3)]
    rest = (sentence[:start] + " " + sentence[start + len(term) :]).lower()
    return any(w.startswith(stem) for w in WORD.findall(rest))


def _passes(draft: CardDraft) -> bool:
    """Whether the quality gate would let ``draft`` through unflagged."""
    card = Card("", "", 0, 0, draft.front, draft.back, draft.quote, draft.kind)
    return not quality.check(card)


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
