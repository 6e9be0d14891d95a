"""Make it again: a card (``g``) or a chunk's cards (``G``) made again from Review with a note to the model, and
headless with ``mkflash-tui regenerate``. The new cards take the places and the GUIDs of the old ones, so a deck
imported again with Anki's own library has its notes updated, not doubled; undo puts the old cards back."""

from __future__ import annotations

import json
import re
from pathlib import Path

from anki_check import AnkiCollection
from conftest import run_cli, sections
from fake_openai import FakeOpenAI, default_cards
from textual.widgets import Input
from tui_support import app_settings, screen_text, started, wait_for

from mkflash_tui.core.deck import note_guid
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.dialogs import RemakeDialog
from mkflash_tui.tui.widgets.cards import CardTable

SIZE = (120, 40)
NOTE_RE = re.compile(r"The user's note \(it takes precedence over the rules above\): (.*)")
LONG = " ".join(["a long answer that keeps going"] * 8)


def asked_again(body: dict) -> str | None:
    """The note of a request that asks for cards again ("" without one), None for a first request."""
    user = str(body["messages"][1]["content"])
    if "asked for it again" not in user and "asked for them again" not in user and "cards again." not in user:
        return None
    match = NOTE_RE.search(user)
    return match.group(1) if match else ""


def remaking_cards(body: dict) -> dict:
    """The fake's cards; asked again, the same cards marked with the note (or "again"), and with the note "long"
    one whose answer the quality gate flags as too long."""
    cards = default_cards(body)
    note = asked_again(body)
    if note is None:
        return cards
    for card in cards["cards"]:
        front = card["front"].replace("{{c1::", "").replace("}}", "")
        card["type"], card["front"] = "basic", f"({note or 'again'}) {front}"
        card["back"] = LONG if note == "long" else card["back"] or "an answer"
    return cards


def online(server: FakeOpenAI, path: Path, *flags: str):
    return app_settings(str(path), "--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens", "120",
                        "--overlap-tokens", "0", "--yes", *flags)  # fmt: skip


