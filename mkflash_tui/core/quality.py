"""The quality gate: checks every card from every provider and names what is wrong with it.

Each check is a named flag. The store keeps the model's answer unfiltered; the gate runs whenever cards are built
(``engine.make_cards`` for the checks on one card, ``Run.cards`` for duplicates across chunks), so changing its
rules, or whether flagged cards are kept, never costs a call. ``GATE_VERSION`` changes whenever a rule does.

Clearly broken cards (``BROKEN``) are dropped and counted; the rest keep their flags, which Review shows and
explains. ``--drop-flagged`` drops every flagged card. A card the user edited or already exported is never
dropped.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from . import lexicon
from .models import Card, CardKind, normalise_for_dedup
from .near import CLOZE as _CLOZE
from .near import NearIndex
from .near import norm as _norm
from .prompts import EXAMPLE_FRONTS
from .standalone import POINTER, leans
from .text import FUNCTION_WORDS, STOPWORDS, detect_language

GATE_VERSION = 3


class Flag(enum.StrEnum):
    NOT_SELF_CONTAINED = "not-self-contained"
    VAGUE = "vague-question"
    MALFORMED = "malformed"
    LONG_ANSWER = "long-answer"
    LIST_ANSWER = "list-answer"
    CLOZE_NO_DELETION = "cloze-no-deletion"
    CLOZE_TRIVIAL = "cloze-trivial-deletion"
    CLOZE_TOO_MANY = "cloze-too-many-deletions"
    CODE = "code"
    BOILERPLATE = "boilerplate"
    QUOTE_NOT_FOUND = "quote-not-found"
    DUPLICATE = "duplicate"


EXPLAIN: dict[Flag, str] = {
    Flag.NOT_SELF_CONTAINED: "It only makes sense next to its text: it opens with a word that points back "
    "(This, It, However, They…) or speaks of “the text” or “the passage”.",
    Flag.VAGUE: "The question does not name a real subject: “What is X?” where X is a clause, a generic noun "
    "(“the good news”) or shouted boilerplate.",
    Flag.MALFORMED: "The card is broken: no words on the front, no answer, or the answer repeats the question.",
    Flag.LONG_ANSWER: "The answer is too long to recall in one go (over 30 words): split it into several cards.",
    Flag.LIST_ANSWER: "The answer is a list or a set: lists are hard to recall; one card per item, or a cloze.",
    Flag.CLOZE_NO_DELETION: "A cloze card without a {{c1::…}} deletion: there is nothing to recall.",
    Flag.CLOZE_TRIVIAL: "The cloze deletes a common word (the, is, and…) or a number alone, not a key term.",
    Flag.CLOZE_TOO_MANY: "The cloze deletes more than three things: one idea per card.",
    Flag.CODE: "The card is made of code rather than of knowledge about it.",
    Flag.BOILERPLATE: "The card is made of boilerplate or page furniture: legal text in capitals, menus, "
    "copyright lines.",
    Flag.QUOTE_NOT_FOUND: "The model's quote is not in the passage: the card may not be supported by the text.",
    Flag.DUPLICATE: "The same card as an earlier one (same question, same answer, or the same sentence).",
}

BROKEN = frozenset({Flag.MALFORMED, Flag.CLOZE_NO_DELETION, Flag.DUPLICATE})  # dropped unless edited/exported

_EXAMPLES = frozenset(normalise_for_dedup(front) for front in EXAMPLE_FRONTS)
_ANAPHOR = re.compile(
    r"^(?:[-*•]\s|\d+[.)]\s|(?:first|second|next|finally|overall),)|"  # a list item, a step of an argument
    r"^(?:this|that|these|those|it|its|it's|it’s|they|them|their|he|she|his|her|we|we're|we’re|we’ve|we've|our|us|"
    r"such|however|also|moreover|will|would|can|could|should|may|might|must|then|now|"
    r"let's|let’s|until then|continuing|on the (?:right|left)|by contrast|in contrast|of course|"
    r"furthermore|therefore|thus|hence|but|and|or|so|then|here|there|besides|additionally|finally|similarly|"
    r"likewise|instead|otherwise|meanwhile|in addition|as a result|for example|for instance|in this case|"
    r"in other words|on the other hand|the above|the following|the former|the latter)\b",
    re.I,
)
_MENTIONS_SOURCE = re.compile(
    r"\b(?:according to the|as (?:mentioned|stated|described|shown|discussed) (?:above|below|earlier|before)|"
    r"(?:the|this) (?:text|passage|excerpt|section|article|paragraph|chapter|document|author)\b|"
    r"in the (?:example|figure|table|listing) (?:above|below)|(?:shown|listed|given|described) (?:below|above)|"
    r"\b(?:chapter|listing|figure)\s+\d|\bappendix\s+[A-Z\d]\b|"  # the book's own structure
    r"\bwe(?:'ll|’ll|'ve|’ve|'re|’re)?\b)",  # the author speaking
    re.I,
)
# "this", "these", "such" or "thus" before a common noun or a verb: it points back ("this pattern", "this is");
# before a name it does not ("this License").
_POINTS_BACK = re.compile(r"\b(?i:this|these|such|thus)\s+(?:an?\s+)?[a-z]")
_WHAT_IS = re.compile(r"^\s*(?:what|who)\s+(?:is|are|was|were)\s+(?P<subject>.+?)\s*\??\s*$", re.I | re.S)
_CLAUSE_STARTERS = frozenset(
    """
    if when whenever where wherever because since although though while whether how why that which who whom
    whose what to of for in on at by with from as than into onto upon about after before until unless so not
    is are was were be been being do does did can could should would will shall may might must has have had
    any some all each every both many few several another two three four five six seven eight nine ten
    """.split()  # noqa: SIM905 - a readable list
)
_GENERIC_NOUNS = frozenset(
    """
    news thing things way ways idea ideas problem problems reason reasons result results case cases fact
    facts point points matter issue issues part parts kind type one ones something anything everything nothing
    knowledge information example examples purpose answer question topic subject rest others other same
    following above below former latter main key first second last next new old good bad important chapter
    chapters section sections page pages figure table listing step steps difference length name names size
    number numbers amount value values default argument arguments option options output input change changes
    """.split()  # noqa: SIM905 - a readable list
)
# Words a cloze should not delete beyond the stopwords: vague and generic English words, and the function words of
# the other languages the offline generator tells apart (with elisions split: "qu'il" is "qu" and "il").
_TRIVIAL = frozenset(
    """
    later earlier often always never sometimes usually lot lots way thing things number part program programs
    language languages user users developer developers solution solutions problem problems data
    """.split()  # noqa: SIM905 - a readable list
).union(*FUNCTION_WORDS.values())
_LEGAL = re.compile(
    r"\b(?:all rights reserved|without (?:any )?warranty|merchantability|fitness for a particular purpose|"
    r"licensed under|terms (?:of use|and conditions)|privacy policy|cookie|copyright \(c\)|"
    r"you should have received a copy)|©|<https?://",
    re.I,
)
_CODE_LINE = re.compile(
    r"(?:^|\n)\s*(?:def |class |fn |function |import |from \S+ import|return |var |let |const |#include|"
    r"public |private |if \(|for \(|while \(|\$ |>>> )|[;{}]\s*$|=>|::|->|\(\)|\w+\([^)]*\);",
    re.M,
)
_LIST_LINE = re.compile(r"(?:^|\n)\s*(?:[-*•]|\d+[.)])\s+\S")


def check(card: Card, *, quote_found: bool = True) -> tuple[Flag, ...]:
    """The flags of one card (duplicates across cards are found by ``flag_duplicates``)."""
    flags: list[Flag] = []
    front, back = card.front.strip(), card.back.strip()
    is_cloze = card.kind is CardKind.CLOZE
    deletions = _CLOZE.findall(front) if is_cloze else []
    plain_front = _CLOZE.sub(lambda m: m.group(2), front) if is_cloze else front
    if not re.search(r"[^\W\d_]", plain_front) or (not is_cloze and not back) or _same(plain_front, back):
        flags.append(Flag.MALFORMED)
    elif not quote_found and normalise_for_dedup(front) in _EXAMPLES:
        flags.append(Flag.MALFORMED)  # the prompt's own example, copied: nothing of the passage
    language = detect_language(f"{plain_front} {back}")
    if (
        (language != "en" and leans(plain_front, language))
        or _ANAPHOR.match(plain_front)
        or _MENTIONS_SOURCE.search(plain_front)
        or _MENTIONS_SOURCE.search(back)
        or _points_back(plain_front)
        or back.rstrip().endswith(":")
    ) or (is_cloze and _fragment(plain_front)):
        flags.append(Flag.NOT_SELF_CONTAINED)
    if not is_cloze and (_vague(front) or _not_a_definition(front, back)):
        flags.append(Flag.VAGUE)
    if not is_cloze:
        if len(back.split()) > 30:
            flags.append(Flag.LONG_ANSWER)
        if _is_list(back):
            flags.append(Flag.LIST_ANSWER)
    if is_cloze:
        if not deletions:
            flags.append(Flag.CLOZE_NO_DELETION)
        else:
            trivial = any(_trivial(text) or _guessable(text, language) for _, text in deletions)
            if trivial or _cuts_a_name(front) or _in_a_list(front):
                flags.append(Flag.CLOZE_TRIVIAL)
            if len({number for number, _ in deletions}) > 3 or len(deletions) > 4:
                flags.append(Flag.CLOZE_TOO_MANY)
    if _is_code(plain_front) or _is_code(back) or (is_cloze and _is_code(card.quote)):
        flags.append(Flag.CODE)
    pointer = POINTER.search(plain_front) or POINTER.search(back)
    if _boilerplate(plain_front) or _boilerplate(back) or (is_cloze and _caption(plain_front)) or pointer:
        flags.append(Flag.BOILERPLATE)
    if not quote_found:
        flags.append(Flag.QUOTE_NOT_FOUND)
    return tuple(flags)


def quote_in(quote: str, chunk_text: str) -> bool:
    """Whether the model's own quote (before any substitution) occurs in its chunk, whitespace and quotes aside."""
    flat_quote = " ".join(quote.split()).strip().strip("\"“”'").rstrip(".…")
    if not flat_quote:
        return True  # no quote asked of this card (the offline generator, or an empty field): nothing to check
    return flat_quote.casefold() in " ".join(chunk_text.split()).casefold()


