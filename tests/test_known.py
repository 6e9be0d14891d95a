"""Cards the user already has: new cards compared with the notes of their collection — through AnkiConnect (the
fake, over a real collection), or from a file given with --against (an .apkg of mkflash-tui's, a .colpkg that
Anki's own library wrote in its zstd format) — marked in-collection, counted, and left out with --skip-known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from anki.collection import Collection
from conftest import run_cli
from fake_ankiconnect import FakeAnkiConnect
from tui_support import app_settings, screen_text, started, wait_for

from mkflash_tui.core.known import KnownIndex, KnownNote, field_text, read_file
from mkflash_tui.core.models import Card, CardKind
from mkflash_tui.job import demo_bytes
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.widgets.cards import CardTable

MAGMA = ("What is <b>magma</b>?", "Molten rock that forms beneath the Earth&#x27;s surface")


def add_own_note(col: Collection, front: str, back: str, deck: str = "Geology") -> None:
    """A note the user made in Anki, with Anki's stock Basic note type."""
    note = col.new_note(col.models.by_name("Basic"))
    note["Front"], note["Back"] = front, back
    col.add_note(note, col.decks.id(deck))


def volcanoes(tmp_path: Path, name: str = "volcanoes.md") -> Path:
    path = tmp_path / name
    path.write_bytes(demo_bytes())
    return path


def users_colpkg(tmp_path: Path) -> Path:
    """A collection with the user's own magma note, exported by Anki's library as a .colpkg (Anki 23.10+'s
    format: collection.anki21b, zstd-compressed)."""
    (tmp_path / "user").mkdir()
    col = Collection(str(tmp_path / "user" / "collection.anki2"))
    try:
        add_own_note(col, *MAGMA)
        add_own_note(col, "Capital of France?", "Paris", deck="Travel")
        out = tmp_path / "user.colpkg"
        col.export_collection_package(str(out), include_media=False, legacy=False)
    finally:
        col.close()
    return out


def test_field_html_is_compared_as_text_and_a_cloze_by_its_deletion() -> None:
    assert field_text("What is <b>magma</b>?<br>Line&nbsp;two &amp; more") == "What is magma? Line two & more"
    notes = [KnownNote(1, "g1", "Geology", "What is magma?", "Molten rock"),
             KnownNote(2, "g2", "Rust", "Each value has one {{c1::owner}} at a time.", ""),
             KnownNote(3, "mine", "Mine", "What is lava?", "Magma at the surface")]  # fmt: skip
    index = KnownIndex(notes, own_guids={"mine"})
    basic = Card("a", "c", 0, 0, "What is magma?", "Molten rock below the surface", "", CardKind.BASIC)
    cloze = Card("b", "c", 0, 1, "In Rust each value has exactly one {{c1::owner}}.", "", "", CardKind.CLOZE)
    own = Card("c", "c", 0, 2, "What is lava?", "Magma at the surface", "", CardKind.BASIC)
    new = Card("d", "c", 0, 3, "What is a caldera?", "A basin", "", CardKind.BASIC)
    assert index.mark([basic, cloze, own, new]) == 1 and len(index) == 2
    assert basic.known == "Geology › What is magma? → Molten rock" and not (own.known or new.known)
    assert index.match(Card("e", "c", 0, 4, "What does {{c1::owner}} mean?", "", "", CardKind.CLOZE)) is None


def test_against_a_colpkg_and_an_apkg_marks_and_skips_the_cards_already_there(tmp_path: Path) -> None:
    colpkg = users_colpkg(tmp_path)
    assert {n.deck for n in read_file(colpkg)} == {"Geology", "Travel"}
    path = volcanoes(tmp_path)
    marked = run_cli("generate", str(path), "--against", str(colpkg), "-o", "v.json", "--json", cwd=tmp_path)
    report = json.loads(marked.stdout)
    assert marked.returncode == 0 and report["in_collection"] == 1, marked.stderr
    assert "1 card repeat notes already in your collection (2 notes compared)" in marked.stderr
    cards = json.loads((tmp_path / "v.json").read_text())["cards"]
    assert any(c["front"] == "What is magma?" for c in cards)
    skipped = run_cli("generate", str(path), "--against", str(colpkg), "--skip-known", "-o", "s.json", "--json",
                      cwd=tmp_path)  # fmt: skip
    kept = json.loads((tmp_path / "s.json").read_text())["cards"]
    assert json.loads(skipped.stdout)["cards"] == len(cards) - 1 and not any(c["front"] == "What is magma?"
                                                                           for c in kept)  # fmt: skip
    # The deck of another document (mkflash-tui's own .apkg) holds the same facts: a second text on the same
    # subject, under other headings, has them flagged; this document's own deck flags nothing.
    run_cli("generate", str(path), "-o", "volcanoes.apkg", cwd=tmp_path)
    other = tmp_path / "notes-on-volcanoes.md"
    text = demo_bytes().decode().replace("# How Volcanoes Work", "# Lecture 3: volcanoes")
    other.write_text("\n".join(line for line in text.splitlines() if not line.startswith("## ")))  # one chunk
    overlap = json.loads(run_cli("generate", str(other), "--against", "volcanoes.apkg", "-o", "o.json", "--json",
                                 cwd=tmp_path).stdout)  # fmt: skip
    assert overlap["in_collection"] >= 3
    own = json.loads(run_cli("generate", str(path), "--against", "volcanoes.apkg", "-o", "v.json", "--force",
                             "--json", cwd=tmp_path).stdout)  # fmt: skip
    assert own["in_collection"] == 0


