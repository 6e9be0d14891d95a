"""Pilot tests of the Textual app against the fake OpenAI server, with real concurrency and held requests.

What the user does with the cards (delete, undo, edit, filter) is checked on the exported deck, imported with
Anki's own library.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from anki_check import AnkiCollection
from conftest import sections
from fake_openai import FakeOpenAI, Fault, chunk_of
from test_sources import make_pdf
from textual.widgets import Input, TextArea
from tui_support import app_settings, screen_text, started, wait_for, wait_for_text

from mkflash_tui.core.deck import note_guid
from mkflash_tui.core.models import ChunkState
from mkflash_tui.core.providers.offline import OfflineProvider
from mkflash_tui.job import demo_bytes
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.confirm import ConfirmScreen
from mkflash_tui.tui.screens.dialogs import EditCardDialog, ExportDialog, FixServerDialog, HelpScreen, QuitDialog
from mkflash_tui.tui.screens.run import RunScreen
from mkflash_tui.tui.screens.start import StartScreen
from mkflash_tui.tui.widgets.cards import CardTable
from mkflash_tui.tui.widgets.chunk_board import ChunkBoard

SIZE = (120, 40)
DEMO_CARDS = len(json.loads((Path(__file__).parent / "data" / "demo_cards.json").read_text()))  # the reviewed list


def notes_file(tmp_path: Path, n: int = 5) -> Path:
    path = tmp_path / "notes.md"
    path.write_text(sections(n))
    return path


def online(server: FakeOpenAI, path: Path, *flags: str):
    # --chunk-tokens 120 / no overlap: one section per chunk, so a hold can pick a chunk by its text.
    return app_settings(str(path), "--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens", "120",
                        "--overlap-tokens", "0", "--yes", *flags)  # fmt: skip


def holds_per_chunk(server: FakeOpenAI, n: int):
    return [server.hold(lambda body, i=i: f"The part {i} fact" in (chunk_of(body) or "")) for i in range(n)]


async def demo_finished(pilot, app):
    """The demo's run screen, once every chunk is done."""
    screen = await started(pilot, app)
    await wait_for(pilot, lambda: screen.finished, what="the demo run")
    return screen


def notifications(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def exported_notes(tmp_path: Path, deck: Path):
    anki = AnkiCollection(tmp_path / "anki")
    try:
        anki.import_apkg(deck)
        return anki.notes()
    finally:
        anki.close()


async def test_demo_starts_at_once_and_exports_what_review_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.finished, what="the demo run")
        screen = await started(pilot, app)
        made = screen.cards()
        assert len(made) == DEMO_CARDS
        await pilot.press("2")
        table = screen.query_one(CardTable)
        assert app.focused is table and table.cursor_row == 0 and table.row_count == DEMO_CARDS
        doomed = table.current
        await pilot.press("d")
        assert table.row_count == DEMO_CARDS - 1
        await pilot.press("x")
        assert isinstance(app.screen, ExportDialog)
        assert app.screen.query_one("#path", Input).value == "demo.apkg"
        assert app.screen.query_one("#deck", Input).value == "How Volcanoes Work"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "demo.apkg").exists(), what="the deck")
        wrote = f"Wrote {DEMO_CARDS - 1} notes"
        await wait_for(pilot, lambda: wrote in str(app.screen.query_one("#export-message").render()))
    notes = exported_notes(tmp_path, tmp_path / "demo.apkg")
    assert len(notes) == DEMO_CARDS - 1
    assert note_guid(doomed.id) not in {n.guid for n in notes}


