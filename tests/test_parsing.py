"""Tolerant parsing of model output; the parser raises only its own typed error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkflash_tui.core.models import CardKind
from mkflash_tui.core.parsing import OutputError, has_valid_cloze, parse_cards, parse_summary

GOOD = '{"cards": [{"type": "basic", "front": "Q?", "back": "A", "quote": "Q is A."}]}'


@pytest.mark.parametrize(
    "raw",
    [
        GOOD,
        f"```json\n{GOOD}\n```",
        f"Sure! Here are your cards:\n{GOOD}\nLet me know if you need more.",
        '{"cards": [{"type": "basic", "front": "Q?", "back": "A", "quote": "Q is A.",},],}',
        "{'cards': [{'type': 'basic', 'front': 'Q?', 'back': 'A', 'quote': 'Q is A.'}]}",
        '[{"question": "Q?", "answer": "A", "source": "Q is A."}]',
        '{"flashcards": [{"Front": "Q?", "Back": "A", "quote": "Q is A."}]}',
    ],
)
def test_accepts_common_shapes(raw: str) -> None:
    cards = parse_cards(raw)
    assert [(c.front, c.back, c.kind) for c in cards] == [("Q?", "A", CardKind.BASIC)]


def test_coerces_types_and_missing_fields() -> None:
    cards = parse_cards('{"cards": [{"front": 42, "back": ["a", "b"]}, {"front": "No back"}]}')
    assert [(c.front, c.back, c.quote) for c in cards] == [("42", "a; b", "")]


def test_empty_list_is_valid() -> None:
    assert parse_cards('{"cards": []}') == []


def test_cloze_kept_when_valid_and_repaired_when_not() -> None:
    cards = parse_cards(
        '{"cards": [{"type": "cloze", "front": "Paris is the {{c1::capital}} of France.", "back": ""},'
        '{"type": "cloze", "front": "Broken {{c1:: cloze", "back": "x"},'
        '{"type": "cloze", "front": "No deletion at all", "back": ""}]}'
    )
    assert cards[0].kind == CardKind.CLOZE
    assert cards[1].kind == CardKind.BASIC and cards[1].back == "x"
    assert len(cards) == 2
    assert has_valid_cloze("a {{c1::b}} c {{c2::d::hint}}")
    assert not has_valid_cloze("a {{c1::}} c")
    assert not has_valid_cloze("a {{c1::b} c")


@pytest.mark.parametrize("raw", ["", "   ", "I cannot help with that.", '{"cards": [ {"front": "broken', '{"x": 1}'])
def test_unreadable_output(raw: str) -> None:
    with pytest.raises(OutputError) as info:
        parse_cards(raw)
    assert info.value.raw == raw


def test_summary_parsing() -> None:
    assert parse_summary('{"title": "T", "summary": "S."}', "fallback").title == "T"
    prose = parse_summary("This document explains volcanoes.", "Fallback")
    assert prose.title == "Fallback" and prose.summary == "This document explains volcanoes."


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=300) | st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
       max_leaves=12).map(repr))  # fmt: skip
def test_parser_never_raises_anything_but_output_error(raw: str) -> None:
    try:
        cards = parse_cards(raw)
    except OutputError:
        return
    assert all(c.front for c in cards)
