"""A shelf in the app: a line per document and its chunks on the board, one limit on the calls in flight across
every document, Review filtered by document with each decision kept in its document's session, one export of
the whole job (imported with Anki's library), and the whole job reopened from the sessions dialog."""

from __future__ import annotations

from pathlib import Path

from anki_check import AnkiCollection
from conftest import sections
from fake_openai import FakeOpenAI
from test_shelf import shelf_folder
from tui_support import app_settings, screen_text, wait_for

from mkflash_tui.core.deck import note_guid
from mkflash_tui.core.sources.gather import gather
from mkflash_tui.core.store import open_store
from mkflash_tui.shelf import subdeck_titles
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.confirm import ShelfConfirmScreen
from mkflash_tui.tui.screens.dialogs import DocumentPicker, ExportDialog, SessionsScreen
from mkflash_tui.tui.screens.shelf import ShelfScreen
from mkflash_tui.tui.screens.start import StartScreen
from mkflash_tui.tui.widgets.cards import CardTable
from mkflash_tui.tui.widgets.chunk_board import ChunkBoard
from mkflash_tui.tui.widgets.document_list import DocumentList

SIZE = (120, 40)


def shelf_app(server: FakeOpenAI | None, names: list[str], *flags: str):
    online = ("--base-url", server.base_url, "--api-key", "sk-test", "--yes") if server else ()
    settings = app_settings("--chunk-tokens", "120", "--overlap-tokens", "0", *online, *flags)
    return make_app(settings, shelf=(names, gather(names)))


def course(root: Path) -> None:
    """A folder of two documents: 2 and 3 chunks at --chunk-tokens 120 without overlap."""
    (root / "course").mkdir()
    (root / "course" / "one.md").write_text(sections(2, prefix="One"))
    (root / "course" / "two.md").write_text(sections(3, prefix="Two"))


async def shelf_screen(pilot, app) -> ShelfScreen:
    await wait_for(pilot, lambda: isinstance(app.run_screen, ShelfScreen), what="the shelf's screen")
    await pilot.pause()
    return app.run_screen