def flag_duplicates(cards: Iterable[Card], keep: set[str] | None = None) -> dict[str, str]:
    """Near-duplicates in document order (``near.NearIndex``): card id -> the id of the earlier card it repeats;
    ``keep`` (ids edited or exported) never counts as a repeat."""
    index = NearIndex()
    keep = keep or set()
    out: dict[str, str] = {}
    for card in cards:
        earlier = index.check(card, keep=card.id in keep)
        if earlier is not None:
            out[card.id] = earlier
    return out


def gate(cards: list[Card], keep: set[str], *, drop_flagged: bool = False) -> tuple[list[Card], dict]:
    """``cards`` (in document order) less near-duplicates and clearly broken cards (and, with ``drop_flagged``,
    every flagged card), never one in ``keep``; and the report: flags of the cards kept, and of those dropped
    (by their first flag)."""
    duplicates = flag_duplicates(cards, keep)
    flagged: dict[str, int] = {}
    dropped: dict[str, int] = {}
    out = []
    for card in cards:
        flags = card.flags + ((str(Flag.DUPLICATE),) if card.id in duplicates else ())
        reasons = [f for f in flags if drop_flagged or f in BROKEN]
        if reasons and card.id not in keep:
            dropped[reasons[0]] = dropped.get(reasons[0], 0) + 1
            continue
        for flag in flags:
            flagged[flag] = flagged.get(flag, 0) + 1
        out.append(card)
    return out, {"gate": GATE_VERSION, "flagged": flagged, "dropped": dropped}


