"""Straight into Anki: ``--to-anki`` and "Send to Anki" against an AnkiConnect server that runs a real collection
with Anki's own library. Every test runs twice: once where AnkiConnect imports our package, once where it
refuses (a remote Anki) and the notes go one by one."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import run_cli, sections
from fake_ankiconnect import FakeAnkiConnect
from fake_openai import FakeOpenAI
from test_tui import demo_finished
from tui_support import wait_for

from mkflash_tui.cli import app_parser
from mkflash_tui.config import settings_from_args
from mkflash_tui.core.deck import STALE_TAG
from mkflash_tui.core.store import open_store
from mkflash_tui.job import demo_bytes
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.dialogs import ExportDialog


def bring_note_types(fake: FakeAnkiConnect, tmp_path: Path) -> None:
    """What a user of a remote Anki does once: import one deck made by mkflash-tui (its note types come along),
    here then emptied again."""
    deck = tmp_path / "types.apkg"
    proc = run_cli("generate", "--demo", "-o", str(deck), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fake.import_apkg(deck)
    with fake.lock:
        fake.col.remove_notes(list(fake.col.find_notes("")))


@pytest.fixture(params=["import", "notes"])
def anki(request, tmp_path: Path):
    with FakeAnkiConnect(tmp_path / "anki", refuse_import=request.param == "notes") as fake:
        fake.method = request.param
        if request.param == "notes":
            bring_note_types(fake, tmp_path)
        yield fake


def push(tmp_path: Path, anki: FakeAnkiConnect, *extra: str, source: str = "notes.md", env=None) -> dict:
    proc = run_cli("generate", source, "--to-anki", anki.url, "--json", *extra, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["anki"]["method"] == anki.method
    return report


def write_notes(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "notes.md"
    path.write_text(sections(n))
    return path


def test_push_twice_is_one_note_per_card(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    write_notes(tmp_path)
    first = push(tmp_path, anki)
    cards = first["cards"]
    assert first["anki"] == {"added": cards, "updated": 0, "unchanged": 0, "stale": 0, "skipped": 0, "moved": 0,
                             "method": anki.method}  # fmt: skip
    assert not (tmp_path / "notes.apkg").exists()  # --to-anki alone writes no file
    again = push(tmp_path, anki)
    assert again["anki"]["added"] == again["anki"]["updated"] == 0 and again["anki"]["unchanged"] == cards
    notes = anki.notes()
    assert len(notes) == cards and {n.notetype for n in notes} <= {"mkflash Basic", "mkflash Cloze"}
    assert all(n.decks == {"Test Document"} and "mkflash" in n.tags for n in notes)
    if anki.method == "notes":  # batches, not one request per card
        assert anki.requests < 30


def test_an_edit_in_anki_survives_a_push_of_the_unchanged_card(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    write_notes(tmp_path)
    push(tmp_path, anki)
    note = anki.notes()[0]
    second = list(note.fields)[1]  # Back, or a cloze's Back Extra
    anki.edit_in_anki(note.guid, second, "my own words")
    report = push(tmp_path, anki)
    assert report["anki"]["updated"] == 0
    assert next(n for n in anki.notes() if n.guid == note.guid).fields[second] == "my own words"


def test_a_card_edited_in_review_updates_its_note(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    write_notes(tmp_path)
    report = push(tmp_path, anki, "-o", "deck.json")
    card = json.loads((tmp_path / "deck.json").read_text())["cards"][0]
    before = note_of(anki, card["guid"])
    front = "Edited {{c1::front}}" if card["type"] == "cloze" else "Edited front?"
    store = open_store(None)
    try:  # what Review's e and Ctrl+S commit
        store.db.execute("INSERT OR REPLACE INTO decisions VALUES (?, ?, 0, ?, ?)",
                         (report["session"], card["id"], front, "Edited back"))  # fmt: skip
        store.db.commit()
    finally:
        store.close()
    again = push(tmp_path, anki, "-o", "deck.json", "--force")
    assert again["anki"]["updated"] == 1 and again["anki"]["added"] == 0
    field = "Front" if "Front" in before else "Text"
    assert note_of(anki, card["guid"])[field] == front and len(anki.notes()) == report["cards"]


def test_a_renamed_deck_moves_the_notes_and_a_subdeck_follows_its_chapter(tmp_path: Path, anki) -> None:
    (tmp_path / "notes.md").write_bytes(demo_bytes())  # five chapters
    first = push(tmp_path, anki)
    cards = first["cards"]
    assert {d for n in anki.notes() for d in n.decks} == {"How Volcanoes Work"}
    renamed = push(tmp_path, anki, "--deck", "Earth::Volcanoes")
    assert renamed["anki"]["moved"] == cards and renamed["anki"]["added"] == 0
    assert {d for n in anki.notes() for d in n.decks} == {"Earth::Volcanoes"} and len(anki.notes()) == cards
    chapters = push(tmp_path, anki, "--deck", "Earth::Volcanoes", "--subdecks")
    assert chapters["anki"]["moved"] == cards and chapters["anki"]["added"] == 0
    decks = {d for n in anki.notes() for d in n.decks}
    assert "Earth::Volcanoes::Magma and lava" in decks and "Earth::Volcanoes::Eruptions" in decks
    assert all(d.startswith("Earth::Volcanoes::") for d in decks) and len(anki.notes()) == cards
    again = push(tmp_path, anki, "--deck", "Earth::Volcanoes", "--subdecks")
    assert again["anki"]["moved"] == 0 and again["anki"]["unchanged"] == cards


def test_the_first_push_to_a_fresh_anki_makes_the_note_types(tmp_path: Path) -> None:
    """An Anki that will not import a package and has never seen mkflash-tui: the note types are made with
    createModel (as ours: fields, templates, styling, cloze), the notes go in, and a second push adds nothing."""
    from mkflash_tui.core.export import note_types

    (tmp_path / "notes.md").write_bytes(demo_bytes())  # definitions and clozes: both note types
    with FakeAnkiConnect(tmp_path / "anki", refuse_import=True) as anki:
        anki.method = "notes"
        proc = run_cli("generate", "notes.md", "--to-anki", anki.url, "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["anki"]["added"] == report["cards"] > 0
        assert proc.stderr.count("carry Anki's own GUIDs") == 1  # said once
        with anki.lock:
            for ours in note_types()[::2]:  # basic and cloze: the kinds these cards have
                theirs = anki.col.models.by_name(ours.name)
                assert theirs is not None and theirs["id"] != ours.model_id  # Anki chose its id
                assert [f["name"] for f in theirs["flds"]] == [f["name"] for f in ours.fields]
                assert [(t["qfmt"], t["afmt"]) for t in theirs["tmpls"]] == [(t["qfmt"], t["afmt"])
                                                                             for t in ours.templates]
                assert theirs["css"] == ours.css and theirs["type"] == (1 if "Cloze" in ours.name else 0)
        notes = anki.notes()
        assert len(notes) == report["cards"] and {n.notetype for n in notes} == {"mkflash Basic", "mkflash Cloze"}
        again = push(tmp_path, anki)
        assert again["anki"]["added"] == 0 and again["anki"]["unchanged"] == report["cards"]
        assert len(anki.notes()) == report["cards"] and anki.actions.count("createModel") == 2


@pytest.mark.parametrize("anki", ["notes"], indirect=True)  # the update itself: both ways are tested above
def test_a_card_made_again_updates_its_pushed_note(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    from test_remake import remaking_cards

    write_notes(tmp_path)
    with FakeOpenAI(cards=remaking_cards) as server:
        flags = ("--base-url", server.base_url, "--api-key", "sk-test", "--yes", "-o", "deck.json", "--force")
        report = push(tmp_path, anki, *flags)
        card = next(c for c in json.loads((tmp_path / "deck.json").read_text())["cards"] if c["type"] == "basic")
        done = run_cli("regenerate", report["session"], "--card", card["id"], "--note", "simpler", "--api-key",
                       "sk-test", cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        again = push(tmp_path, anki, *flags)
    assert again["anki"]["updated"] == 1 and again["anki"]["added"] == 0
    assert note_of(anki, card["guid"])["Front"].startswith("(simpler)") and len(anki.notes()) == report["cards"]


def note_of(anki: FakeAnkiConnect, guid: str) -> dict[str, str]:
    """The fields of the note a card became, by the note id the store kept for it (our GUID, or Anki's own)."""
    store = open_store(None)
    try:
        note_id = store.anki_notes(anki.url, [guid])[guid][0]
    finally:
        store.close()
    with anki.lock:
        return dict(anki.col.get_note(note_id).items())


def test_a_removed_section_is_tagged_and_suspended_or_pruned(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    path = write_notes(tmp_path, 4)
    push(tmp_path, anki, "--chunk-tokens", "100", "--overlap-tokens", "0")
    before = anki.note_ids()
    text = path.read_text()
    path.write_text(text[: text.index("## Part 3")])  # the last section is gone
    report = push(tmp_path, anki, "--chunk-tokens", "100", "--overlap-tokens", "0")
    stale = [n for n in anki.notes() if STALE_TAG in n.tags]
    assert stale and report["anki"]["stale"] == len(stale)
    assert len(anki.notes()) == len(before) + report["anki"]["added"]  # nothing doubled, nothing dropped
    assert {anki.note_ids()[n.guid] for n in stale} <= anki.suspended()
    assert all("part 3 fact" in json.dumps(n.fields).lower() for n in stale)
    pruned = push(tmp_path, anki, "--chunk-tokens", "100", "--overlap-tokens", "0", "--prune")
    assert pruned["anki"]["stale"] == len(stale)
    assert not [n for n in anki.notes() if STALE_TAG in n.tags]
    assert len(anki.notes()) == len(before) + report["anki"]["added"] - len(stale)


def test_a_note_deleted_in_anki_stays_deleted_unless_readd(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    write_notes(tmp_path)
    first = push(tmp_path, anki)
    gone = anki.notes()[0].guid
    anki.delete_in_anki(gone)
    again = push(tmp_path, anki)
    assert again["anki"]["skipped"] == 1 and again["anki"]["added"] == 0
    assert gone not in anki.note_ids() and len(anki.notes()) == first["cards"] - 1
    back = push(tmp_path, anki, "--readd")
    assert back["anki"]["added"] == 1 and len(anki.notes()) == first["cards"]
    assert push(tmp_path, anki)["anki"]["added"] == 0


def test_an_apkg_imported_first_then_a_push_is_one_note_per_card(tmp_path: Path, anki: FakeAnkiConnect) -> None:
    write_notes(tmp_path)
    proc = run_cli("generate", "notes.md", "-o", "deck.apkg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    anki.import_apkg(tmp_path / "deck.apkg")
    count = len(anki.notes())
    report = push(tmp_path, anki)
    assert report["anki"]["added"] == 0 and report["anki"]["unchanged"] == count and len(anki.notes()) == count


def test_a_pushed_deck_imported_again_as_apkg_is_one_note_per_card(tmp_path: Path) -> None:
    """Through our own package the notes keep our GUIDs, so the .apkg of the same cards updates them."""
    write_notes(tmp_path)
    with FakeAnkiConnect(tmp_path / "anki") as anki:
        anki.method = "import"
        report = push(tmp_path, anki, "-o", "deck.apkg")
        guids = set(anki.note_ids())
        anki.import_apkg(tmp_path / "deck.apkg")
        assert set(anki.note_ids()) == guids and len(guids) == report["cards"]


def test_an_older_ankiconnect_answers_null_for_a_note_it_cannot_add(tmp_path: Path) -> None:
    write_notes(tmp_path)
    with FakeAnkiConnect(tmp_path / "anki", refuse_import=True, null_on_failure=True,
                         refuse_note=lambda fields: "element 3x5" in json.dumps(fields)) as anki:  # fmt: skip
        anki.method = "notes"
        bring_note_types(anki, tmp_path)
        report = push(tmp_path, anki)
        refused = report["anki"]["skipped"]
        assert refused >= 1 and report["anki"]["added"] == report["cards"] - refused
        assert len(anki.notes()) == report["cards"] - refused


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("case", ["not running", "wrong url", "no key", "wrong key", "old version", "clash"])
def test_each_anki_problem_is_one_sentence_and_keeps_the_session(tmp_path: Path, case: str) -> None:
    write_notes(tmp_path)
    env = {"ANKICONNECT_KEY": "wrong"} if case == "wrong key" else {}
    with FakeAnkiConnect(tmp_path / "anki", key="secret" if "key" in case else None,
                         version=4 if case == "old version" else 6,
                         refuse_import=case == "clash") as anki, FakeOpenAI() as llm:  # fmt: skip
        if case == "clash":  # the user's own note type, by the name of ours, with other fields
            anki.create_model("mkflash Cloze", ["Question", "Answer"], [{"Front": "{{Question}}",
                                                                        "Back": "{{Answer}}"}])  # fmt: skip
        url = {"not running": f"http://127.0.0.1:{closed_port()}", "wrong url": llm.base_url}.get(case, anki.url)
        proc = run_cli("generate", "notes.md", "--to-anki", url, "--json", cwd=tmp_path, env=env)
        expected = {
            "not running": "is Anki running", "wrong url": "does not answer as AnkiConnect does",
            "no key": "needs an API key: set ANKICONNECT_KEY", "wrong key": "refused the API key",
            "old version": "speaks version 4", "clash": "has a note type named 'mkflash Cloze' with other fields",
        }[case]  # fmt: skip
        assert proc.returncode == 3 and expected in proc.stderr and "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if expected in line]
        assert len(lines) == 1 and json.loads(proc.stdout)["anki"]["error"].count(expected) == 1
        assert "secret" not in proc.stderr + proc.stdout
        # The session is kept: the same command, with Anki put right, sends the cards.
        anki.key, anki.version, anki.refuse_import = None, 6, False
        if case == "clash":
            anki.rename_model("mkflash Cloze", "My cloze")
        fixed = run_cli("generate", "notes.md", "--to-anki", anki.url, "--json", cwd=tmp_path)
        report = json.loads(fixed.stdout)
        assert fixed.returncode == 0 and report["resumed"] and report["anki"]["added"] == report["cards"]


def test_the_push_never_writes_the_anki_key(tmp_path: Path) -> None:
    write_notes(tmp_path)
    with FakeAnkiConnect(tmp_path / "anki", key="anki-secret-key") as anki:
        anki.method = "import"
        push(tmp_path, anki, env={"ANKICONNECT_KEY": "anki-secret-key"})
    data = open_store(None)
    folder = data.folder
    data.close()
    for file in Path(folder).rglob("*"):
        if file.is_file():
            assert b"anki-secret-key" not in file.read_bytes(), file
    con = sqlite3.connect(Path(folder) / "mkflash.sqlite3")
    assert con.execute("SELECT COUNT(*) FROM anki_notes").fetchone()[0] > 0
    con.close()


async def test_send_to_anki_from_the_export_dialog(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeAnkiConnect(tmp_path / "anki") as anki:
        settings = settings_from_args(app_parser().parse_args(["--demo"]),
                                      environ={**os.environ, "ANKICONNECT_URL": anki.url})  # fmt: skip
        assert settings.anki_url == anki.url
        app = make_app(settings, pace=0)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await demo_finished(pilot, app)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
            await pilot.click("#send-anki")
            await wait_for(pilot, lambda: any("Sent to Anki" in str(n.message) for n in app._notifications),
                           what="the report")  # fmt: skip
            message = next(str(n.message) for n in app._notifications if "Sent to Anki" in str(n.message))
            assert f"{len(screen.cards())} added" in message
            assert len(anki.notes()) == len(screen.cards())
            assert screen.unsaved == 0  # in Anki now: quitting asks nothing
        # Anki gone: one sentence, nothing lost.
        anki.stop()
        app = make_app(settings, pace=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await demo_finished(pilot, app)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
            await pilot.click("#send-anki")
            await wait_for(pilot, lambda: any("is Anki running" in str(n.message) for n in app._notifications),
                           what="the sentence")  # fmt: skip
            assert app.is_running


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_to_anki_before_the_file_takes_the_default_address(tmp_path: Path) -> None:
    write_notes(tmp_path)
    with FakeAnkiConnect(tmp_path / "anki") as anki:
        proc = run_cli("generate", "--to-anki", "notes.md", "--json", cwd=tmp_path,
                       env={"ANKICONNECT_URL": anki.url})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["anki"]["added"] == len(anki.notes()) > 0
    proc = run_cli("generate", "notes.md", "--to-anki", "other.md", cwd=tmp_path)
    assert proc.returncode == 2 and "takes an address" in proc.stderr
