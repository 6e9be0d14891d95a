"""Export checked by what Anki's own library imports and renders, not by trusting genanki."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest
from anki_check import AnkiCollection

from mkflash_tui.core.deck import ExportError, ExportFormat, ExportOptions, note_guid
from mkflash_tui.core.export import export_cards
from mkflash_tui.core.models import Card, CardKind, make_card_id


def card(n: int, front: str, back: str, kind: CardKind = CardKind.BASIC, headings=("Chapter One",), quote="",
         markdown: bool = True) -> Card:  # fmt: skip
    """A card as a model wrote it (``markdown=False``: as the offline generator takes it from the document)."""
    chunk_id = f"doc0-{n // 10:04d}"
    return Card(make_card_id(chunk_id, n, front, back), chunk_id, n // 10, n, front, back, quote or f"Quote {n}.",
                kind, headings=headings, markdown=markdown)  # fmt: skip


def options(**kw) -> ExportOptions:
    base = {"deck": "My Deck", "title": "My Document", "source_stem": "my notes"}
    base.update(kw)
    return ExportOptions(**base)


@pytest.fixture
def anki(tmp_path: Path):
    collection = AnkiCollection(tmp_path / "anki")
    yield collection
    collection.close()


def test_notes_cards_decks_fields_tags(tmp_path: Path, anki: AnkiCollection) -> None:
    cards = [
        card(0, "What is **bold**?", "It is *emphasis*"),
        card(1, "Paris is the {{c1::capital}} of {{c2::France}}.", "", CardKind.CLOZE),
        card(2, "Same front", "Answer one"),
        card(3, "Same front", "Answer two"),
        card(4, "Broken {{c1:: cloze", "the answer", CardKind.CLOZE),
    ]
    path = tmp_path / "deck.apkg"
    result = export_cards(cards, path, options(tags=["biology 101", "exam"]))
    anki.import_apkg(path)
    notes = {n.guid: n for n in anki.notes()}
    assert len(notes) == result.notes == 5
    assert anki.card_count() == result.cards == 6  # the c1+c2 cloze makes two cards
    assert len({note_guid(c.id) for c in cards}) == 5  # equal fronts, different GUIDs
    basic = notes[note_guid(cards[0].id)]
    assert basic.notetype == "mkflash Basic"
    assert basic.fields["Front"] == "What is <strong>bold</strong>?"
    assert basic.fields["Back"] == "It is <em>emphasis</em>"
    assert basic.fields["Source"] == "Quote 0."
    assert basic.fields["Context"] == "My Document — Chapter One"
    assert sorted(basic.tags) == sorted(["mkflash", "my_notes", "biology_101", "exam"])
    assert basic.decks == {"My Deck"}
    cloze = notes[note_guid(cards[1].id)]
    assert cloze.notetype == "mkflash Cloze" and len(cloze.card_ids) == 2
    broken = notes[note_guid(cards[4].id)]
    assert broken.notetype == "mkflash Basic" and broken.fields["Back"] == "the answer"


def test_reverse_and_subdecks(tmp_path: Path, anki: AnkiCollection) -> None:
    cards = [
        card(0, "Q1", "A1", headings=("Alpha", "Sub")),
        card(1, "Q2", "A2", headings=("Beta",)),
        card(2, "Q3", "A3", headings=()),
    ]
    path = tmp_path / "deck.apkg"
    export_cards(cards, path, options(reverse=True, subdecks=True))
    anki.import_apkg(path)
    notes = {n.guid: n for n in anki.notes()}
    assert anki.card_count() == 6
    assert notes[note_guid(cards[0].id)].decks == {"My Deck::Alpha"}
    assert notes[note_guid(cards[1].id)].decks == {"My Deck::Beta"}
    assert notes[note_guid(cards[2].id)].decks == {"My Deck"}
    assert notes[note_guid(cards[0].id)].notetype == "mkflash Basic (and reversed card)"


def test_reimport_updates_instead_of_duplicating(tmp_path: Path, anki: AnkiCollection) -> None:
    cards = [card(i, f"Question {i}?", f"Answer {i}") for i in range(4)]
    first, second = tmp_path / "a.apkg", tmp_path / "b.apkg"
    export_cards(cards, first, options())
    anki.import_apkg(first)
    anki.import_apkg(first)
    assert len(anki.notes()) == 4 and anki.card_count() == 4
    cards[2].front, cards[2].back = "Edited question?", "Edited answer"
    export_cards(cards, second, options())
    anki.import_apkg(second)
    notes = {n.guid: n for n in anki.notes()}
    assert len(notes) == 4
    assert notes[note_guid(cards[2].id)].fields["Front"] == "Edited question?"
    assert notes[note_guid(cards[2].id)].fields["Back"] == "Edited answer"
    assert notes[note_guid(cards[0].id)].fields["Front"] == "Question 0?"


def test_hostile_text_renders_literally(tmp_path: Path, anki: AnkiCollection) -> None:
    cards = [
        card(0, "What does <script>alert(1)</script> do?", "In AT&T's docs, a < b && b > c"),
        card(1, r"Solve \(x_1 < y_2\) and \[a_b^2\]", r"Use \(\frac{a}{b}\)"),
    ]
    path = tmp_path / "deck.apkg"
    export_cards(cards, path, options())
    anki.import_apkg(path)
    question, answer = anki.render(note_guid(cards[0].id))[0]
    assert "<script>" not in question and "&lt;script&gt;alert(1)&lt;/script&gt;" in question
    assert "AT&amp;T" in answer and "a &lt; b &amp;&amp; b &gt; c" in answer
    question, answer = anki.render(note_guid(cards[1].id))[0]
    # MathJax survives with its backslashes and underscores (Markdown did not eat them).
    assert r"\(x_1 &lt; y_2\)" in question and r"\[a_b^2\]" in question
    assert r"\(\frac{a}{b}\)" in answer


def test_the_documents_own_words_are_never_read_as_markdown(tmp_path: Path, anki: AnkiCollection) -> None:
    """Quotes, context and the offline generator's cards are the document's text: a fill-in blank, a dunder name,
    a numbered heading and a line starting with "- " stay exactly as written."""
    words = "Fill in the _____ with __debug__ and *args.\n4. More Control Flow Tools\n- not a bullet"
    cards = [
        card(0, "What is __debug__?", words, quote=words, headings=("4. More Control Flow Tools",), markdown=False),
        card(1, "What is **bold**?", "It is *emphasis*", quote="The __init__ method of _private objects."),
    ]
    path = tmp_path / "deck.apkg"
    export_cards(cards, path, options(title="The _Python_ Tutorial"))
    anki.import_apkg(path)
    notes = {n.guid: n for n in anki.notes()}
    document_card = notes[note_guid(cards[0].id)]
    assert document_card.fields["Front"] == "What is __debug__?"
    assert document_card.fields["Back"] == ("Fill in the _____ with __debug__ and *args.<br>4. More Control Flow Tools"
                                            "<br>- not a bullet")  # fmt: skip
    assert document_card.fields["Source"] == document_card.fields["Back"]
    assert document_card.fields["Context"] == "The _Python_ Tutorial — 4. More Control Flow Tools"
    model_card = notes[note_guid(cards[1].id)]
    assert model_card.fields["Front"] == "What is <strong>bold</strong>?"  # a model's Markdown is rendered
    assert model_card.fields["Source"] == "The __init__ method of _private objects."  # its quote is not


def test_markdown_lists_and_code(tmp_path: Path, anki: AnkiCollection) -> None:
    cards = [card(0, "Name the `list()` steps", "- first\n- second\n\n1. one\n2. two")]
    path = tmp_path / "deck.apkg"
    export_cards(cards, path, options())
    anki.import_apkg(path)
    note = anki.notes()[0]
    assert note.fields["Front"] == "Name the <code>list()</code> steps"
    assert "<ul><li>first</li><li>second</li></ul>" in note.fields["Back"]
    assert "<ol><li>one</li><li>two</li></ol>" in note.fields["Back"]


def test_csv_imports_with_ankis_own_importer_twice_without_duplicates(tmp_path: Path, anki: AnkiCollection) -> None:
    cards = [card(0, "Q & A?", "a < b"), card(1, "The {{c1::sun}} is a star.", "", CardKind.CLOZE)]
    path = tmp_path / "deck.csv"
    export_cards(cards, path, options(format=ExportFormat.CSV))
    anki.import_csv(path)
    anki.import_csv(path)
    notes = {n.guid: n for n in anki.notes()}
    assert len(notes) == 2
    basic = notes[note_guid(cards[0].id)]
    assert basic.notetype == "Basic" and basic.decks == {"My Deck"}
    assert basic.fields["Front"] == "Q &amp; A?" and basic.fields["Back"].startswith("a &lt; b")
    assert notes[note_guid(cards[1].id)].notetype == "Cloze"


def test_markdown_and_json_parse_back(tmp_path: Path) -> None:
    cards = [card(0, "Front one", "Back one", quote="A quote."), card(1, "Front two", "Back two")]
    md = tmp_path / "deck.md"
    export_cards(cards, md, options(format=ExportFormat.MD))
    body = md.read_text().split("\n", 2)[2]
    blocks = [b.strip() for b in body.split("\n===\n")]
    parsed = []
    for block in blocks:
        front, rest = block.split("\n---\n")
        back = "\n".join(line for line in rest.strip().splitlines() if not line.startswith(">")).strip()
        parsed.append((front.strip(), back))
    assert parsed == [(c.front, c.back) for c in cards]
    assert "> A quote." in md.read_text()
    js = tmp_path / "deck.json"
    export_cards(cards, js, options(format=ExportFormat.JSON))
    data = json.loads(js.read_text())
    assert [(c["id"], c["front"], c["back"], c["quote"]) for c in data["cards"]] == [
        (c.id, c.front, c.back, c.quote) for c in cards
    ]


def test_never_overwrites_without_force_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "deck.apkg"
    path.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="already exists"):
        export_cards([card(0, "Q", "A")], path, options())
    assert path.read_bytes() == b"keep me"
    export_cards([card(0, "Q", "A")], path, options(force=True))
    assert path.read_bytes()[:2] == b"PK"
    assert [p.name for p in tmp_path.iterdir()] == ["deck.apkg"]  # no temporary files left behind
    with pytest.raises(ExportError, match="does not exist"):
        export_cards([card(0, "Q", "A")], tmp_path / "missing" / "deck.apkg", options())


def test_format_from_extension() -> None:
    assert ExportFormat.for_path(Path("x.csv")) == ExportFormat.CSV
    assert ExportFormat.for_path(Path("x.md")) == ExportFormat.MD
    assert ExportFormat.for_path(Path("x.json")) == ExportFormat.JSON
    assert ExportFormat.for_path(Path("x.apkg")) == ExportFormat.APKG
    assert ExportFormat.for_path(Path("x.csv"), "json") == ExportFormat.JSON


def test_csv_header_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    export_cards([card(0, "Q", "A")], path, options(format=ExportFormat.CSV))
    lines = path.read_text().splitlines()
    assert lines[:6] == ["#separator:Comma", "#html:true", "#guid column:1", "#notetype column:2", "#deck column:3",
                         "#tags column:6"]  # fmt: skip
    row = next(csv.reader(lines[6:]))
    assert row[0] == note_guid(card(0, "Q", "A").id) and re.fullmatch(r"mkflash my_notes", row[5])


def test_a_written_deck_has_ordinary_file_permissions(tmp_path) -> None:
    import stat

    from mkflash_tui.core import export
    from mkflash_tui.core.export import atomic_write

    atomic_write(tmp_path / "deck.apkg", b"data")
    assert stat.S_IMODE((tmp_path / "deck.apkg").stat().st_mode) == 0o666 & ~export._UMASK  # not mkstemp 0600


def _note_by_guid(anki: AnkiCollection, guid: str):
    for nid in anki.col.find_notes(""):
        note = anki.col.get_note(nid)
        if note.guid == guid:
            return note
    raise KeyError(guid)


def test_a_re_export_keeps_edits_made_in_anki_and_updates_cards_edited_here(tmp_path: Path, anki) -> None:
    from mkflash_tui.core.store import Store
    from mkflash_tui.job import known_stamps

    store = Store(tmp_path / "data")
    cards = [card(i, f"What is element {i}?", f"Element {i} weighs {i} grams.") for i in range(3)]
    deck = tmp_path / "deck.apkg"

    def export() -> None:
        result = export_cards(cards, deck, options(force=True), stamps=known_stamps(store, cards))
        store.save_note_stamps(result.stamps)

    export()
    anki.import_apkg(deck)
    fixed = _note_by_guid(anki, note_guid(cards[0].id))
    fixed["Back"] = "Fixed in Anki by the user"
    anki.col.update_note(fixed)

    export()  # nothing changed here: the note keeps its old time, so Anki keeps the user's fix
    anki.import_apkg(deck)
    assert _note_by_guid(anki, note_guid(cards[0].id))["Back"] == "Fixed in Anki by the user"

    cards[1].front = "What does element 1 weigh?"  # edited in Review
    export()
    anki.import_apkg(deck)
    assert _note_by_guid(anki, note_guid(cards[1].id))["Front"] == "What does element 1 weigh?"
    assert _note_by_guid(anki, note_guid(cards[0].id))["Back"] == "Fixed in Anki by the user"
    assert len(anki.notes()) == 3


def test_the_cli_keeps_anki_edits_across_re_runs(tmp_path: Path, anki) -> None:
    from conftest import run_cli, sections

    (tmp_path / "notes.md").write_text(sections(3))
    env = {"MKFLASH_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("generate", "notes.md", cwd=tmp_path, env=env).returncode == 0
    anki.import_apkg(tmp_path / "notes.apkg")
    [first, *_] = anki.notes()
    note = _note_by_guid(anki, first.guid)
    note[next(iter(first.fields))] = "Fixed in Anki by the user"
    anki.col.update_note(note)
    edited_at = anki.col.get_note(note.id).mod
    while int(time.time()) <= edited_at:  # the re-run happens in a later second than the edit: a newer
        time.sleep(0.05)  # time on the re-exported note would make Anki overwrite the edit
    again = run_cli("generate", "notes.md", "--force", cwd=tmp_path, env=env)  # resumed: the same cards
    assert again.returncode == 0, again.stderr
    anki.import_apkg(tmp_path / "notes.apkg")
    assert _note_by_guid(anki, first.guid)[next(iter(first.fields))] == "Fixed in Anki by the user"
