"""Keeping a deck in step with its notes: identities that follow content, re-runs that send only what changed,
stale cards for removed text, decisions and Anki edits that survive, and sessions of earlier versions upgraded.

Decks are checked by importing them with Anki's own library; requests are counted on the loopback server.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import run_cli
from fake_openai import FakeOpenAI, chunk_of, is_summary

from mkflash_tui.config import Settings
from mkflash_tui.core.chunking import chunk_document
from mkflash_tui.core.deck import STALE_TAG
from mkflash_tui.core.models import Block, Document
from mkflash_tui.core.sources import parse_bytes
from mkflash_tui.core.store import Store
from mkflash_tui.core.tokens import encoding_for_model
from mkflash_tui.job import prepare

ENCODING = encoding_for_model("gpt-4o-mini")
LEGACY = Path(__file__).parent / "data" / "legacy"
CHUNKING = ["--chunk-tokens", "300", "--overlap-tokens", "20"]


def field_notes(topics: int = 20, *, skip: int | None = None) -> list[str]:
    """Paragraphs of a Markdown text: ``topics`` sections of four paragraphs of distinct sentences."""
    parts = ["# Field Notes"]
    for t in range(topics):
        if t == skip:
            continue
        parts.append(f"## Topic {t}")
        for p in range(4):
            facts = (
                f"Topic {t} paragraph {p} fact {j} notes that sample {t}.{p}.{j} measures {units} grams."
                for j in range((t + p) % 4 + 2)
                for units in [(t * 7 + p * 3 + j) % 50 + 1]
            )
            parts.append(" ".join(facts))
    return parts


def text_of(parts: list[str]) -> str:
    return "\n\n".join(parts) + "\n"


def document(parts: list[str]) -> Document:
    return parse_bytes(text_of(parts).encode(), name="notes.md", stem="notes", suffix=".md")


@pytest.fixture
def anki(tmp_path: Path):
    collection = AnkiCollection(tmp_path / "anki")
    yield collection
    collection.close()


# ---------------------------------------------------------------- chunk identity


def test_a_chunk_id_is_its_text_and_repeated_text_does_not_collide() -> None:
    boilerplate = "This page is part of the course handbook. " * 12
    bees = "Bees dance to tell the hive where food is. " * 12
    blocks = tuple(Block(text, (heading,)) for heading, text in [("A", boilerplate), ("B", bees), ("C", boilerplate)])
    chunks = chunk_document(Document(blocks, "T", "t", "t", "text"), ENCODING, 120, 0)
    ids = [c.id for c in chunks]
    assert len(set(ids)) == len(ids)
    first, last = chunks[0], chunks[-1]
    assert first.text == last.text and first.id.split(".")[0] == last.id.split(".")[0]  # same text, same hash
    assert (first.id.split(".")[1], last.id.split(".")[1]) == ("0", "1")  # told apart by occurrence
    moved = chunk_document(Document(blocks[1:], "T", "t", "t", "text"), ENCODING, 120, 0)
    assert moved[0].id == chunks[1].id  # the same text keeps its id wherever it moves


def test_cards_wanted_depend_on_the_chunk_alone() -> None:
    parts = field_notes()
    before = prepare(Settings(chunk_tokens=300, overlap_tokens=20), document(parts))
    parts[5] += " One more sentence makes this paragraph and its chunk a little longer than they were."
    after = prepare(Settings(chunk_tokens=300, overlap_tokens=20), document(parts))
    wanted = {c.id: c.cards_wanted for c in before.chunks}
    same = [c for c in after.chunks if c.id in wanted]
    assert len(same) >= len(after.chunks) - 2
    assert all(c.cards_wanted == wanted[c.id] for c in same)


@pytest.mark.parametrize("edit", ["insert at the top", "edit in the middle", "remove a section", "append"])
def test_an_earlier_runs_chunks_are_kept_where_their_text_is_unchanged(edit: str) -> None:
    parts = field_notes(40)
    before = chunk_document(document(parts), ENCODING, 300, 20)
    if edit == "insert at the top":
        parts.insert(1, "A new opening paragraph says why these notes exist and who keeps them.")
    elif edit == "edit in the middle":
        parts[80] = parts[80].replace("fact 1", "fact one, corrected,")
    elif edit == "remove a section":
        del parts[100:105]
    else:
        parts.append("## Late addition\n\nA final remark about the samples closes the notes.")
    text = document(parts)
    after = chunk_document(text, ENCODING, 300, 20, anchors=[c.anchor for c in before])
    old = {c.id for c in before}
    changed = [c for c in after if c.id not in old]
    assert 1 <= len(changed) <= 2, [c.label for c in changed]  # the chunk with the edit and its overlap neighbour
    assert " ".join(c.body for c in after).split() == "\n\n".join(b.text for b in text.blocks).split()


# ---------------------------------------------------------------- re-runs, end to end


def generate(server: FakeOpenAI, cwd: Path, data: Path, *extra: str) -> dict:
    proc = run_cli("generate", "notes.md", "--base-url", server.base_url, "--api-key", "sk-test", *CHUNKING, "--yes",
                   "--json", "--force", *extra, cwd=cwd, env={"MKFLASH_DATA_DIR": str(data)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def sent(server: FakeOpenAI, mark: int) -> list[str]:
    return [chunk_of(b) for b in server.requests[mark:] if chunk_of(b) is not None]


def notes_by_guid(anki: AnkiCollection) -> dict[str, tuple[int, list[str], dict[str, str]]]:
    out = {}
    for nid in anki.col.find_notes(""):
        note = anki.col.get_note(nid)
        out[note.guid] = (note.id, list(note.tags), dict(note.items()))
    return out


def study(anki: AnkiCollection) -> dict[int, tuple[int, int, int]]:
    """Give every card a review history (interval, due, type), as months of study would; returns it by card."""
    history = {}
    for i, cid in enumerate(anki.col.find_cards("")):
        card = anki.col.get_card(cid)
        card.type = card.queue = 2
        card.ivl, card.due, card.reps = 10 + i, 400 + i, 3
        anki.col.update_card(card)
        history[cid] = (card.ivl, card.due, card.reps)
    return history


def history_of(anki: AnkiCollection, cid: int) -> tuple[int, int, int]:
    card = anki.col.get_card(cid)
    return card.ivl, card.due, card.reps


def test_a_deck_kept_in_step_with_edited_notes(tmp_path: Path, anki: AnkiCollection) -> None:
    """One paragraph edited, one inserted at the top, one section removed: each re-run sends only the chunks
    around the change, and in Anki every other note keeps its id, GUID and review history; the removed
    section's cards stay as notes tagged stale; the user's deletions and edits carry over."""
    parts = field_notes()
    notes = tmp_path / "notes.md"
    notes.write_text(text_of(parts))
    data = tmp_path / "data"
    deck = tmp_path / "notes.apkg"
    with FakeOpenAI() as server:
        first = generate(server, tmp_path, data)
        assert len(server.chunk_requests()) == first["chunks"] >= 30 and not first["resumed"]
        anki.import_apkg(deck)
        history = study(anki)
        before = notes_by_guid(anki)
        assert len(before) == first["cards"]

        # Decisions made in Review: one card deleted, one edited (as the app commits them).
        store = Store(data)
        stored = store.stored_chunks(first["session"])
        deleted, edited = stored[3].cards[0], stored[4].cards[0]
        store.record_decision(first["session"], deleted, deleted=True)
        edited.front = "Edited in Review: what does the fourth chunk say first?"
        store.record_decision(first["session"], edited, deleted=False)
        store.close()

        # 1. One paragraph edited in the middle.
        parts[40] = parts[40].replace("fact 1 notes", "fact 1 (corrected) notes")
        notes.write_text(text_of(parts))
        job = prepare(Settings(chunk_tokens=300, overlap_tokens=20), document(parts))
        around = {i for i, c in enumerate(job.chunks) if "(corrected)" in c.text}
        allowed = {job.chunks[i].text for i in around | {i + 1 for i in around} if i < len(job.chunks)}
        mark = len(server.requests)
        second = generate(server, tmp_path, data)
        assert second["resumed"] and second["session"] == first["session"]
        asked = sent(server, mark)
        assert 1 <= len(asked) <= 2 and set(asked) <= allowed
        assert not any(is_summary(b) for b in server.requests[mark:])  # a small edit keeps the summary
        assert second["changes"] == {"unchanged": first["chunks"] - len(asked), "changed": len(asked),
                                     "removed": len(asked), "pending": 0, "summary_kept": True}  # fmt: skip
        anki.import_apkg(deck)
        after = notes_by_guid(anki)
        kept = [g for g in before if g != _guid(deleted.id)]
        for guid in kept:  # every earlier note is still there, as the same note with the same history
            assert after[guid][0] == before[guid][0]
        for cid, past in history.items():
            assert history_of(anki, cid) == past
        stale = {g for g, (_, tags, _) in after.items() if STALE_TAG in tags}
        assert len(stale) == second["stale_cards"]
        written = deck_guids(deck, tmp_path / "check2")
        assert len(written) == second["cards"] and _guid(deleted.id) not in written
        assert set(after) == set(before) | written  # nothing doubled: new notes are only the new cards
        assert len(set(after) - set(before)) <= sum(c.cards_wanted or 0 for c in job.chunks if c.text in asked)
        assert after[_guid(edited.id)][2]["Front"] == edited.front  # the edit made in Review reached Anki

        # 2. A paragraph inserted at the top.
        parts.insert(1, "These notes were kept during the survey season by the field team.")
        notes.write_text(text_of(parts))
        mark = len(server.requests)
        third = generate(server, tmp_path, data)
        assert 1 <= len(sent(server, mark)) <= 2, third["changes"]

        # 3. A section removed: its cards become stale notes, still in the deck.
        topic = parts.index("## Topic 7")
        removed_text = parts[topic + 1 : topic + 5]
        del parts[topic : topic + 5]
        notes.write_text(text_of(parts))
        mark = len(server.requests)
        fourth = generate(server, tmp_path, data)
        assert len(sent(server, mark)) <= 2 and fourth["stale_cards"] > 0
        anki.import_apkg(deck)
        final = notes_by_guid(anki)
        stale_now = [fields for _, tags, fields in final.values() if STALE_TAG in tags]
        assert len(stale_now) == fourth["stale_cards"]
        assert any("Topic 7" in f.get("Source", "") for f in stale_now)
        gone = " ".join(removed_text)
        for _, tags, fields in final.values():
            if fields.get("Source") and fields["Source"] in gone:
                assert STALE_TAG in tags  # every card made of the removed section is marked
        # The decisions still hold after all three edits.
        mark = len(server.requests)
        generate(server, tmp_path, data, "-o", "cards.json")
        assert len(server.requests) == mark  # nothing changed: every chunk from the store
    cards = {c["id"]: c for c in json.loads((tmp_path / "cards.json").read_text())["cards"]}
    assert deleted.id not in cards and cards[edited.id]["front"] == edited.front


def deck_guids(path: Path, folder: Path) -> set[str]:
    """The GUIDs of the notes in an .apkg, as Anki imports them into an empty collection."""
    collection = AnkiCollection(folder)
    try:
        collection.import_apkg(path)
        return {n.guid for n in collection.notes()}
    finally:
        collection.close()


def _guid(card_id: str) -> str:
    from mkflash_tui.core.deck import note_guid

    return note_guid(card_id)


def test_a_dry_run_prices_only_what_changed(tmp_path: Path) -> None:
    parts = field_notes()
    (tmp_path / "notes.md").write_text(text_of(parts))
    data = tmp_path / "data"
    with FakeOpenAI() as server:
        first = generate(server, tmp_path, data)
        parts[20] = parts[20].replace("fact 0", "fact zero")
        (tmp_path / "notes.md").write_text(text_of(parts))
        mark = len(server.requests)
        whole = json.loads(run_cli("generate", "notes.md", *CHUNKING, "--dry-run", "--json", "--fresh", cwd=tmp_path,
                                   env={"MKFLASH_DATA_DIR": str(data)}).stdout)  # fmt: skip
        proc = run_cli("generate", "notes.md", "--base-url", server.base_url, "--api-key", "sk-test", *CHUNKING,
                       "--dry-run", "--json", cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(data)})  # fmt: skip
        text = run_cli("generate", "notes.md", "--base-url", server.base_url, "--api-key", "sk-test", *CHUNKING,
                       "--dry-run", cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(data)})  # fmt: skip
        assert len(server.requests) == mark  # a dry run sends nothing
    report = json.loads(proc.stdout)
    changed = report["changes"]["changed"]
    assert 1 <= changed <= 2 and report["chunks"] == changed and report["changes"]["summary_kept"]
    assert report["changes"]["unchanged"] == first["chunks"] - changed
    assert report["input_tokens"] < whole["input_tokens"] / 5
    assert f"{changed} new or changed" in text.stdout and "summary kept" in text.stdout


def test_stdin_and_pastes_are_found_by_session_name(tmp_path: Path) -> None:
    parts = field_notes(6)
    env = {"MKFLASH_DATA_DIR": str(tmp_path / "data")}
    flags = [*CHUNKING, "--json", "--force", "-o", "deck.json", "--session", "lecture 3"]
    first = run_cli("generate", "-", *flags, input=text_of(parts).encode(), cwd=tmp_path, env=env)
    parts[3] += " A sentence added after the lecture."
    second = run_cli("generate", "-", *flags, input=text_of(parts).encode(), cwd=tmp_path, env=env)
    unnamed = run_cli("generate", "-", *flags[:-2], input=text_of(parts).encode(), cwd=tmp_path, env=env)
    one, two, three = (json.loads(p.stdout) for p in (first, second, unnamed))
    assert two["resumed"] and two["session"] == one["session"]
    assert two["changes"]["changed"] >= 1 and two["changes"]["unchanged"] >= 1
    assert not three["resumed"]  # without a name, stdin is found by its text only


def test_the_summary_is_renewed_when_most_of_the_text_changed(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(text_of(field_notes(8)))
    data = tmp_path / "data"
    with FakeOpenAI() as server:
        generate(server, tmp_path, data)
        rewritten = [p.replace("measures", "weighs") for p in field_notes(8)]
        (tmp_path / "notes.md").write_text(text_of(rewritten))
        mark = len(server.requests)
        again = generate(server, tmp_path, data)
        assert sum(is_summary(b) for b in server.requests[mark:]) == 1
    assert again["resumed"] and not again["changes"]["summary_kept"] and again["changes"]["unchanged"] == 0


# ---------------------------------------------------------------- sessions of earlier versions


def legacy_workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of a store written by mkflash-tui 0.1 (an offline run of notes.md with one card deleted and one
    edited in Review), and the notes beside it."""
    (tmp_path / "data").mkdir()
    shutil.copy(LEGACY / "mkflash.sqlite3", tmp_path / "data" / "mkflash.sqlite3")
    shutil.copy(LEGACY / "notes.md", tmp_path / "notes.md")
    return tmp_path / "notes.md", {"MKFLASH_DATA_DIR": str(tmp_path / "data")}


