"""Splitting text into sentences and content words: one place for the rules that chunking, the offline
generator and quote checking share."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """
    a about above after again against all also although am an and any are as at be because been before being
    below between both but by can could did do does doing down during each either else even ever every few for
    from further had has have having he her here hers herself him himself his how however i if in into is it its
    itself just least less many may me might more most much must my myself neither no nor not now of off often
    on once one only or other others our ours ourselves out over own per perhaps rather same several shall she
    should since so some such than that the their theirs them themselves then there these they this those though
    through thus to too under until up upon us very was we were what when where whether which while who whom
    whose why will with within without would yet you your yours yourself yourselves called known used use uses
    using make makes made like first second new two three four five way ways part parts kind kinds type types
    example instance something someone thing things often usually because therefore become becomes became rise
    rises rising rose form forms formed forming appear appears appeared sink sinks sank fall falls fell predict
    predicts predicted build builds built melt melts melted travel travels travelled show shows showed allow
    allows allowed suggest suggests suggested leave leaves left pour pours poured reach reaches reached happen
    happens happened depend depends depended detect detects detected watch watches watched grow grows grew give
    gives gave take takes took come comes came get gets got set sets keep keeps kept der die das und ist sind
    ein eine einer eines nicht mit von zu den dem des im auf für als auch es sie er wir le la les un une des du
    de et est sont dans pour par sur avec qui que ce cette ces il elle ils elles au aux el los las y es son en
    por para con del al lo se su sus que una uno
    """.split()  # noqa: SIM905 - a readable list
)

WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]", re.UNICODE)
# A sentence ends after . ! ? (and any closing quote or bracket) followed by space; the space is the cut.
SENTENCE_END = re.compile(r"(?:(?<=[.!?。！？…])|(?<=[.!?。！？…][\"'”’)\]]))\s+")


def words(text: str) -> list[str]:
    """Lower-cased content words of ``text`` (no stopwords, no numbers, at least 3 letters)."""
    return [w for w in (m.group(0).lower().strip("'’-") for m in WORD.finditer(text)) if is_content(w)]


def is_content(word: str) -> bool:
    return len(word) >= 3 and word not in STOPWORDS


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` with internal whitespace collapsed."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        for sentence in SENTENCE_END.split(para):
            sentence = " ".join(sentence.split())
            if sentence:
                out.append(sentence)
    return out