def explain(flags: Iterable[str]) -> list[str]:
    return [EXPLAIN[Flag(f)] for f in flags if f in Flag._value2member_map_]


# ---------------------------------------------------------------- the rules


def _same(a: str, b: str) -> bool:
    return bool(a) and _norm(a) == _norm(b)


def _vague(front: str) -> bool:
    match = _WHAT_IS.match(front)
    if not match:
        return False
    subject = match.group("subject").strip().strip("\"“”'")
    parts = subject.split()
    if len(parts) > 1 and parts[0] in ("A", "An", "The") and parts[1][:1].islower():
        return True  # "What is An electron?": a sentence's capitalised article copied into the question
    lowered = re.sub(r"^(?:a|an|the)\s+", "", subject.lower())
    head = lowered.split()[0] if lowered.split() else ""
    if not head or head in _CLAUSE_STARTERS or head in ("it", "this", "that", "these", "those", "they"):
        return True
    if head.endswith("ing") and len(lowered.split()) >= 3 and not subject[:1].isupper():
        return True  # "What is handling concurrent programming safely?": a clause, not a term
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 4 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        return True  # WHAT IS THE KNOWLEDGE?
    content = [w for w in lowered.split() if w not in STOPWORDS and not w.strip(".,").isdigit()]
    return not content or all(w in _GENERIC_NOUNS for w in content)


