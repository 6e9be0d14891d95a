"""Terms and their definitions, found by the shape of the text rather than by its grammar: a glossary or a
definition list (an HTML ``<dl>`` reads as a short term paragraph, then its definition), "Term: definition" and
"Term — definition" lines, Markdown definition lists (``Term`` then ``: definition``) and a paragraph opening with
a bold term (``**Term** is …``). The offline generator turns each into a term → definition card."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .. import lexicon
from ..text import SENTENCE_END

_TERM = r"[^\W\d_][\w'’ ./+#-]{0,48}?(?: \([^()]{1,24}\))?"
_INLINE = re.compile(rf"^(?P<term>{_TERM})\s*(?::|\s[—–]\s|\s-\s)\s*(?P<definition>\S.{{20,}})$", re.S)
_BOLD = re.compile(r"^\*\*(?P<term>[^*]{2,50})\*\*[:.]?\s+(?P<definition>\S.{20,})$", re.S)
_DL_DEFINITION = re.compile(r"^:\s+(?P<definition>\S.{20,})$", re.S)
_MARK = "¶"  # Sphinx's header link, read with the term
_SYMBOL = re.compile(r"[^\w\s]{1,4}")  # ">>>", "..."
# Admonition labels (DocBook, Sphinx) read as a paragraph of their own before their text: not terms.
_LABELS = frozenset(
    """note tip hint warning caution important danger attention anmerkung hinweis tipp warnung achtung wichtig
    vorsicht nota aviso sugerencia consejo atención importante precaución remarque astuce avertissement""".split()  # noqa: SIM905
)
_ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|a\.k\.a|etc|vs|cf|z\. ?B|d\. ?h|u\. ?a|bzw|p\. ?ej|Dr|Mr|Mrs|St)\.|\b[A-Z]\.)$"
)  # "e.g." and "z. B." do not end a sentence


@dataclass(frozen=True)
class Entry:
    term: str
    definition: str  # the definition's first sentence
    paragraph: str  # where it stands (the definition's paragraph, or the line)


def entries(paragraphs: list[str], language: str) -> Iterator[Entry]:
    """The term → definition pairs of a chunk's ``paragraphs``. A short paragraph followed by a longer one counts
    only in a run of two or more such pairs (a glossary), so a lone heading or caption is not taken for a term."""
    pairs: list[Entry] = []
    for i, para in enumerate(paragraphs):
        text = " ".join(para.split())
        inline = _BOLD.match(text) or _INLINE.match(text)
        if inline and _is_term(inline.group("term"), language, inline=True):
            entry = _entry(inline.group("term"), inline.group("definition"), para)
            if entry:
                yield entry
            continue
        if i + 1 >= len(paragraphs) or not _is_term(text.rstrip(_MARK).strip(), language):
            continue
        following = " ".join(paragraphs[i + 1].split())
        following = (_DL_DEFINITION.match(following) or re.match(r"(?P<definition>.*)", following, re.S)).group(
            "definition"
        )
        if len(following.split()) >= 5 and following[:1].isalpha():
            entry = _entry(text.rstrip(_MARK).strip(), following, paragraphs[i + 1])
            if entry:
                pairs.append(entry)
    if len(pairs) >= 2:
        yield from pairs


def _is_term(text: str, language: str, *, inline: bool = False) -> bool:
    """A few words naming a thing: no sentence in them, no heading marks, not a label ("Note", "Tipp")."""
    if not text or len(text) > 60 or text.startswith(("#", "-", "*", "•", "(")) or text.endswith((".", ",", ";", ":")):
        return False
    tokens = text.split()
    if not 1 <= len(tokens) <= (5 if inline else 6) or re.match(r"^\d", text):
        return False
    if re.search(r"\d[.:]\d|:|\s\d+$", text):
        return False  # a version, a time or a table's row ("GIMP 2.8.14", "Starting 17"): not a term
    if re.match(r"^(?:kapitel|chapter|capítulo|chapitre|section|abschnitt|sección|part|teil)\b", text, re.I):
        return False
    code = re.search(r"[=(){}\[\]*,;/\"„“”]", text.split(" (")[0]) and not _SYMBOL.fullmatch(text)
    if text.lower() in _LABELS or code:
        return False  # an admonition's label, code or a list of names
    words_ = [t.strip("()") for t in tokens]
    if any(lexicon.is_function_word(w, language) for w in words_[:1]) and len(words_) > 1:
        return False  # "The release", "For example", "In this case": a phrase, not a term
    if len(words_) == 1 and text[:1].isupper() and lexicon.is_everyday(text, language):
        return False  # a label: "Note", "Warning", "Tipp", "Beispiel"
    # A term has few function words ("abstract base class", "garbage collection"); a clause has many.
    return sum(lexicon.is_function_word(w, language) for w in words_) <= len(words_) // 3


def _entry(term: str, definition: str, paragraph: str) -> Entry | None:
    pieces = SENTENCE_END.split(definition.strip())
    first = pieces[0]
    for piece in pieces[1:]:
        if not _ABBREVIATION.search(first):
            break
        first = f"{first} {piece}"  # "e.g." and "z. B." do not end a sentence
    first = first.strip()
    if first.endswith(":") or len(first.split()) < 4 or len(first.split()) > 32:
        return None  # "Can refer to:" (a list follows), or too long to recall
    if first.lower().startswith(("see ", "siehe ", "véase ", "voir ")):
        return None  # a pointer to another entry
    return Entry(term.strip(), first.rstrip("."), paragraph)


_QUESTION = {"de": "Was ist {}?", "es": "¿Qué es {}?", "fr": "Qu’est-ce que {} ?", "it": "Che cos’è {}?"}


def question(term: str, language: str, topic: str = "") -> str:
    """The front of a term's card: "What is an annotation in Python?", "Was ist Lokalisierung (L10N)?"."""
    if language != "en":
        return _QUESTION.get(language, "{}?").format(term)
    plain = term.split(" (")[0]
    symbol = not re.fullmatch(r"[A-Za-z][\w' -]*", plain)
    where = f" in {topic}" if topic and topic.lower() not in term.lower() else ""
    if symbol:
        return f"What is “{term}”{where}?"
    if plain[:1].isupper() or plain.isupper():
        return f"What is {term}{where}?"
    if plain.endswith("s") and not plain.endswith(("ss", "us", "is")):
        return f"What are {term}{where}?"
    article = "an" if plain[:1].lower() in "aeiou" else "a"
    return f"What is {article} {term}{where}?"