async def test_a_folder_runs_under_one_limit_with_a_line_per_document_and_exports_one_deck(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    notes = shelf_folder(tmp_path)
    (notes / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with FakeOpenAI(latency=0.1) as server:
        app = shelf_app(server, ["notes"], "--concurrency", "3")
        async with app.run_test(size=SIZE) as pilot:
            screen = await shelf_screen(pilot, app)
            await wait_for(pilot, lambda: screen.finished, timeout=60, what="every document")
            # The counts are brought up to date on the screen's timer.
            await wait_for(pilot, lambda: screen.card_count == len(screen.cards()), what="the counts")
            runs = screen.runs
            assert [Path(j.settings.input).name for j in screen.shelf.jobs] == [
                "alpha.md", "beta.txt", "delta.srt", "epsilon.rst", "gamma.html"]  # fmt: skip
            # One limit across every document, counted at the server; every summary and chunk was asked once.
            assert server.peak_in_flight <= 3
            assert len(server.requests) == len(runs) + sum(len(r.chunks) for r in runs)
            skipped = " ".join(str(n.message) for n in app._notifications)
            assert "broken.pdf" in skipped and "empty.md" in skipped
            # A line per document: its chunks done of all and the cards it adds to the deck; they add up.
            documents = screen.query_one(DocumentList)
            lines = [documents.line_text(i) for i in range(len(runs))]
            for line, run, index in zip(lines, runs, range(len(runs)), strict=True):
                assert f"{len(run.chunks)}/{len(run.chunks)} chunks" in line and "●" in line
                assert f"{screen.kept_by_doc[index]} card" in line
            assert sum(screen.kept_by_doc.values()) == len(screen.cards()) == screen.card_count > 0
            text = await screen_text(pilot)
            assert "Gamma" in text and f"{len(screen.cards())} cards" in text
            # The board shows the highlighted document's chunks.
            await pilot.press("down", "down")
            await wait_for(pilot, lambda: screen.query_one(ChunkBoard).run is runs[2], what="the third document")
            assert screen.query_one(ChunkBoard).ids == [c.id for c in runs[2].chunks]

            # Review, one document at a time: o picks it; a deletion goes to that document's session.
            await pilot.press("2")
            table = screen.query_one(CardTable)
            assert table.row_count == len(screen.cards())
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, DocumentPicker), what="the document picker")
            await pilot.press("down", "down", "enter")  # "All documents", then the first two: the second
            await wait_for(pilot, lambda: screen.document == 1, what="the second document")
            second = [c for c in screen.cards() if screen._doc_of_card[c.id] == 1]
            assert 0 < table.row_count == len(second) < len(screen.cards())
            assert "beta" in str(screen.query_one("#filter-count").render()).lower()
            doomed = table.current
            await pilot.press("d")
            store = open_store(screen.shelf.settings.data_dir)
            try:
                assert store.decisions(runs[1].session_id)[doomed.id][0] is True
                assert doomed.id not in store.decisions(runs[0].session_id)
            finally:
                store.close()
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, DocumentPicker), what="the document picker")
            await pilot.press("up", "up", "enter")  # the picker opens on the document shown
            await wait_for(pilot, lambda: screen.document is None, what="all documents again")
            kept = len(screen.cards())
            assert table.row_count == kept

            # One export of the whole job: the folder's deck, a subdeck per document.
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
            assert app.screen.query_one("#path").value == "notes.apkg"
            assert app.screen.query_one("#deck").value == "notes"
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Wrote" in str(app.screen.query_one("#export-message").render()),
                           what="the deck")  # fmt: skip
            titles = subdeck_titles(screen.shelf, runs)  # two documents with one title: their files tell them apart
            with_cards = {titles[screen._doc_of_card[c.id]] for c in screen.cards()}
            reviewed = {note_guid(c.id): c.front for c in screen.cards()}
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(tmp_path / "notes.apkg")
        imported = anki.notes()
    finally:
        anki.close()
    assert len(imported) == kept and note_guid(doomed.id) not in {n.guid for n in imported}
    assert {n.guid for n in imported} == set(reviewed)  # exactly what Review showed
    decks = {d for n in imported for d in n.decks}
    assert decks == {f"notes::{title}" for title in with_cards} and len(with_cards) >= 4


async def test_the_whole_job_reopens_from_the_sessions_dialog_without_a_call(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    course(tmp_path)
    with FakeOpenAI() as server:
        app = shelf_app(server, ["course"])
        async with app.run_test(size=SIZE) as pilot:
            screen = await shelf_screen(pilot, app)
            await wait_for(pilot, lambda: screen.finished, timeout=30, what="the job")
            made = {c.id for c in screen.cards()}
            sent = len(server.requests)
        assert made and sent == 2 + 5

        app = make_app(app_settings("--base-url", server.base_url, "--api-key", "sk-test"))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.screen.query("#start-form") or app.screen.query("Input"),
                           what="the start screen")  # fmt: skip
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions")
            table = app.screen.query_one("#sessions")
            first = table.get_row_at(0)
            assert "course (2 documents)" in [str(cell) for cell in first]
            await pilot.press("enter")
            screen = await shelf_screen(pilot, app)
            await wait_for(pilot, lambda: screen.finished, timeout=30, what="the reopened job")
            assert app.screen.query_one("#views").current == "review"
            assert {c.id for c in screen.cards()} == made
            assert len(server.requests) == sent  # every chunk answered from the store


async def test_the_job_is_confirmed_once_with_every_document_and_nothing_is_sent_before(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    course(tmp_path)
    with FakeOpenAI() as server:
        settings = app_settings("--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens", "120",
                                "--overlap-tokens", "0", "--model", "gpt-4o")  # fmt: skip
        app = make_app(settings, shelf=(["course"], gather(["course"])))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ShelfConfirmScreen), what="the question")
            text = await screen_text(pilot)
            assert "Send these documents to the model?" in text and "course: 2 documents" in text
            assert "one.md: 2 chunks" in text and "two.md: 3 chunks" in text and "5 to send" in text
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        assert server.requests == []
