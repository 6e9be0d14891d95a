"""The offline generator: real cards, answers from the chunk, no duplicates, pinned demo output."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mkflash_tui.config import Settings
from mkflash_tui.core.models import CardKind, normalise_for_dedup
from mkflash_tui.core.providers.offline import OfflineProvider
from mkflash_tui.core.text import STOPWORDS
from mkflash_tui.job import prepare

PINNED = Path(__file__).parent / "data" / "demo_cards.json"


async def demo_cards():
    job = prepare(Settings(demo=True, chunk_tokens=220, overlap_tokens=20))
    run = job.make_run()
    await run.run()
    await run.aclose()
    return job, run.cards()


async def test_demo_cards_are_pinned() -> None:
    """The reviewed list of the demo's cards: any change in their quality must be deliberate."""
    _, cards = await demo_cards()
    got = [{"type": c.kind.value, "front": c.front, "back": c.back} for c in cards]
    expected = json.loads(PINNED.read_text())
    assert got == expected


async def test_every_answer_occurs_in_its_chunk_and_no_duplicates() -> None:
    job, cards = await demo_cards()
    texts = {c.id: " ".join(c.text.split()) for c in job.chunks}
    assert len(cards) >= 10
    keys = set()
    for card in cards:
        chunk = texts[card.chunk_id]
        if card.kind == CardKind.CLOZE:
            answer = re.search(r"\{\{c1::(.+?)\}\}", card.front).group(1)
            assert answer.lower() not in STOPWORDS
            assert re.sub(r"\{\{c1::(.+?)\}\}", r"\1", card.front) in chunk
        else:
            answer = card.back.rstrip(".")
            assert answer[0].lower() + answer[1:] in chunk or answer in chunk
        assert card.quote in chunk
        key = normalise_for_dedup(card.front) + normalise_for_dedup(card.back)
        assert key not in keys
        keys.add(key)


async def test_summary_is_extractive() -> None:
    text = (
        "Photosynthesis is the process by which plants turn light into chemical energy. "
        "Chlorophyll absorbs light mostly in the blue and red parts of the spectrum. "
        "The light reactions happen in the thylakoid membranes of the chloroplast. "
    ) * 3
    provider = OfflineProvider([text])
    result = await provider.summarize(text, "Plants")
    assert result.summary.title == "Plants"
    assert result.summary.summary and all(s.strip() in text for s in result.summary.summary.split(". ") if s)


def test_definitions_and_clozes_from_plain_sentences() -> None:
    text = (
        "Mitochondria are organelles that produce most of the chemical energy of a cell. "
        "The mitochondrial genome is inherited from the mother in most animals. "
        "Ribosomes translate messenger RNA into chains of amino acids inside the cytoplasm. "
        "Ribosomes are found in every living cell and in mitochondria."
    )
    cards = OfflineProvider([text]).cards_for(text, 3)
    assert cards[0].front == "What are mitochondria?"
    assert cards[0].back == "Organelles that produce most of the chemical energy of a cell"
    assert any(c.kind == CardKind.CLOZE for c in cards)
    assert len(cards) == 2  # "Ribosomes are found in …" says where they are, not what they are: no card


async def test_a_french_text_gets_clozes_of_its_own_terms() -> None:
    from mkflash_tui.core.sources import parse_bytes
    from mkflash_tui.core.text import FUNCTION_WORDS

    text = (Path(__file__).parent / "data" / "quality" / "moliere-fr.txt").read_text()
    job = prepare(Settings(), parse_bytes(text.encode(), name="m.txt", stem="m", suffix=".txt"))
    run = job.make_run()
    await run.run()
    await run.aclose()
    cards = run.cards()
    assert cards and all(c.kind == CardKind.CLOZE for c in cards)  # no English "What is …?" patterns
    for card in cards:
        deleted = re.search(r"\{\{c1::(.+?)\}\}", card.front).group(1).lower()
        assert not any(part in FUNCTION_WORDS["fr"] for part in re.split(r"[\s'’]+", deleted))


async def test_a_sentence_is_carded_once_across_overlapping_chunks() -> None:
    from mkflash_tui.core.sources import parse_bytes

    sentences = [f"The glacier number {i} carved a valley called Vale{i} over {i + 2} thousand years."
                 for i in range(60)]  # fmt: skip
    text = "# Glaciers\n\n" + "\n\n".join(" ".join(sentences[i : i + 3]) for i in range(0, 60, 3))
    job = prepare(Settings(chunk_tokens=200, overlap_tokens=60), parse_bytes(text.encode(), name="g.md", stem="g",
                                                                             suffix=".md"))  # fmt: skip
    assert any(c.overlap_chars for c in job.chunks)
    run = job.make_run()
    await run.run()
    await run.aclose()
    quotes = [c.quote for s in run.status.values() for c in s.cards]
    assert quotes and len(quotes) == len(set(quotes))


def test_word_frequencies_read_from_wordfreqs_file_are_wordfreqs_own() -> None:
    """``lexicon`` reads wordfreq's data file itself (importing wordfreq costs a run 0.1 s): the same values."""
    import math

    from wordfreq import get_frequency_dict

    from mkflash_tui.core import lexicon

    for language in ("en", "de", "es"):
        theirs = get_frequency_dict(language, wordlist="small")
        assert len(lexicon._zipfs(language)) == len(theirs)
        for word, frequency in list(theirs.items())[::97]:
            assert abs(lexicon.zipf(word, language) - (math.log10(frequency) + 9)) < 0.006, word
    assert lexicon.is_function_word("durch", "de") and not lexicon.is_everyday("Zeichenkodierung", "de")
    assert lexicon.is_everyday("shine") and not lexicon.is_everyday("photon")
    assert not lexicon.known("xx") and lexicon.zipf("the", "xx") == 0.0
