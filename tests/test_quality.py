"""The quality gate: each check on cards that must be flagged and cards that must not, near-duplicates, the
labelled fixture's precision and recall, and the gate at work for both providers, in decks and in Review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli
from fake_openai import FakeOpenAI, chunk_of

from mkflash_tui.core.models import Card, CardKind
from mkflash_tui.core.quality import BROKEN, Flag, check, flag_duplicates, gate, quote_in

FIXTURE = Path(__file__).parent / "data" / "quality" / "labelled_cards.json"


def basic(front: str, back: str, quote: str = "", card_id: str = "c") -> Card:
    return Card(card_id, "x.0", 0, 0, front, back, quote, CardKind.BASIC)


def cloze(text: str, quote: str = "", card_id: str = "c") -> Card:
    return Card(card_id, "x.0", 0, 0, text, "", quote, CardKind.CLOZE)


FLAGGED = [
    # The patterns of cards graded unusable on unseen text (issue 35), German and Spanish among them.
    (Flag.NOT_SELF_CONTAINED,
     cloze("Dieser Standard legt die {{c1::Zeichenkodierung}} für alle Dateien fest, die auf dem System liegen.")),
    (Flag.NOT_SELF_CONTAINED,
     cloze("Esta opción hace que el {{c1::cargador}} de arranque lea la configuración de la partición.")),
    (Flag.CLOZE_TRIVIAL, cloze("Die Tabelle {{c1::zeigt}} die verfügbaren Pakete und die Abhängigkeiten von allen.")),
    (Flag.CLOZE_TRIVIAL, cloze("Locales are installed {{c1::through}} the locales package on Debian.")),
    (Flag.VAGUE, basic("What are scientists?", "Now quite comfortable with the idea that most matter is dark")),
    (Flag.VAGUE, basic("What is python source code?", "Compiled into bytecode, the internal representation")),
    (Flag.BOILERPLATE, basic("Where is the rollback journal described?", "For more information, see Section 20.3")),
    (Flag.BOILERPLATE, cloze("Abschnitt 3.1.1, „Stufe 1: das {{c1::UEFI}}“")),
    (Flag.NOT_SELF_CONTAINED, cloze("This process is called {{c1::allocating}} on the heap.")),
    (Flag.NOT_SELF_CONTAINED, cloze("However, {{c1::glaciers}} also move in winter.")),
    (Flag.NOT_SELF_CONTAINED, basic("What does the passage say about tides?", "They follow the Moon")),
    (Flag.NOT_SELF_CONTAINED, cloze("In Chapter 7, you will learn about {{c1::modules}}.")),
    (Flag.NOT_SELF_CONTAINED, cloze("Rust also brings modern tools to the {{c1::systems programming}} world:")),
    (Flag.NOT_SELF_CONTAINED, cloze("* `hints` {number} Optional {{c1::lookup}} hints.")),
    (Flag.NOT_SELF_CONTAINED, cloze("Adds a rule to block a {{c1::range}} of IP addresses.")),
    (Flag.VAGUE, basic("What is if the primary?", "Down, a replica takes over")),
    (Flag.VAGUE, basic("What is when the function?", "Over, its values are popped")),
    (Flag.VAGUE, basic("What is the good news?", "That the rules get easier")),
    (Flag.VAGUE, basic("What is the KNOWLEDGE?", "THE SOFTWARE IS PROVIDED AS IS")),
    (Flag.VAGUE, basic("What is An electron?", "A subatomic particle")),
    (Flag.VAGUE, basic("What is rust?", "Ideal for many people for a variety of reasons")),
    (Flag.VAGUE, basic("What is chapter 11?", "All about testing")),
    (Flag.MALFORMED, basic("What is a glacier?", "")),
    (Flag.MALFORMED, basic("What is a glacier?", "What is a glacier?")),
    (Flag.MALFORMED, basic("???", "Yes")),
    (Flag.LONG_ANSWER, basic("Why do glaciers move?", " ".join(["word"] * 31))),
    (Flag.LIST_ANSWER, basic("Which gases does air hold?", "- nitrogen\n- oxygen\n- argon")),
    (Flag.LIST_ANSWER, basic("Which are the primary colours?", "red, green, blue, and also yellow")),
    (Flag.CLOZE_NO_DELETION, cloze("Glaciers carve valleys.")),
    (Flag.CLOZE_TRIVIAL, cloze("{{c1::The}} ocean covers most of the planet.")),
    (Flag.CLOZE_TRIVIAL, cloze("Il n'y a {{c1::pas}} de superstition qu'il n'ait attaquée.")),
    (Flag.CLOZE_TRIVIAL, cloze("Copyright belongs to the {{c1::GNU General}} Public License authors.")),
    (Flag.CLOZE_TOO_MANY, cloze("{{c1::Iron}}, {{c2::nickel}}, {{c3::cobalt}} and {{c4::gadolinium}} are magnetic.")),
    (Flag.CODE, cloze("fn main() { let s = {{c1::String}}::from(\"hello\"); }")),
    (Flag.CODE, cloze("```js server.listen({{c1::8080}}); ```")),
    (Flag.BOILERPLATE, cloze("SHOULD THE {{c1::PROGRAM}} PROVE DEFECTIVE, YOU ASSUME THE COST.")),
    (Flag.BOILERPLATE, basic("Auto Light Rust Coal Navy Ayu", "Themes")),
    (Flag.BOILERPLATE, cloze("Listing 4-4: {{c1::Transferring ownership}} of return values")),
    (Flag.BOILERPLATE, cloze("Copyright (C) 2007 {{c1::Free Software}} Foundation, Inc. All rights reserved.")),
]

CLEAN = [
    basic("What is a glacier?", "A persistent body of dense ice that moves under its own weight"),
    basic("What is The Hague?", "The seat of the Dutch government"),
    basic("Why does ice float on water?", "It is less dense than liquid water"),
    basic("What does Rust's borrow checker enforce?", "That references never outlive their data"),
    basic("Which city hosts the Louvre?", "Paris"),
    cloze("In Rust, each value has exactly one {{c1::owner}} at a time."),
    cloze("The {{c1::mitochondrion}} is the site of cellular respiration."),
    cloze("Nothing in this License limits any {{c1::implied}} license."),
    cloze("La puissance de {{c1::Molière}} sur les esprits a été immense."),
    cloze("Passing `false` for `noDelay` will enable {{c1::Nagle's algorithm}}."),
    cloze("As the {{c1::plate}} moves over a stationary hotspot, it leaves a chain of volcanoes."),
    cloze("Das {{c1::initrd-Image}} ist ein Abbild des Wurzeldateisystems, das der Kernel zuerst lädt."),
    basic("What is luminosity?", "The amount of energy emitted by a star each second"),
]


@pytest.mark.parametrize(("flag", "card"), FLAGGED, ids=[f"{f}:{c.front[:30]}" for f, c in FLAGGED])
def test_each_check_flags_what_it_should(flag: Flag, card: Card) -> None:
    assert flag in check(card)


@pytest.mark.parametrize("card", CLEAN, ids=[c.front[:40] for c in CLEAN])
def test_good_cards_carry_no_flag(card: Card) -> None:
    assert check(card) == ()


def test_a_quote_the_model_made_up_is_flagged() -> None:
    chunk = "Glaciers form where snow accumulates faster than it melts.\n\nA moraine is glacial debris."
    assert quote_in("Glaciers form where snow  accumulates faster than it melts.", chunk)
    assert quote_in("“A moraine is glacial debris”", chunk)
    assert not quote_in("Glaciers are rivers of fire.", chunk)
    assert Flag.QUOTE_NOT_FOUND in check(basic("What is a moraine?", "Debris"), quote_found=False)


def test_near_duplicates_in_document_order() -> None:
    cards = [
        basic("What is a moraine?", "Glacial debris", card_id="a"),
        basic("What is a Moraine ?", "Rock carried by ice", card_id="b"),  # same question
        basic("What does a moraine consist of?", "Glacial debris", card_id="c"),  # same answer, close question
        basic("Which city hosts the Louvre?", "Paris", card_id="d"),
        basic("What is the capital of France?", "Paris", card_id="e"),  # same answer, another question: kept
        cloze("A {{c1::moraine}} is glacial debris.", "A moraine is glacial debris.", card_id="f"),
        cloze("Glacial debris forms a {{c1::moraine}}.", "A moraine is glacial debris.", card_id="g"),  # same sentence
        cloze("The covered {{c1::work}} may be conveyed.", card_id="h"),
        cloze("Each {{c1::work}} carries notices.", card_id="i"),
        cloze("A {{c1::work}} based on the Program.", card_id="j"),  # the same term deleted a third time
    ]
    assert flag_duplicates(cards) == {"b": "a", "c": "a", "g": "f", "j": "h"}
    assert "b" not in flag_duplicates(cards, keep={"b"})  # an edited or exported card is never a repeat


def test_the_gate_drops_broken_cards_and_keeps_flagged_ones_unless_asked() -> None:
    good = basic("What is a glacier?", "A body of ice that moves", card_id="good")
    vague = basic("What is the good news?", "Rules get easier", card_id="vague")
    broken = cloze("Glaciers carve valleys.", card_id="broken")
    twin = basic("What is a glacier ?", "A body of ice that moves", card_id="twin")
    for card in (good, vague, broken, twin):
        card.flags = tuple(str(f) for f in check(card))
    kept, report = gate([good, vague, broken, twin], set())
    assert [c.id for c in kept] == ["good", "vague"]
    assert report["dropped"] == {"cloze-no-deletion": 1, "duplicate": 1} and report["flagged"] == {"vague-question": 1}
    strict, _ = gate([good, vague, broken, twin], set(), drop_flagged=True)
    assert [c.id for c in strict] == ["good"]
    kept_anyway, _ = gate([good, vague, broken, twin], {"vague", "broken"}, drop_flagged=True)
    assert [c.id for c in kept_anyway] == ["good", "vague", "broken"]  # edited or exported: never dropped
    assert Flag.DUPLICATE in BROKEN


def test_the_labelled_fixture() -> None:
    """Precision and recall of "flagged at all" against the hand labels (keep, or the flag a card deserves).

    Thresholds: precision >= 0.90, because a flag is shown to the user as a judgement on the card (and drops it
    with --drop-flagged), so it must rarely be wrong; recall >= 0.85, because the gate is a filter in front of
    the user's own review, not the last word. The rules were written with these cards in view: they are a
    regression guard, and bench_quality.py reads cards the rules were not written for."""
    cards = json.loads(FIXTURE.read_text())["cards"]
    assert len(cards) >= 200
    tp = fp = fn = 0
    for i, row in enumerate(cards):
        card = Card(f"c{i}", "x.0", 0, 0, row["front"], row["back"], row["quote"], CardKind(row["kind"]))
        flagged = bool(check(card))
        bad = row["label"] != "keep"
        tp += flagged and bad
        fp += flagged and not bad
        fn += bad and not flagged
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"labelled fixture: {len(cards)} cards, precision {precision:.2f}, recall {recall:.2f}")
    assert precision >= 0.90 and recall >= 0.85


# ---------------------------------------------------------------- the gate at work


GOOD = {"type": "basic", "front": "What is a moraine?", "back": "Debris a glacier carried and left",
        "quote": "The part 0 fact 0 states"}  # fmt: skip
VAGUE = {"type": "basic", "front": "What is the good news?", "back": "Rules get easier", "quote": ""}
BROKEN_CARD = {"type": "basic", "front": "What is a drumlin?", "back": "What is a drumlin?", "quote": ""}
TWIN = {"type": "basic", "front": "What does a moraine consist of?", "back": "Debris a glacier carried and left",
        "quote": ""}  # fmt: skip


def answers(body: dict) -> dict:
    return {"cards": [GOOD, VAGUE, BROKEN_CARD, TWIN] if chunk_of(body) else []}


def generate(server: FakeOpenAI, cwd: Path, *extra: str) -> dict:
    proc = run_cli("generate", "notes.md", "--base-url", server.base_url, "--api-key", "k", "--yes", "--json",
                   "--force", "--cards", "4", *extra, cwd=cwd, env={"MKFLASH_DATA_DIR": str(cwd / "data")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def deck(path: Path, folder: Path) -> dict[str, list[str]]:
    collection = AnkiCollection(folder)
    try:
        collection.import_apkg(path)
        return {n.fields.get("Front") or n.fields.get("Text"): n.tags for n in collection.notes()}
    finally:
        collection.close()


def test_the_model_path_gated_in_the_deck_and_the_report(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Ice\n\nThe part 0 fact 0 states that glaciers move.\n")
    with FakeOpenAI(cards=answers) as server:
        report = generate(server, tmp_path, "-o", "keep.json")
        strict = generate(server, tmp_path, "-o", "strict.json", "--drop-flagged", "--fresh")
        assert len(server.chunk_requests()) == 2  # --fresh: a session of its own, asked again
    quality = report["quality"]
    assert quality["dropped"] == {"malformed": 1, "duplicate": 1}
    assert quality["flagged"] == {"vague-question": 1} and report["cards"] == 2
    kept = {c["front"]: c for c in json.loads((tmp_path / "keep.json").read_text())["cards"]}
    assert set(kept) == {GOOD["front"], VAGUE["front"]}
    only = {c["front"]: c for c in json.loads((tmp_path / "strict.json").read_text())["cards"]}
    assert set(only) == {GOOD["front"]} and strict["quality"]["dropped"]["vague-question"] == 1
    assert only[GOOD["front"]]["id"] == kept[GOOD["front"]]["id"]  # dropping others never moves a card's id


def test_the_setting_costs_no_call_and_never_drops_what_a_deck_holds(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Ice\n\nThe part 0 fact 0 states that glaciers move.\n")
    with FakeOpenAI(cards=answers) as server:
        generate(server, tmp_path, "-o", "notes.apkg")  # the vague card is written to a deck file
        again = generate(server, tmp_path, "-o", "notes.apkg", "--drop-flagged")
        assert len(server.chunk_requests()) == 1  # the gate runs on the stored answer: no new call
    assert again["resumed"] and again["cards"] == 2 and "vague-question" not in again["quality"]["dropped"]
    notes = deck(tmp_path / "notes.apkg", tmp_path / "anki")
    assert set(notes) == {GOOD["front"], VAGUE["front"]}


def test_the_offline_generator_is_gated_too(tmp_path: Path) -> None:
    """The built-in generator runs every candidate through the gate's checks: traps give no card, sound sentences
    still do."""
    text = (
        "# Glaciers\n\nThis is why glaciers move slowly. However, rivers are fast. It melts in spring.\n\n"
        "THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.\n\n"
        "```\nlet moraine = glacier.deposit();\n```\n\n- a list item about moraines\n\n"
        "A moraine is an accumulation of unconsolidated debris carried by a glacier.\n\n"
        "Glaciers carve U-shaped valleys when thick ice slides over bedrock for thousands of years.\n"
    )
    (tmp_path / "notes.md").write_text(text)
    proc = run_cli("generate", "notes.md", "--json", "-o", "out.json", cwd=tmp_path,
                   env={"MKFLASH_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cards = json.loads((tmp_path / "out.json").read_text())["cards"]
    assert json.loads(proc.stdout)["quality"]["flagged"] == {}
    assert cards and all(not check(Card(c["id"], "x", 0, 0, c["front"], c["back"], c["quote"],
                                        CardKind(c["type"]))) for c in cards)  # fmt: skip
    quotes = " ".join(c["quote"] for c in cards)
    for trap in ("This is why", "However", "It melts", "WARRANTY", "let moraine", "list item"):
        assert trap not in quotes
    assert "What is a moraine?" in [c["front"] for c in cards]


async def test_review_shows_flags_and_the_flagged_only_view(tmp_path: Path, monkeypatch) -> None:
    from test_tui import notes_file, online
    from tui_support import started, wait_for, wait_for_text

    from mkflash_tui.tui.app import make_app
    from mkflash_tui.tui.widgets.cards import CardDetail, CardTable

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MKFLASH_DATA_DIR", str(tmp_path / "data"))
    path = notes_file(tmp_path, 2)
    with FakeOpenAI(cards=answers) as server:
        app = make_app(online(server, path, "--cards", "8"))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await pilot.press("2")
            table = screen.query_one(CardTable)
            await wait_for(pilot, lambda: table.row_count == len(screen.cards()) == 2,
                           what=f"the table ({[c.front for c in screen.cards()]})")  # fmt: skip
            await wait_for_text(pilot, "⚑ What is the good news?")
            await pilot.press("f")
            await wait_for(pilot, lambda: table.row_count == 1, what="the flagged-only view")
            assert table.current is not None and table.current.front == VAGUE["front"]
            detail = screen.query_one(CardDetail)
            await wait_for(pilot, lambda: "vague-question" in str(detail.render()), what="the explanation")
            assert "does not name a real subject" in str(detail.render())
            await pilot.press("f")
            await wait_for(pilot, lambda: table.row_count == 2, what="all cards again")


def test_a_copy_of_the_prompts_example_is_left_out_unless_the_passage_says_it() -> None:
    from mkflash_tui.core.cards import make_cards
    from mkflash_tui.core.models import CardDraft, Chunk
    from mkflash_tui.core.prompts import CARD_SYSTEM, EXAMPLE_FRONTS

    assert all(front in CARD_SYSTEM for front in EXAMPLE_FRONTS)
    copied = CardDraft(EXAMPLE_FRONTS[0], "Rock debris", "A moraine is an accumulation of unconsolidated debris.")
    volcano = Chunk("v.0", 0, "Magma rises through the crust and erupts as lava.", 20)
    glacier = Chunk("g.0", 0, "A moraine is an accumulation of unconsolidated debris carried by a glacier.", 20)
    [card] = make_cards(volcano, [copied])
    assert "malformed" in card.flags  # a weak model echoing the prompt: dropped by the gate
    [card] = make_cards(glacier, [copied])
    assert "malformed" not in card.flags  # the same question about a passage that holds it is a real card


def test_where_a_quote_starts_is_what_a_whitespace_pattern_finds() -> None:
    import random
    import re

    from mkflash_tui.core.cards import _offset_of

    def by_pattern(quote: str, text: str) -> int:
        found = re.search(r"\s+".join(re.escape(w) for w in quote.split()[:8]), text) if quote.strip() else None
        return found.start() if found else -1

    rng = random.Random(7)
    pieces = ["a", "b", "ab", "ba", " ", "  ", "\n", "\t", "a.", "(b", "\u00a0", "é"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        quote = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.5 and len(text) > 3:
            start = rng.randint(0, len(text) - 1)
            quote = text[start : start + rng.randint(1, 15)]
        assert _offset_of(quote, text, default=-1) == by_pattern(quote, text), (quote, text)