NOT_A_NOUN = frozenset(
    """
    often usually generally mostly always never sometimes very quite too more less most least faster slower
    better worse ideal prone able unable likely unlikely possible impossible necessary available responsible
    similar different convenient valid invalid important useful known called named made used based set passed
    returned proving being having for to in on at by with from if when because that how whether than not also
    still already either whose which where
    """.split()  # noqa: SIM905 - a readable list
)
# A sentence with its subject cut off, or a fragment: "Adds a rule …", "Will be passed to …", "demandait …"
_SUBJECTLESS = re.compile(
    r"^(?:adds|returns|gets|sets|creates|starts?|stops?|enables?|disables?|enable/disable|emitted|called|used|"
    r"initiate|get|set|close|open|create|return|emit|grab|check|call|pass|make|use|asynchronously|synchronously|"
    r"path|default|optional|"
    r"see|alias (?:to|of|for)|will|would|can|could|should|may|might|must|is|are|was|were)\b",
    re.I,
)
_CAPTION = re.compile(r"^(?:listing|figure|fig\.|table|image|example)\s+[\dA-Z][\w.-]*\s*[:.]", re.I)


def _not_a_definition(front: str, back: str) -> bool:
    """"What is X?" answered by something that does not name what X is ("Ideal for many people …")."""
    if not _WHAT_IS.match(front):
        return False
    first = re.sub(r"^[\"“'(\[]+", "", back.strip()).split(maxsplit=1)
    if not first:
        return False
    word = first[0].lower().rstrip(",:;")
    if word in NOT_A_NOUN or (len(word) > 4 and word.endswith(("ly", "ed"))):
        return True  # "Often …", "Compiled into bytecode", "Now quite comfortable …"
    return lexicon.is_function_word(word) and word not in DETERMINERS | {"every", "no"} and not first[0][:1].isdigit()


def _fragment(sentence: str) -> bool:
    """A cloze sentence that cannot stand alone: it goes on elsewhere, lacks its subject or its start."""
    text = sentence.strip()
    if text.endswith((":", ",", ";")) or re.search(r"\((?:i\.e|e\.g)\.?$", text):
        return True
    if _SUBJECTLESS.match(text):
        return True
    if text[:1] in "«“\"" and not any(q in text[1:] for q in "»”\""):
        return True  # the start of a quotation that goes on elsewhere
    first = text[:1]
    return first.isalpha() and first.islower()


def _caption(sentence: str) -> bool:
    """A caption or a heading carded as if it were a sentence ("Listing 4-4: Transferring ownership …")."""
    text = sentence.strip()
    if _CAPTION.match(text):
        return True
    tokens = text.rstrip(".").split()
    words_ = [t for t in tokens if t.lower() not in _SMALL_WORDS and not t.strip(",.").isdigit()]
    capitalised = sum(1 for t in words_ if t[:1].isupper())
    return 2 <= len(tokens) <= 10 and not text.endswith(("?", "!")) and capitalised >= max(2, len(words_) - 1)


