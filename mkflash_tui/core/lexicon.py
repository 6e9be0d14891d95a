"""How common a word is in its language, from real language data: wordfreq's word lists (code Apache-2.0, data
CC-BY-SA 4.0, by Robyn Speer and contributors; frequencies frozen in 2024), read as Zipf values: log10 of a
word's uses per billion words, about 7 for "the", 3 for "photon", 0 for a word the list does not hold.

The offline generator and the quality gate ask it what is a function word (never a card's answer), what is an
everyday word a reader would guess, and what is rare enough to be a term. The "small" lists (the words used at
least once a million) load in about 10 ms per language; a word they do not hold is rarer than that: a term.
"""

from __future__ import annotations

import functools
import math

FUNCTION = 5.4  # "durch", "through", "zeigt" are above: grammar, not knowledge
EVERYDAY = 4.0  # "shine", "degrees", "checks", "overview", "Stufe" are above: a reader guesses them


@functools.lru_cache(maxsize=16)
def _frequencies(language: str) -> dict[str, float]:
    from wordfreq import available_languages, get_frequency_dict

    if language not in available_languages(wordlist="small"):
        return {}
    return get_frequency_dict(language, wordlist="small")


@functools.lru_cache(maxsize=131072)
def zipf(word: str, language: str = "en") -> float:
    """The Zipf frequency of ``word`` (any case) in ``language``; 0.0 when the list does not hold it."""
    frequency = _frequencies(language).get(word.lower().strip("'’-"), 0.0)
    return round(math.log10(frequency) + 9, 2) if frequency > 0 else 0.0


def known(language: str) -> bool:
    """Whether there is a word list for ``language``."""
    return bool(_frequencies(language))


def is_function_word(word: str, language: str = "en") -> bool:
    return zipf(word, language) >= FUNCTION


def is_everyday(word: str, language: str = "en") -> bool:
    """A word a reader would guess in a cloze: common in ``language`` (and, for any text, in English)."""
    return zipf(word, language) >= EVERYDAY or (language != "en" and zipf(word, "en") >= FUNCTION)
