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
    assert len(cards) == 3