_SMALL_WORDS = frozenset("a an the of and or for from to in on with by at as vs".split())  # noqa: SIM905


def _points_back(text: str) -> bool:
    match = _POINTS_BACK.search(text)
    return bool(match) and not text[match.end() - 1 :].startswith(("i ", "a "))


def _in_a_list(cloze: str) -> bool:
    """A deletion that is one item of a comma list ("Dates, réalités, {{c1::souvenirs}}, …"): any item would do."""
    return any(
        cloze[: m.start()].rstrip().endswith(",") and cloze[m.end() :].lstrip().startswith(",")
        for m in _CLOZE.finditer(cloze)
    )


def _cuts_a_name(cloze: str) -> bool:
    """A deletion that cuts a name in two: "the {{c1::GNU General}} Public License", "The Rust {{c1::Language}}
    Server"."""
    for match in _CLOZE.finditer(cloze):
        before = cloze[: match.start()].split()[-1:] or [""]
        after = cloze[match.end() :].split()[:1] or [""]
        inside = match.group(2).split()
        if inside and inside[-1][:1].isupper() and after[0][:1].isupper() and after[0][:1].isalpha():
            return True
        if cloze[match.end() : match.end() + 1] == "." and cloze[match.end() + 1 : match.end() + 2].isalpha():
            return True  # "{{c1::Node}}.js"
        starts_name = inside and inside[0][:1].isupper() and before[0][:1].isupper()
        if starts_name and not before[0].endswith((".", ":", "!", "?")) and cloze[: match.start()].strip() != before[0]:
            return True
    return False


def _is_list(answer: str) -> bool:
    if len(_LIST_LINE.findall(answer)) >= 2:
        return True
    parts = [p for p in re.split(r",|;|\band\b|\bor\b", answer) if p.strip()]
    return answer.count(",") + answer.count(";") >= 3 and len(parts) >= 4 and all(len(p.split()) <= 4 for p in parts)


# Words that open a noun phrase: "What is X?" answered by one of them names what X is ("A …", "The …").
DETERMINERS = frozenset("a an the one any each some another two three several many all".split())  # noqa: SIM905


def _guessable(deleted: str, language: str) -> bool:
    """One everyday word in small letters, by the language's word frequencies ("zeigt", "durch", "water"): the
    sentence gives it away. Names, numbers and rarer words are not."""
    word = deleted.strip().strip(".,;:!?\"'“”()")
    if not word or " " in word or not word.isalpha() or not word.islower():
        return False
    return lexicon.is_function_word(word, language) or lexicon.zipf(word, language) >= GUESSABLE


GUESSABLE = 5.0  # the gate's bar, above the offline generator's own (lexicon.EVERYDAY): a model's cloze of a common
# but fitting word ("mantle", "plate", "owner") stays unflagged


def _trivial(deleted: str) -> bool:
    text = deleted.strip().strip(".,;:!?\"'“”()")
    if not text:
        return True
    if re.fullmatch(r"[\d\s.,%]+", text) and len(text) <= 2:
        return True
    tokens = [t for t in re.split(r"[\s'’]+", text.lower()) if t]
    return all(t in STOPWORDS or t in _TRIVIAL or len(t) < 3 for t in tokens)


def _is_code(text: str) -> bool:
    if not text.strip():
        return False
    if "```" in text or "<!--" in text or len(_CODE_LINE.findall(text)) >= 2:
        return True
    symbols = sum(text.count(c) for c in "{}();=<>[]$#&|")
    letters = sum(c.isalpha() for c in text)
    return len(text) >= 12 and symbols >= 4 and symbols / max(1, letters) > 0.2


def _boilerplate(text: str) -> bool:
    if _LEGAL.search(text):
        return True
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.8:
        return True  # a disclaimer in capitals
    tokens = text.split()
    # A row of capitalised single words with no sentence in them: a menu ("Auto Light Rust Coal Navy Ayu").
    return len(tokens) >= 4 and all(t[:1].isupper() and t.isalpha() for t in tokens) and not text.endswith((".", "?"))