@pytest.mark.parametrize("content", [b"not a collection at all", None])
def test_an_against_file_that_cannot_be_read_is_one_sentence_before_anything_is_sent(tmp_path, content) -> None:
    path = volcanoes(tmp_path)
    bad = tmp_path / "broken.apkg"
    if content is not None:
        bad.write_bytes(content)
    result = run_cli("generate", str(path), "--against", str(bad), "-o", "v.apkg", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and not (tmp_path / "v.apkg").exists()
    assert "nothing was sent" in result.stderr and str(bad) in result.stderr


def test_through_ankiconnect_the_users_notes_are_flagged_and_the_sessions_own_are_not(tmp_path: Path) -> None:
    path = volcanoes(tmp_path)
    with FakeAnkiConnect(tmp_path / "anki", refuse_import=True) as anki:
        with anki.lock:
            add_own_note(anki.col, *MAGMA)
        first = run_cli("generate", str(path), "--to-anki", anki.url, "--json", cwd=tmp_path)
        report = json.loads(first.stdout)
        assert first.returncode == 0 and report["in_collection"] == 1, first.stderr
        assert report["anki"]["added"] == report["cards"]  # flagged, still sent (--skip-known leaves it out)
        again = json.loads(run_cli("generate", str(path), "--to-anki", anki.url, "--json", cwd=tmp_path).stdout)
        assert again["in_collection"] == 1 and again["anki"]["added"] == 0  # its own notes are not "known"
    with FakeAnkiConnect(tmp_path / "anki2") as anki:
        with anki.lock:
            add_own_note(anki.col, *MAGMA)
        skipped = json.loads(run_cli("generate", str(path), "--to-anki", anki.url, "--skip-known", "--json",
                                     "--data-dir", str(tmp_path / "other"), cwd=tmp_path).stdout)  # fmt: skip
        assert skipped["in_collection"] == 1 and skipped["anki"]["added"] == report["cards"] - 1
        assert len(anki.notes()) == report["cards"]  # the user's note and the cards it did not have


async def test_review_shows_the_note_the_collection_has_already(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    colpkg = users_colpkg(tmp_path)
    app = make_app(app_settings(str(volcanoes(tmp_path)), "--against", str(colpkg)), pace=0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished and any(c.known for c in screen.cards()), what="the mark")
        await pilot.press("2", "f")  # f: flagged cards, and those the collection has
        table = screen.query_one(CardTable)
        assert table.row_count == sum(1 for c in screen.cards() if c.flags or c.known) >= 1
        while table.current.front != "What is magma?":
            await pilot.press("down")
        text = await screen_text(pilot)
        assert "In your collection already" in text and "Geology › What is magma?" in text


def test_a_shelf_is_compared_too(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    volcanoes(folder, "a-volcanoes.md")
    (folder / "b-other.md").write_text("# Other\n\nA glacier moraine is rock debris a glacier carried and left.\n")
    colpkg = users_colpkg(tmp_path)
    result = run_cli("generate", str(folder), "--against", str(colpkg), "--skip-known", "-o", "job.json", "--json",
                     cwd=tmp_path)  # fmt: skip
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["in_collection"] == 1, result.stderr
    cards = [c for d in json.loads((tmp_path / "job.json").read_text())["documents"] for c in d["cards"]]
    assert len(cards) == report["cards"] and not any(c["front"] == "What is magma?" for c in cards)


def test_a_second_document_of_the_same_facts_is_flagged_and_never_takes_over_the_first_ones_notes(tmp_path):
    path = volcanoes(tmp_path)
    other = tmp_path / "lecture-3.md"
    text = demo_bytes().decode().replace("# How Volcanoes Work", "# Lecture 3: volcanoes")
    other.write_text("\n".join(line for line in text.splitlines() if not line.startswith("## ")))
    with FakeAnkiConnect(tmp_path / "anki", refuse_import=True) as anki:
        first = json.loads(run_cli("generate", str(path), "--to-anki", anki.url, "--json", cwd=tmp_path).stdout)
        second = run_cli("generate", str(other), "--to-anki", anki.url, "--json", cwd=tmp_path)
        report = json.loads(second.stdout)
        assert second.returncode == 0 and report["in_collection"] >= 3, second.stderr
        assert report["anki"]["added"] == report["cards"] and report["anki"]["moved"] == 0
        decks = [d for n in anki.notes() for d in n.decks]
        assert decks.count("How Volcanoes Work") == first["cards"] and len(decks) == first["cards"] + report["cards"]