LEGACY_FLAGS = ["--chunk-tokens", "120", "--overlap-tokens", "15", "--cards", "27", "--json", "-o", "new.json"]


def old_cards() -> list[dict]:
    return json.loads((LEGACY / "old_deck.json").read_text())["cards"]


def test_a_session_of_an_earlier_version_keeps_every_guid(tmp_path: Path) -> None:
    with sqlite3.connect(LEGACY / "mkflash.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6  # as 0.1 left it
        [(deleted_id,)] = db.execute("SELECT card_id FROM decisions WHERE deleted").fetchall()
        [(edited_id, edited_front)] = db.execute("SELECT card_id, front FROM decisions WHERE NOT deleted").fetchall()
    _, env = legacy_workspace(tmp_path)
    proc = run_cli("generate", "notes.md", *LEGACY_FLAGS, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["resumed"] and report["from_cache"] == report["chunks"] == 9
    assert report["changes"] == {"unchanged": 9, "changed": 0, "removed": 0, "pending": 0, "summary_kept": True}
    new = {c["guid"]: c for c in json.loads((tmp_path / "new.json").read_text())["cards"]}
    old = {c["guid"]: c for c in old_cards()}
    assert set(new) == set(old) - {_guid(deleted_id)}  # every GUID Anki knows, none new; the deletion kept
    assert new[_guid(edited_id)]["front"] == edited_front  # and the edit
    assert not any(c["stale"] for c in new.values())


def test_an_edited_source_of_an_earlier_versions_session_loses_no_card(tmp_path: Path) -> None:
    notes, env = legacy_workspace(tmp_path)
    notes.write_text(notes.read_text().replace("Pumice is a light", "Pumice is a very light"))
    proc = run_cli("generate", "notes.md", *LEGACY_FLAGS, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["resumed"] and report["changes"]["unchanged"] >= 1 and report["changes"]["changed"] >= 1
    new = {c["guid"]: c for c in json.loads((tmp_path / "new.json").read_text())["cards"]}
    old = {c["guid"] for c in old_cards()}
    # Every card of the earlier deck is still in it, as a current card or a stale one (but the deleted one).
    assert len(old - set(new)) == 1
    text = " ".join(notes.read_text().split())
    assert all(" ".join(c["quote"].split()) in text for c in new.values() if not c["stale"])  # made of the new text
    assert all(c["guid"] in old for c in new.values() if c["stale"])


# ---------------------------------------------------------------- the app


async def test_the_app_continues_an_edited_source_and_shows_its_stale_cards(tmp_path: Path, monkeypatch) -> None:
    from tui_support import app_settings, started, wait_for, wait_for_text

    from mkflash_tui.tui.app import make_app
    from mkflash_tui.tui.screens.dialogs import ResumeDialog
    from mkflash_tui.tui.widgets.cards import CardDetail, CardTable

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MKFLASH_DATA_DIR", str(tmp_path / "data"))
    parts = field_notes(6)
    (tmp_path / "notes.md").write_text(text_of(parts))
    assert run_cli("generate", "notes.md", *CHUNKING, "-o", "first.json", cwd=tmp_path).returncode == 0
    del parts[1:6]  # Topic 0 and its paragraphs
    (tmp_path / "notes.md").write_text(text_of(parts))
    app = make_app(app_settings("notes.md", *CHUNKING))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ResumeDialog), what="the resume question")
        await wait_for_text(pilot, "Since then the text has changed:", "removed")
        await pilot.press("enter")
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run")
        await wait_for_text(pilot, "STALE")
        stale = [c for c in screen.run.cards() if c.stale]
        earlier = json.loads((tmp_path / "first.json").read_text())["cards"]
        topic_0 = {c["id"] for c in earlier if "Topic 0 " in c["quote"]}
        assert topic_0 and topic_0 <= {c.id for c in stale}  # every card of the removed section, kept as stale
        assert not any("Topic 0 " in c.quote for c in screen.cards() if not c.stale)
        await pilot.press("2")
        await wait_for_text(pilot, "stale")
        table = app.screen.query_one(CardTable)
        table.focus()
        await pilot.press("end")
        await wait_for(pilot, lambda: table.current is not None and table.current.stale, what="a stale row")
        detail = app.screen.query_one(CardDetail)
        await wait_for(pilot, lambda: "Stale:" in str(detail.render()), what="the stale note in the detail pane")
        gone = table.current
        await pilot.press("d")
        await wait_for(pilot, lambda: gone.id not in {c.id for c in screen.cards()}, what="the delete")
        await pilot.press("x")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ExportDialog", what="the export dialog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "notes.apkg").exists(), what="the export")
    collection = AnkiCollection(tmp_path / "anki")
    try:
        collection.import_apkg(tmp_path / "notes.apkg")
        notes = collection.notes()
    finally:
        collection.close()
    assert _guid(gone.id) not in {n.guid for n in notes}
    assert sum(STALE_TAG in n.tags for n in notes) == len(stale) - 1


