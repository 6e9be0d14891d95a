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
import re
from pathlib import Path

FUNCTION = 5.4  # "durch", "through", "zeigt" are above: grammar, not knowledge
EVERYDAY = 4.0  # "shine", "degrees", "checks", "overview", "Stufe" are above: a reader guesses them


@functools.lru_cache(maxsize=16)
def _zipfs(language: str) -> dict[str, float]:
    """Word → Zipf value for ``language`` ({} when wordfreq has no list for it). The list is read straight from
    wordfreq's data file (its "cBpack": a gzipped msgpack list of a header, then one bucket of words per
    centibel of frequency): importing wordfreq itself costs 0.1 s of a run's start for what a 10 ms read gives."""
    import importlib.util

    spec = importlib.util.find_spec("wordfreq")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations or not re.fullmatch(r"[a-z]{2,3}", language):
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"small_{language}.msgpack.gz"
    if not path.is_file():
        return {}
    import gzip

    import msgpack

    with gzip.open(path, "rb") as stream:
        header, *buckets = msgpack.load(stream, raw=False)
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
        from wordfreq import get_frequency_dict  # a layout this reader does not know: ask wordfreq itself

        return {w: round(math.log10(f) + 9, 2) for w, f in get_frequency_dict(language, wordlist="small").items()}
    return {word: round(9 - index / 100, 2) for index, bucket in enumerate(buckets) for word in bucket}


@functools.lru_cache(maxsize=131072)
def zipf(word: str, language: str = "en") -> float:
    """The Zipf frequency of ``word`` (any case) in ``language``; 0.0 when the list does not hold it."""
    return _zipfs(language).get(word.lower().strip("'’-"), 0.0)


def known(language: str) -> bool:
    """Whether there is a word list for ``language``."""
    return bool(_zipfs(language))


def is_function_word(word: str, language: str = "en") -> bool:
    return zipf(word, language) >= FUNCTION


def is_everyday(word: str, language: str = "en") -> bool:
    """A word a reader would guess in a cloze: common in ``language`` (and, for any text, in English)."""
    return zipf(word, language) >= EVERYDAY or (language != "en" and zipf(word, "en") >= FUNCTION)