async def test_panels_change_state_in_order_and_review_works_while_chunks_are_held(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 5)
    with FakeOpenAI() as server:
        holds = holds_per_chunk(server, 5)
        app = make_app(online(server, path))
        async with app.run_test(size=SIZE) as pilot:
            for hold in holds:
                assert await hold.wait_arrived_async(1)
            screen = await started(pilot, app)
            board = screen.query_one(ChunkBoard)
            assert len(screen.run.chunks) == 5
            await wait_for(pilot, lambda: all("running" in board.panel_text(i) for i in range(5)), what="running")
            assert server.peak_in_flight == 5  # every chunk in flight at once: concurrency, not a queue

            holds[2].release()
            await wait_for(pilot, lambda: "done" in board.panel_text(2), what="chunk 3 done")
            assert " card" in board.panel_text(2).splitlines()[2]
            assert all("running" in board.panel_text(i) for i in (0, 1, 3, 4))
            # On screen too: the board repaints the rows whose panels changed, the bar its line if it changed.
            # Rows are repainted on the screen's timer, one changed row at a time: wait for all of them.
            await wait_for_text(pilot, "  3 ● done", "1/5 chunks", *(f"{i} ◐ running" for i in (1, 2, 4, 5)))

            # Review while four chunks are still held: chunk 3's cards are there and can be deleted.
            await pilot.press("2")
            table = screen.query_one(CardTable)
            await wait_for(pilot, lambda: table.row_count == len(screen.run.status[screen.run.chunks[2].id].cards))
            assert table.row_count > 0 and {c.chunk_index for c in table.cards.values()} == {2}
            await pilot.press("d")
            assert len(screen.cards()) == table.row_count

            holds[0].release()
            await wait_for(pilot, lambda: "done" in board.panel_text(0), what="chunk 1 done")
            assert all("running" in board.panel_text(i) for i in (1, 3, 4))
            for hold in holds:
                hold.release()
            await wait_for(pilot, lambda: screen.finished, what="the run")
            log_widget = screen.query_one("#log")  # flushed on the screen's timer: wait for the last line
            await wait_for(pilot, lambda: "DONE" in "".join(log_widget.lines[-1:]), what="the log's DONE line")
            assert all("done" in board.panel_text(i) for i in range(5))
            log = "\n".join(str(line) for line in log_widget.lines)
            assert log.index("END   chunk 3/5") < log.index("END   chunk 1/5")
            assert log.count("START chunk") == 5 and log.count("END   chunk") == 5