@pytest.mark.parametrize("edited_chunk_makes_it", [True, False])
def test_a_card_two_chunks_share_stays_one_note(tmp_path: Path, anki, edited_chunk_makes_it: bool) -> None:
    """A card every chunk repeats is exported once (from the first chunk). When the first chunk is edited, the
    card (made again by it, or now only by a later chunk) must keep the note Anki has, not add a twin."""
    from fake_openai import default_cards

    shared = {"type": "basic", "front": "What do all the samples share?", "back": "A field number.", "quote": ""}

    def cards(body: dict) -> dict:
        answer = default_cards(body)
        if chunk_of(body) and (edited_chunk_makes_it or "(corrected)" not in chunk_of(body)):
            answer["cards"].insert(0, dict(shared))
        return answer

    parts = field_notes(8)
    (tmp_path / "notes.md").write_text(text_of(parts))
    data = tmp_path / "data"
    with FakeOpenAI(cards=cards) as server:
        generate(server, tmp_path, data)
        anki.import_apkg(tmp_path / "notes.apkg")
        [first_guid] = [g for g, (_, _, f) in notes_by_guid(anki).items() if f.get("Front") == shared["front"]]
        parts[2] = parts[2].replace("fact 0 notes", "fact 0 (corrected) notes")
        (tmp_path / "notes.md").write_text(text_of(parts))
        report = generate(server, tmp_path, data)
    assert report["changes"]["changed"] >= 1
    anki.import_apkg(tmp_path / "notes.apkg")
    twins = [(g, tags) for g, (_, tags, f) in notes_by_guid(anki).items() if f.get("Front") == shared["front"]]
    assert twins == [(first_guid, twins[0][1])] and STALE_TAG not in twins[0][1]
    assert deck_guids(tmp_path / "notes.apkg", tmp_path / "check") <= set(notes_by_guid(anki))
