"""What you review is what you get: every field of every note, as Anki's own library imports it and turned back
into text, equals what Review shows, on real documents whose words look like Markdown (tests/data/fidelity)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import ROOT
from fake_openai import FakeOpenAI
from hypothesis import given, settings
from hypothesis import strategies as st
from tui_support import app_settings, started, wait_for

from mkflash_tui.config import Settings
from mkflash_tui.core.deck import ExportFormat, effective_kind, note_guid
from mkflash_tui.core.export import export_cards
from mkflash_tui.core.fields import field_text
from mkflash_tui.core.models import CardKind
from mkflash_tui.core.sources import read_source
from mkflash_tui.job import prepare
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.widgets.cards import CardDetail, as_shown

DATA = ROOT / "tests" / "data"
DOCUMENTS = [
    DATA / "fidelity" / "python-simple-statements.txt",
    DATA / "fidelity" / "python-tutorial-controlflow.html",
    DATA / "quality" / "node-net.md",
]


def settings_for(server: FakeOpenAI | None) -> Settings:
    if server is None:
        return Settings(chunk_tokens=600, overlap_tokens=40)
    return Settings(provider="openai", model="m", base_url=server.base_url, api_key="k", chunk_tokens=600,
                    overlap_tokens=40, concurrency=16)  # fmt: skip


async def cards_of(path: Path, server: FakeOpenAI | None):
    job = prepare(settings_for(server), read_source(str(path)))
    run = job.make_run(stream=False)
    await run.run()
    await run.aclose()
    return job, run


@pytest.mark.parametrize("online", [False, True], ids=["offline", "model"])
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
async def test_every_imported_field_reads_as_review_shows_it(tmp_path: Path, path: Path, online: bool) -> None:
    with FakeOpenAI() as server:
        job, run = await cards_of(path, server if online else None)
    cards = run.cards()
    assert len(cards) >= 10
    deck = tmp_path / "deck.apkg"
    options = job.export_options(title=run.title)
    export_cards(cards, deck, options)
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(deck)
        notes = {n.guid: n for n in anki.notes()}
    finally:
        anki.close()
    assert len(notes) == len(cards)
    mismatches = []
    for card in cards:
        note = notes[note_guid(card.id)]
        cloze = effective_kind(card) is CardKind.CLOZE
        first, second = ("Text", "Back Extra") if cloze else ("Front", "Back")
        expected = {first: as_shown(card.front, card.markdown), second: as_shown(card.back, card.markdown),
                    "Source": as_shown(card.quote, False)}  # fmt: skip
        for name, shown in expected.items():
            if field_text(note.fields[name]) != shown:
                mismatches.append((name, shown, note.fields[name]))
        context = field_text(note.fields["Context"])
        assert context == " — ".join(p for p in (run.title, card.location) if p)
    assert not mismatches, mismatches[:5]
    assert all(card.markdown is online for card in cards)


def test_the_documents_look_alike_words_survive_in_the_deck(tmp_path: Path) -> None:
    """The words of the report that started this: on the plain-text reference, no field of any note lost a
    blank or a dunder name to Markdown, and no heading became a list."""
    import asyncio

    job, run = asyncio.run(cards_of(DOCUMENTS[0], None))
    cards = run.cards()
    deck = tmp_path / "deck.apkg"
    export_cards(cards, deck, job.export_options(title=run.title))
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(deck)
        fields = [f for n in anki.notes() for f in n.fields.values()]
    finally:
        anki.close()
    marks = ("<strong>", "<em>", "<b>", "<i>", "<li>", "<ol")
    assert not [f for f in fields if any(mark in f for mark in marks)]
    csv_path = tmp_path / "deck.csv"
    export_cards(cards, csv_path, dataclasses.replace(job.export_options(title=run.title), format=ExportFormat.CSV))
    assert not any(mark in csv_path.read_text() for mark in marks)  # the CSV export holds the same words
    quoted = [c.quote for c in cards if "__" in c.quote or "_____" in c.quote]
    assert quoted and all(any(q.replace("\n", " ")[:40] in field_text(f) for f in fields) for q in quoted[:5])


async def test_the_detail_pane_shows_the_notes_text(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(cards=lambda body: {"cards": [{"type": "basic", "front": "What does **`pass`** do?",
                                                   "back": "- nothing\n- it is a *placeholder*",
                                                   "quote": "pass is a null operation"}]}) as server:  # fmt: skip
        path = tmp_path / "n.md"
        path.write_text("# Notes\n\npass is a null operation: nothing happens when it executes.\n")
        app = make_app(app_settings(str(path), "--base-url", server.base_url, "--api-key", "k", "--yes"))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished and screen.cards(), what="the card")
            screen.action_view("review")
            await pilot.pause(0.3)
            detail = str(screen.query_one(CardDetail).render())
    assert "What does pass do?" in detail and "• nothing" in detail and "• it is a placeholder" in detail
    assert "**" not in detail and "`" not in detail


_MARKDOWNISH = "ab 1.)-+*=_>#`[]()<>!|~&\"'\\$\t\n{}:/ \u00a0é字"


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(_MARKDOWNISH), max_size=24) | st.text(max_size=24))
def test_the_plain_line_shortcut_renders_what_the_markdown_parser_does(text: str) -> None:
    # A model's one-line field with nothing Markdown reads skips the parser; whatever the text, the field is
    # the parser's own rendering.
    from mkflash_tui.core import fields

    cleaned = text.replace("\x00", "").replace("\ue000", "").replace("\ue001", "")
    if not cleaned:
        return
    assert fields.render_field(text, markdown=True) == fields._render_markdown(cleaned)


def test_the_plain_line_shortcut_is_taken_for_ordinary_sentences() -> None:
    from mkflash_tui.core import fields

    for line in ("What does the mantle do?", "It moves 3 cm a year, about 1/3 of the rate.", "Straße, 東京 (2024)"):
        assert fields._PLAIN.fullmatch(line)
    for line in ("1. a list", "# a heading", "*emphasis*", "a `code` span", "x &amp; y", "say \"hi\"", " lead"):
        assert not fields._PLAIN.fullmatch(line)