async def test_delete_undo_edit_and_filter_reach_the_deck(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 4)
    with FakeOpenAI() as server:
        app = make_app(online(server, path, "--cards", "12"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await pilot.press("2")
            table = screen.query_one(CardTable)
            cards = screen.cards()
            assert table.row_count == len(cards) >= 8

            # Three deletes, two undos (several levels): only the first deleted card stays deleted.
            first, second, third = cards[0], cards[1], cards[2]
            for _ in range(3):
                await pilot.press("d")
            assert table.row_count == len(cards) - 3
            await pilot.press("u", "u")
            assert table.row_count == len(cards) - 1
            assert table.current.id == second.id  # the cursor follows the restored card

            # Edit front and back of the highlighted card.
            await pilot.press("e")
            assert isinstance(app.screen, EditCardDialog)
            app.screen.query_one("#front", TextArea).text = "Edited front?"
            app.screen.query_one("#back", TextArea).text = "Edited back"
            await pilot.press("ctrl+s")
            assert table.current.front == "Edited front?"

            # Filter to one card and delete it there.
            target = cards[-1]
            await pilot.press("slash")
            assert app.focused is screen.query_one("#filter", Input)
            query = next(w for w in target.back.split() if "x" in w)  # e.g. "3x5": this card's own element
            await pilot.press(*query)
            await pilot.press("enter")
            assert app.focused is table
            assert table.row_count == 1 and table.current.id == target.id
            # One live count beside the filter, of the cards the bar counts; no toast for each key typed.
            assert str(screen.query_one("#filter-count").render()) == f"1 of {len(cards) - 1} cards match"
            assert screen.card_count == len(cards) - 1
            assert not [n for n in notifications(app) if "match" in n]
            await pilot.press("d")
            await pilot.press("escape")
            assert table.row_count == len(cards) - 2

            await pilot.press("x", "enter")
            await wait_for(pilot, lambda: (tmp_path / "notes.apkg").exists(), what="the deck")
    notes = {n.guid: n for n in exported_notes(tmp_path, tmp_path / "notes.apkg")}
    assert len(notes) == len(cards) - 2
    assert note_guid(first.id) not in notes and note_guid(target.id) not in notes
    assert note_guid(third.id) in notes
    edited = notes[note_guid(second.id)]
    assert "Edited front?" in edited.fields["Front"] and "Edited back" in edited.fields["Back"]


def curse(*parts: str, active=lambda: True):
    """A fault for the fake server: chunks holding any of ``parts`` are rejected (400) while ``active()``."""

    def fault_for(number, body):
        if active() and any(part in (chunk_of(body) or "") for part in parts):
            return Fault(status=400, message="this chunk is cursed")
        return None

    return fault_for


async def test_a_failed_chunk_is_shown_and_r_retries_it(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 4)
    broken = {"on": True}

    with FakeOpenAI(fault_for=curse("The part 1 fact", active=lambda: broken["on"])) as server:
        app = make_app(online(server, path))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            board = screen.query_one(ChunkBoard)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await wait_for(pilot, lambda: any("Chunk 2 failed" in m and "cursed" in m for m in notifications(app)),
                           what="the failure notice")  # fmt: skip
            assert "failed" in board.panel_text(1) and "rejected the request" in board.panel_text(1)
            assert "1 failed" in str(screen.query_one("#run-bar").render())
            broken["on"] = False
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.finished and screen.run.counts()["failed"] == 0, what="retry")
            assert "done" in board.panel_text(1)


async def test_f_moves_to_the_next_failed_chunk(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 6)
    with FakeOpenAI(fault_for=curse("The part 1 fact", "The part 4 fact")) as server:
        app = make_app(online(server, path))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            board = screen.query_one(ChunkBoard)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            failed = sorted(s.chunk.index for s in screen.run.failures())
            assert len(failed) == 2 and board.cursor not in failed
            board.focus()
            await pilot.press("f")
            assert board.cursor == failed[0]
            await pilot.press("f")
            assert board.cursor == failed[1]
            await pilot.press("f")
            assert board.cursor == failed[0]  # round to the start


async def test_an_error_inside_a_worker_reaches_the_user(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    real = OfflineProvider.generate

    async def explode(self, request, on_tokens):
        if "Part 2" in request.location:
            raise RuntimeError("boom in the engine")
        return await real(self, request, on_tokens)

    monkeypatch.setattr(OfflineProvider, "generate", explode)
    path = notes_file(tmp_path, 4)
    app = make_app(app_settings(str(path), "--chunk-tokens", "120", "--overlap-tokens", "0"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run")
        await wait_for(pilot, lambda: any("boom in the engine" in m for m in notifications(app)), what="the notice")
        status = screen.run.status[screen.run.chunks[2].id]
        assert status.state is ChunkState.FAILED
        assert "boom in the engine" in screen.query_one(ChunkBoard).panel_text(2)
        assert screen.run.counts()["done"] == 3


async def test_cancel_keeps_finished_cards_and_retry_resumes(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 4)
    with FakeOpenAI() as server:
        holds = holds_per_chunk(server, 4)
        app = make_app(online(server, path))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            board = screen.query_one(ChunkBoard)
            holds[0].release()
            await wait_for(pilot, lambda: screen.run.status[screen.run.chunks[0].id].state is ChunkState.DONE)
            kept = len(screen.cards())
            await pilot.press("c")
            await wait_for(pilot, lambda: screen.finished, what="the cancel")
            assert "cancelled" in board.panel_text(2)
            assert len(screen.cards()) == kept > 0
            for hold in holds:
                hold.release()
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.finished and screen.run.counts()["done"] == 4, what="the retry")
            assert len(screen.cards()) > kept


async def test_export_needs_a_second_enter_to_overwrite(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.apkg").write_bytes(b"precious")
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await demo_finished(pilot, app)
        await pilot.press("x", "enter")
        message = str(app.screen.query_one("#export-message").render())
        assert "already exists" in message and "Enter again" in message
        assert (tmp_path / "demo.apkg").read_bytes() == b"precious"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "demo.apkg").read_bytes() != b"precious", what="the overwrite")
    assert len(exported_notes(tmp_path, tmp_path / "demo.apkg")) == DEMO_CARDS


async def test_quit_asks_while_cards_are_unexported(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await demo_finished(pilot, app)
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        assert f"{DEMO_CARDS} cards were never exported" in str(app.screen.reasons)
        await pilot.press("escape")
        assert app.screen is screen and app.is_running
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: (tmp_path / "demo.apkg").exists())
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")  # no question asked
        assert not isinstance(app.screen, QuitDialog)
    assert app.return_code == 0


async def test_quit_while_running_asks_and_stops_the_calls(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 3)
    with FakeOpenAI() as server:
        hold = server.hold(lambda body: chunk_of(body) is not None)
        app = make_app(online(server, path))
        async with app.run_test(size=SIZE) as pilot:
            assert await hold.wait_arrived_async(3)
            await pilot.press("q")
            assert isinstance(app.screen, QuitDialog)
            assert "still running (0 of 3" in str(app.screen.reasons)
            run = app.run_screen.run
            await pilot.press("q")
        # Quitting stopped the calls: the server saw every call in flight hang up, and no new one came.
        deadline = time.monotonic() + 15
        while hold.disconnected < 3:
            assert time.monotonic() < deadline, f"only {hold.disconnected} of 3 calls were stopped"
            await asyncio.sleep(0.02)
        hold.release()
        assert len(server.chunk_requests()) == 3
    assert app.return_code == 0 and run.cancelled
    assert all(s.state is ChunkState.CANCELLED for s in run.status.values())


async def test_paid_provider_confirms_the_cost_before_sending(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 3)
    with FakeOpenAI() as server:
        settings = app_settings(str(path), "--base-url", server.base_url, "--api-key", "sk-test")
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
            text = await screen_text(pilot)
            assert "Input tokens" in text and "$" in text and "gpt-4o-mini" in text
            assert server.requests == [] and app.run_screen is None  # nothing is sent before Enter
            await pilot.press("enter")
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            assert screen.run.counts()["done"] == len(screen.run.chunks)
            assert len(server.summary_requests()) == 1


async def test_the_confirm_screen_offers_the_batch_engine_and_the_run_shows_a_line_per_batch(
        tmp_path, monkeypatch) -> None:  # fmt: skip
    from fake_batches import BatchEngine

    import mkflash_tui.core.batch as batch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(batch, "FIRST_POLL", 0.05)
    path = notes_file(tmp_path, 3)
    engine = BatchEngine(processing=0.5)
    with FakeOpenAI(batches=engine) as server:
        settings = app_settings(str(path), "--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens",
                                "120", "--overlap-tokens", "0")  # fmt: skip
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
            live = await screen_text(pilot)
            assert "live calls, answered as they go" in live and "through the batch engine, within 24 h" in live
            await pilot.press("b")
            chosen = await wait_for_text(pilot, "through the provider's batch engine", "answered as they go (b "
                                         "switches)", "within 24 h")  # fmt: skip
            assert _cost_of(chosen) < _cost_of(live)  # the batch price, half the chunks' price
            await pilot.press("enter")
            screen = await started(pilot, app)
            await wait_for_text(pilot, "in a batch at the provider")
            await wait_for(pilot, lambda: screen.finished, what="the run")
            text = await wait_for_text(pilot, f"batch {engine.created()[0].id}: completed, 3 of 3 done")
            assert "3/3 chunks" in text
            assert screen.run.counts()["done"] == 3 and len(server.chunk_requests()) == 0
            assert len(engine.created()) == 1 and len(engine.created()[0].lines) == 3


def _cost_of(text: str) -> float:
    import re

    return float(re.search(r"Cost +about \$([0-9.]+)", text).group(1))


async def test_unknown_model_price_and_escape_goes_back_to_start(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 2)
    settings = app_settings(str(path), "--base-url", "https://llm.example.invalid/v1", "--model", "llama3.1:8b")
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
        text = await screen_text(pilot)
        assert "unknown" in text and "llama3.1:8b" in text
        await pilot.press("escape")
        assert isinstance(app.screen, StartScreen)
        assert app.screen.query_one("#path", Input).value == str(path)


async def test_start_screen_picks_a_file_and_reports_a_bad_one(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    notes_file(tmp_path, 3)
    (tmp_path / "empty.txt").write_text("   \n")
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, StartScreen)
        field = app.screen.query_one("#path", Input)
        await pilot.press(*"not")
        await wait_for(pilot, lambda: field._suggestion == "notes.md", what="the completion")
        await pilot.press("right")  # accepts the completion
        assert field.value == "notes.md"
        field.value = "empty.txt"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen) and "no text" in str(
            app.screen.query_one("#start-message").render()), what="the error")  # fmt: skip
        assert any("no text to make cards from" in m for m in notifications(app))
        app.screen.query_one("#path", Input).value = "notes.md"
        await wait_for(pilot, lambda: not str(app.screen.query_one("#start-message").render()),
                       what="the stale complaint to go")  # fmt: skip
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.finished, what="the run")
        assert app.run_screen.job.document.name == "notes.md"


