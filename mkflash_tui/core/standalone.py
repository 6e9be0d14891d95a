"""Whether a sentence can stand alone on a card, by its shape: not markup or code, not a pointer elsewhere or an
instruction to the reader, not leaning on the sentence before (a pronoun, a demonstrative), in the text's own
language. The offline generator's sieve before it makes a card of a sentence."""

from __future__ import annotations

import re

from . import lexicon
from .text import WORD

PRONOUN_START = re.compile(
    r"^(it|this|that|these|those|they|he|she|there|here|we|you|i|its|their|his|her|such|which|what|each|every"
    r"|one|some|most|many|all|no|both|either|neither|another|other|much|more)\b",
    re.I,
)
_MARKUP = re.compile(r"```|<!--|→|^\s*(?:[-+*•]|\d+[.)])\s|^\s*[|#>{}]|//|\*\*|\{\w+\}|\]\[|`[^`]+`\s*\{")


def _looks_like_markup(sentence: str) -> bool:
    """Code fences, HTML comments, list items, tables and API-reference lines: not sentences to card."""
    return bool(_MARKUP.search(sentence))


# Pronouns and pointers that make a sentence lean on the one before (English and French).
_LEANS = re.compile(
    r"\b(?:it|its|it's|it’s|they|them|their|theirs|he|she|him|his|her|this|these|those|lui|il|elle|ils|elles|"
    r"leur|leurs|celui|celle|ceux|ci|là)\b|\bthat (?:event|case|way|one|point|time)\b",
    re.I,
)
_LEANS_FR = re.compile(r"\b(?:il|ils|elle|elles|lui|celui|celle|ceux)\b")
# A sentence about the book rather than its subject: "In Chapter 7, you'll learn …", "earlier chapters".
_BOOK = re.compile(r"\b(?:chapters?|this book|the book|appendix|section \d)\b", re.I)
# "The parameter …", "The buffer …": a thing of the passage that the card would not name.
_CONTEXT_SUBJECT = re.compile(
    r"^the (?:first |second |third |last |initial |default |given |following |same |other |new |old )?"
    r"(?:parameter|argument|value|option|buffer|connection|callback|result|function|method|event|object|string|"
    r"number|variable|code|example|output|input|call|server|socket|handle|path|file|data|list|type|field|key)s?\b",
    re.I,
)
# A sentence that lost its subject: "Destroys the stream …", "Useful to …", "Ignored if …", "Value may be …".
_HEADLESS = re.compile(
    r"^(?:[A-Z][a-z]+s\s+(?:the|a|an|all|any|when|if|to|that|this|its|each|whether)\b|"
    r"(?i:useful|ignored|required|optional|available|used|called|value|callback|default|port|path|host|"
    r"if (?:set|provided|specified|omitted|enabled|true|false)|the numeric|the string representation|"
    r"following is|the old name)\b)",
)


# Sentences that lean on the one before, in German and Spanish: a demonstrative or a pronoun, or a linking adverb.
_LEANS_BY_LANGUAGE = {
    "de": re.compile(r"^(?:dies\w*|er|sie|es|ihr\w*|sein\w*|deren|dessen|das (?:kommt|macht|heißt|bedeutet)|"
                     r"damit|dazu|dafür|daher|deshalb|dabei|dann|hier|dort|"
                     r"außerdem|zudem|natürlich|auch|aber|jedoch|so|zu diesen|solche\w*|derselbe\w*)\b", re.I),
    "es": re.compile(r"^(?:est[aeo]s?|es[aeo]s?|ello|aquel\w*|él|ella|ellos|ellas|su|sus|aquí|allí|además|también|"
                     r"entonces|sin embargo|por (?:lo )?tanto|así|pero|luego|dich[oa]s?)\b", re.I),
}
# Pointers elsewhere, a table of contents, instructions to the reader: never a fact to learn, whoever wrote the card.
POINTER = re.compile(
    r"\b(?:see|siehe|véase|vea|consulte|voir)\s+(?:also\s+|auch\s+)?(?:the\s+)?(?:section|chapter|abschnitt|kapitel|"
    r"sección|capítulo|page|seite|página|\d)|(?:can|may) be found (?:in|at|on)\b|\bdocumented (?:more fully )?in\b|"
    r"\b(?:for )?(?:more|further|detailed) (?:details|information)\b|\bweitere (?:details|informationen)\b|"
    r"\bfinden sie\b|\bmás (?:información|detalles)\b|^(?:abschnitt|section|sección|kapitel|chapter|capítulo)\s+\d|"
    r"^(?:click|press|klicken|drücken|haga clic|pulse)\b|\bnäheres in\b|"
    r"\b(?:abschnitt|section|sección|kapitel|chapter|capítulo)\s+\d+\.\d|"
    r"\b(?:is|are) (?:explained|described|documented|covered|discussed) in (?:section|chapter|the)\b",
    re.I,
)
# What the offline generator also leaves alone (a model may card these well): any "see …", settings, paths,
# formulas, shell prompts; German addressing the reader, or the author speaking.
_NOISE = re.compile(
    r"\b(?:see|siehe|véase|vea|consulte|voir)\s|^(?:select|choose|type|wählen|seleccione|escriba)\b|\s=\s|\s\*\s|"
    r"(?:^|\s)/(?:etc|usr|boot|dev|var|bin|lib|proc|sys|tmp)\b|\b[A-Z]+_[A-Z_]+\b|\w\.(?:cfg|conf|txt|sh|py|pl|html)\b|"
    r"\$\w|(?:^|\s)\$\s|\*\w|(?-i:(?<=\w )Sie\b|\bich\b)",
    re.I,
)


def _foreign(sentence: str, language: str) -> bool:
    """An English sentence in a German or Spanish text (an untranslated note): not in the text's language."""
    if language == "en" or not lexicon.known(language):
        return False
    tokens = [t.lower() for t in WORD.findall(sentence)]
    english = sum(lexicon.is_function_word(t, "en") and not lexicon.is_function_word(t, language) for t in tokens)
    return english >= 2 and english >= sum(lexicon.is_function_word(t, language) for t in tokens)


# A short title line glued on to the paragraph it heads ("Basic syntax overview" then "A Perl script …").
HEADING_LINE = re.compile(r"(?m)^(\s*[^\W\d_][^\n.!?:;,]{1,38})\n(?=\s*[A-ZÄÖÜÁÉÍÓÚ])")


def leans(sentence: str, language: str) -> bool:
    leans = _LEANS_BY_LANGUAGE.get(language)
    return bool(PRONOUN_START.match(sentence) if language == "en" else leans is not None and leans.match(sentence))


_ENDS = re.compile(r"[.!][\"”’»)\]]*$")


def stands_alone(sentence: str, language: str = "en") -> bool:
    text = sentence.strip()
    leans = _LEANS_BY_LANGUAGE.get(language)
    return not (
        (leans is not None and leans.match(text))
        or POINTER.search(text)
        or _NOISE.search(text)
        or _foreign(text, language)
        or _looks_like_markup(text)
        or text.endswith(("?", "!", ":"))
        or not _ENDS.search(text)  # a table cell, a caption, a heading: not a sentence
        or _LEANS.search(" ".join(text.split()[:7]))  # a pronoun early on points back; later, often within
        or _LEANS_FR.search(" ".join(text.split()[:6]))  # French: "il", "lui" early on point back
        or _BOOK.search(text)
        or _CONTEXT_SUBJECT.match(text)
        or _HEADLESS.match(text)
    )