def notifications(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def imported(folder: Path, *decks: Path):
    """The notes of a collection after importing ``decks`` in turn."""
    anki = AnkiCollection(folder)
    try:
        for deck in decks:
            anki.import_apkg(deck)
        return {n.guid: n for n in anki.notes()}
    finally:
        anki.close()


async def remake_with(pilot, app, key: str, note: str | None) -> str:
    """Press ``key``, type ``note`` in the dialog and send; the dialog's price line."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, RemakeDialog), what="the make-again dialog")
    price = str(app.screen.query_one("#remake-price").render())
    if note is not None:
        app.screen.query_one("#note", Input).value = note
    await pilot.press("enter")
    return price


async def test_g_makes_a_card_again_with_a_note_undo_puts_it_back_and_the_note_is_updated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "notes.md"
    path.write_text(sections(3))
    with FakeOpenAI(cards=remaking_cards) as server:
        app = make_app(online(server, path))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await pilot.press("x", "enter")  # exported once: Anki gets the first cards
            await wait_for(pilot, lambda: (tmp_path / "notes.apkg").exists(), what="the first deck")
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, what="the run screen")
            await pilot.press("2", "down")
            table = screen.query_one(CardTable)
            old = table.current
            count = len(screen.cards())
            sent = len(server.chunk_requests())

            price = await remake_with(pilot, app, "g", "simpler")
            assert "tokens" in price  # priced on one line, and no question for a call under a cent
            await wait_for(pilot, lambda: table.current is not None and table.current.front.startswith("(simpler)"),
                           what="the card made again")  # fmt: skip
            new = table.current
            assert new.id == old.id and new is not old  # its place and its GUID
            assert len(screen.cards()) == count
            assert [c.id for c in screen.cards()].index(new.id) == 1  # in place, in document order
            request = server.chunk_requests()[sent]
            user = request["messages"][1]["content"]
            assert "simpler" in user and "Write up to 1 flashcard " in user
            assert json.dumps(old.front, ensure_ascii=False) in user  # the card it replaces, shown to the model
            assert "simpler" in await screen_text(pilot)  # the detail pane shows the new card

            await pilot.press("u")
            assert table.current.front == old.front and table.current.id == old.id

            # The gate's flags are shown on a card made again.
            await remake_with(pilot, app, "g", "long")
            await wait_for(pilot, lambda: table.current.front.startswith("(long)"), what="the long card")
            assert "long-answer" in table.current.flags
            await wait_for(pilot, lambda: any("flagged: long-answer" in n for n in notifications(app)),
                           what="the flag named")  # fmt: skip
            await pilot.press("u")
            await remake_with(pilot, app, "g", "simpler")  # asked before with this note: answered from the store
            await wait_for(pilot, lambda: table.current.front.startswith("(simpler)"), what="the cached card")
            assert any("no call" in n for n in notifications(app))
            assert len(server.chunk_requests()) == sent + 2

            (tmp_path / "first.apkg").write_bytes((tmp_path / "notes.apkg").read_bytes())
            await pilot.press("x", "enter", "enter")  # a second Enter overwrites the first deck
            await wait_for(pilot, lambda: (tmp_path / "notes.apkg").read_bytes() != (tmp_path / "first.apkg")
                           .read_bytes(), what="the second deck")  # fmt: skip
    notes = imported(tmp_path / "anki", tmp_path / "first.apkg", tmp_path / "notes.apkg")
    assert len(notes) == count  # updated, not doubled
    assert "(simpler)" in notes[note_guid(old.id)].fields["Front"]


async def test_G_makes_the_chunk_again_and_the_session_keeps_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "notes.md"
    path.write_text(sections(3))
    with FakeOpenAI(cards=remaking_cards) as server:
        app = make_app(online(server, path, "--cards", "12"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await pilot.press("2")
            table = screen.query_one(CardTable)
            first = table.current
            chunk = [c for c in screen.cards() if c.chunk_id == first.chunk_id]
            assert len(chunk) >= 3 and chunk[0].id == first.id
            await pilot.press("down", "d", "up")  # a deleted card stays deleted: it is not asked for again
            shown = [c for c in chunk if c.id != chunk[1].id]
            await remake_with(pilot, app, "G", "")
            await wait_for(pilot, lambda: table.current.front.startswith("(again)"), what="the chunk made again")
            again = [c for c in screen.cards() if c.chunk_id == first.chunk_id]
            assert [c.id for c in again[: len(shown)]] == [c.id for c in shown]
            assert all(c.front.startswith("(again)") for c in again)
            user = server.chunk_requests()[-1]["messages"][1]["content"]
            assert all(json.dumps(c.front, ensure_ascii=False) in user for c in shown)
            assert json.dumps(chunk[1].front, ensure_ascii=False) not in user
            await pilot.press("u")
            assert [c.front for c in screen.cards() if c.chunk_id == first.chunk_id] == [c.front for c in shown]
            await pilot.press("u")  # and the deletion before it
            assert len([c for c in screen.cards() if c.chunk_id == first.chunk_id]) == len(chunk)
            await pilot.press("d")
            await remake_with(pilot, app, "G", "")  # the same ask again: no call
            await wait_for(pilot, lambda: table.current.front.startswith("(again)"), what="the chunk again")
            remade = {c.id: c.front for c in screen.cards()}
            requests = len(server.requests)

        # The session keeps the cards made again, with their ids: a second run of the file shows them.
        app = make_app(online(server, path, "--cards", "12"))
        async with app.run_test(size=SIZE) as pilot:  # --yes: the session is continued without a question
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the second run")
            assert {c.id: c.front for c in screen.cards()} == remade
        assert not [b for b in server.requests[requests:] if b.get("messages")]  # nothing sent again


async def test_offline_g_says_it_takes_no_note_and_makes_the_chunk_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the demo")
        await pilot.press("2", "down", "down")
        table = screen.query_one(CardTable)
        card = table.current
        before = [c for c in screen.cards() if c.chunk_id == card.chunk_id]
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, RemakeDialog), what="the dialog")
        text = await screen_text(pilot)
        assert "takes no note" in text and "no cost" in text
        assert not app.screen.query("#note")
        await pilot.press("enter")
        await wait_for(pilot, lambda: table.current is not None and table.current.front != card.front,
                       what="the chunk made again")  # fmt: skip
        after = [c for c in screen.cards() if c.chunk_id == card.chunk_id]
        # The chunk made again, and its next best card put in the place of this one; the others stay.
        place = before.index(card)
        assert len(after) == len(before) and after[place] is table.current
        assert [c.front for c in after if c is not after[place]] == [c.front for c in before if c is not card]
        assert table.current.front not in {c.front for c in before}
        assert table.current.id == card.id or table.current.kind != card.kind
        await pilot.press("u")
        assert [c.front for c in screen.cards() if c.chunk_id == card.chunk_id] == [c.front for c in before]


def test_regenerate_headless_prints_what_changed_and_the_deck_updates_its_notes(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(sections(3))
    with FakeOpenAI(cards=remaking_cards) as server:
        flags = ("--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens", "120", "--overlap-tokens",
                 "0", "--yes")  # fmt: skip
        first = run_cli("generate", str(path), "-o", str(tmp_path / "a.apkg"), "--json", *flags, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        session = json.loads(first.stdout)["session"]
        (tmp_path / "first.apkg").write_bytes((tmp_path / "a.apkg").read_bytes())
        listing = run_cli("generate", str(path), "-o", str(tmp_path / "a.json"), *flags, cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        exported = json.loads((tmp_path / "a.json").read_text())
        card = exported["cards"][1]

        done = run_cli("regenerate", session, "--card", card["id"][:-4], "--note", "simpler", "--api-key", "sk-test",
                       cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"chunk {card['chunk_index'] + 1}: 1 card made again" in done.stdout
        assert f"- {' '.join(card['front'].split())}" in done.stdout and "+ (simpler)" in done.stdout
        assert "making the card again: about" in done.stderr
        assert NOTE_RE.search(server.chunk_requests()[-1]["messages"][1]["content"]).group(1) == "simpler"

        chunk = run_cli("regenerate", session, "--chunk", "3", "--json", "--api-key", "sk-test", cwd=tmp_path)
        report = json.loads(chunk.stdout)
        assert chunk.returncode == 0 and report["chunk"] == 3 and report["made"][0]["front"].startswith("(again)")
        assert [c["id"] for c in report["made"]] == [c["id"] for c in report["replaced"]][: len(report["made"])]

        requests = len(server.chunk_requests())
        again = run_cli("generate", str(path), "-o", str(tmp_path / "a.apkg"), "--json", *flags, cwd=tmp_path)
        assert again.returncode == 0 and len(server.chunk_requests()) == requests  # all from the session
        assert json.loads(again.stdout)["cards"] == len(exported["cards"])

        for bad, message in ((("--card", "nope"), "has no card nope"), (("--chunk", "9"), "chunks 1 to 3, not 9"),
                             (("--chunk", "1"), None)):  # fmt: skip
            result = run_cli("regenerate", "zzzz" if message is None else session, *bad, cwd=tmp_path)
            assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert (message or "there is no session zzzz") in result.stderr and "Traceback" not in result.stderr

    notes = imported(tmp_path / "anki", tmp_path / "first.apkg", tmp_path / "a.apkg")
    assert len(notes) == len(exported["cards"])
    assert "(simpler)" in notes[note_guid(card["id"])].fields["Front"]


def test_regenerate_offline_writes_the_deck_and_anki_updates_the_notes(tmp_path):
    path = tmp_path / "volcanoes.md"
    path.write_bytes((Path(__file__).parents[1] / "mkflash_tui" / "data" / "demo.md").read_bytes())
    first = run_cli("generate", str(path), "-o", str(tmp_path / "v.apkg"), "--json", cwd=tmp_path)
    session = json.loads(first.stdout)["session"]
    (tmp_path / "first.apkg").write_bytes((tmp_path / "v.apkg").read_bytes())
    before = imported(tmp_path / "before", tmp_path / "first.apkg")

    done = run_cli("regenerate", session, "--chunk", "1", "--note", "simpler", "-o", str(tmp_path / "v.apkg"),
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the offline generator takes no note" in done.stderr and "wrote" in done.stderr
    notes = imported(tmp_path / "anki", tmp_path / "first.apkg", tmp_path / "v.apkg")
    assert set(notes) == set(before)  # every note updated in place, none added
    changed = [g for g in notes if notes[g].fields != before[g].fields]
    assert len(changed) >= 5