async def paste_and_start(pilot, text: str):
    """On the start screen: paste ``text`` in the Paste tab, Ctrl+S, and wait for the run to finish."""
    app = pilot.app
    app.screen.query_one("#start-tabs").active = "tab-paste"
    await pilot.pause()
    app.screen.query_one("#pasted", TextArea).text = text
    await pilot.press("ctrl+s")
    screen = await started(pilot, app)
    await wait_for(pilot, lambda: screen.finished, what="the run of the pasted text")
    return screen


async def test_start_screen_takes_pasted_text(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await paste_and_start(pilot, sections(2))
        assert app.run_screen.cards()
        assert app.run_screen.job.default_output() == Path("pasted.apkg")


async def test_views_help_and_command_palette(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await demo_finished(pilot, app)
        await pilot.press("2")
        assert isinstance(app.focused, CardTable)
        await pilot.press("1")
        assert isinstance(app.focused, ChunkBoard)
        await pilot.press("enter")  # the highlighted chunk in full
        assert "Chunk 1 of" in await screen_text(pilot)
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = await screen_text(pilot)
        for words in (
            "delete the highlighted card",
            "bring back the last deleted",
            "edit the card's front",
            "show only cards",
            "write the deck",
            "send the failed",
            "stop every call",
        ):
            assert words in help_text
        await pilot.press("escape")
        titles = {c.title for c in app.get_system_commands(screen)}
        assert {"Export deck", "Cancel run", "Retry failed chunks", "Delete card", "Undo delete", "Edit card",
                "Filter cards", "Generate view", "Review view", "Help", "Quit"} <= titles  # fmt: skip
        await pilot.press("ctrl+p")
        await pilot.press(*"Export deck")
        await wait_for(pilot, lambda: any("Export deck" in str(o.prompt) for o in app.screen.query("CommandList")
                       .first().options[:1]), what="the palette's match")  # fmt: skip
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog from the palette")


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_small_and_large_terminals(tmp_path, monkeypatch, size) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=size) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run")
        board = screen.query_one(ChunkBoard)
        assert board.columns == max(1, (board.scrollable_content_region.width + 1) // 39)
        await pilot.press("2")
        table = screen.query_one(CardTable)
        assert table.size.height >= 5 and screen.query_one("#detail").size.width > 20
        assert isinstance(screen, RunScreen)


async def test_a_second_run_offers_to_resume_with_the_review_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "volcanoes.md"
    demo.write_bytes(demo_bytes())
    app = make_app(app_settings(str(demo), "--chunk-tokens", "220", "--overlap-tokens", "20"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the first run")
        await pilot.press("2")
        table = screen.query_one(CardTable)
        deleted = table.current
        await pilot.press("d")
        edited = table.current
        await pilot.press("e")
        app.screen.query_one("#front", TextArea).text = "Kept edit?"
        await pilot.press("ctrl+s")
        assert screen.run.from_cache == 0

    for choice, cached in (("enter", 6), ("f", 0)):
        app = make_app(app_settings(str(demo), "--chunk-tokens", "220", "--overlap-tokens", "20"), pace=0)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda app=app: type(app.screen).__name__ == "ResumeDialog", what="the question")
            assert "6 of 6 chunks done" in await screen_text(pilot)
            await pilot.press(choice)
            screen = await started(pilot, app)
            await wait_for(pilot, lambda screen=screen: screen.finished, what="the second run")
            assert screen.run.from_cache == cached
            cards = {c.id: c for c in screen.cards()}
            if choice == "enter":  # resumed: the deletion and the edit are still there
                assert deleted.id not in cards and cards[edited.id].front == "Kept edit?"
                assert len(cards) == DEMO_CARDS - 1
            else:  # a fresh session starts from the model's cards
                assert deleted.id in cards and cards[edited.id].front != "Kept edit?"


async def test_sessions_screen_reopens_a_pasted_text_session_in_review(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await paste_and_start(pilot, sections(3))
        made = len(screen.cards())
        await pilot.press("2", "d")

    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "SessionsScreen", what="the sessions screen")
        text = await screen_text(pilot)
        assert "Test Document" in text and "pasted text" in text
        await pilot.press("enter")
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the reopened run")
        assert screen.run.from_cache == len(screen.run.chunks)  # nothing generated again
        assert len(screen.cards()) == made - 1  # the deletion was kept
        assert screen.query_one("#views").current == "review" and app.focused is screen.query_one(CardTable)
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: (tmp_path / "pasted.apkg").exists(), what="the export")
    assert len(exported_notes(tmp_path, tmp_path / "pasted.apkg")) == made - 1


@pytest.mark.parametrize("name,data,message", [
    ("blob.txt", bytes(range(256)) * 40, "looks like a binary file"),
    ("scan.pdf", make_pdf([""]), "has no text layer"),
    ("notes", None, "is a directory"),
])  # fmt: skip
async def test_hostile_files_in_the_app_get_a_notification(tmp_path, monkeypatch, name, data, message) -> None:
    monkeypatch.chdir(tmp_path)
    if data is None:
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_bytes(data)
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#path", Input).value = name
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(message in m for m in notifications(app)), what="the notification")
        assert isinstance(app.screen, StartScreen) and app.is_running


async def test_the_demo_never_asks_and_is_generated_anew_each_time(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        app = make_app(app_settings("--demo"), pace=0)
        async with app.run_test(size=SIZE) as pilot:
            screen = await demo_finished(pilot, app)
            assert screen.run.from_cache == 0 and len(screen.cards()) == DEMO_CARDS


async def test_no_server_is_one_clear_sentence_and_a_way_to_fix_it(tmp_path, monkeypatch) -> None:
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = notes_file(tmp_path, 3)
    app = make_app(app_settings(str(path), "--base-url", f"http://127.0.0.1:{port}/v1", "--yes"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run to stop")
        # Said once, in the dialog that offers to correct the address (no toast repeats it).
        await wait_for(pilot, lambda: isinstance(app.screen, FixServerDialog), what="the fix dialog")
        assert f"nothing answers at http://127.0.0.1:{port}/v1" in app.screen.reason
        assert "Connect call failed" not in app.screen.reason
        dialog = app.screen
        await wait_for(pilot, lambda: bool(dialog.query("#fix-base-url"))
                       and app.focused is dialog.query_one("#fix-base-url"),
                       what="the address field focused (the one to correct, not the key's)")  # fmt: skip
        assert not [m for m in notifications(app) if "nothing answers" in m]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="the run screen")
        assert "nothing answers" in str(screen.query_one("#run-bar").render())
        assert screen.run.counts()["done"] == 0 and screen.cards() == []
        await pilot.press("r")  # r offers the same fix again
        await wait_for(pilot, lambda: isinstance(app.screen, FixServerDialog), what="the fix dialog again")


async def test_after_an_export_keys_close_the_dialog_and_quit(tmp_path, monkeypatch) -> None:
    """Once the deck is written, the dialog has one way out (Done, focused), so q quits instead of being typed
    into the file name just used."""
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await demo_finished(pilot, app)
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: (tmp_path / "demo.apkg").exists(), what="the export")
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        await wait_for(pilot, lambda: not dialog.query_one("#close").display, what="Close to go")
        assert app.focused is dialog.query_one("#export") and str(dialog.query_one("#export").label) == "Done"
        await pilot.press("q")  # the deck is exported: quitting asks nothing
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert app.return_code == 0
