"""Splitting text into sentences and content words: one place for the rules that chunking, the offline
generator and quote checking share."""

from __future__ import annotations

import re

# Terminal escape sequences (CSI "ESC [ … final", OSC "ESC ] … BEL or ESC \\", and two-byte ones) and every other
# control character but tab and newline. A terminal obeys them wherever they are printed: text that carries them
# could recolour, clear or retitle the screen, or set the clipboard (OSC 52).
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)])
_CONTROLS.update({0x0C: "\n", 0x0D: "\n"})  # a form feed is a page break; a lone CR a line break


def strip_controls(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (tab and newline stay): what is shown,
    sent or written is only printable text."""
    if text.isprintable():
        return text  # the common case, at C speed
    return _ESCAPES.sub("", text.replace("\r\n", "\n")).translate(_CONTROLS)


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

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words of the languages the offline generator tells apart (a cheap detector: which list a text's words
# fall in most). Only for choosing rules; ``STOPWORDS`` above stays the one list content words are judged by.
LANGUAGE_WORDS = {
    "en": _words("the of and to in is that it for was on are as with his they be at this have from or by"),
    "fr": _words("le la les de des du et est un une que qui dans pour pas sur au aux il elle ne se ce avec"),
    "de": _words("der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es an als"),
    "es": _words("el la los las de del y que en un una es por con para no se su al lo como más pero sus"),
    "it": _words("il lo la gli le di del della e che è un una per non con si da al nel alla sono come più"),
}
# More function words per language, for clozes: never delete one of these.
FUNCTION_WORDS = {
    "fr": _words(
        """à a au aux avec ce ces cet cette comme dans de des du elle elles en est et été être eux il ils je la le les
        leur leurs lui ma mais me même mes moi mon ne ni nos notre nous on ou où par pas plus pour qu que qui sa se
        ses si son sont sur ta te tes toi ton tout tous toute toutes très tu un une vos votre vous ça ceci cela dont
        quand alors donc car entre vers chez sous après avant pendant depuis ainsi encore déjà peu beaucoup aussi
        bien sans jusqu lorsqu puisqu quelqu fait faire avait avoir été était sont moins y c d j l m n s t"""
    ),
    "de": _words(
        """der die das den dem des ein eine einer eines einem einen und oder aber nicht noch schon sehr auch nur wenn
        dann dass wie was wer wo ist sind war waren wird werden hat haben mit von zu im in am an auf für bei aus
        nach über unter vor es er sie wir ihr ich sich man so als"""
    ),
    "es": _words(
        """el la los las un una unos unas y o pero no sí que de del al en con por para es son era fue ser estar
        su sus se lo le les como más muy ya también cuando donde porque sin sobre entre hasta desde"""
    ),
    "it": _words(
        """il lo la i gli le un uno una e o ma non che di del della dei delle al alla in con per da su è sono era
        essere si come più anche già quando dove perché senza tra fra"""
    ),
}


def detect_language(text: str) -> str:
    """The language of ``text`` among those above (English when none stands out), from its first 20,000 words."""
    tokens = re.findall(r"[^\W\d_]+", text[:150_000].lower())[:20_000]
    if not tokens:
        return "en"
    counts = {lang: sum(1 for t in tokens if t in vocab) for lang, vocab in LANGUAGE_WORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] >= max(3, 0.05 * len(tokens)) and counts[best] > counts["en"] else "en"


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
