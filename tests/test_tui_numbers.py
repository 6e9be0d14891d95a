"""Numbers that agree: one count of cards everywhere, what is left to send on resume, a status line that tells
cancelled from failed, calls in flight from the limit, and time worked from time idle."""

from __future__ import annotations

import re

from conftest import run_cli
from fake_openai import FakeOpenAI, chunk_of, default_cards
from test_tui import exported_notes, holds_per_chunk, notes_file, online
from tui_support import ManualClock, app_settings, started, wait_for, wait_for_text

from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.confirm import ConfirmScreen
from mkflash_tui.tui.screens.dialogs import QuitDialog, ResumeDialog
from mkflash_tui.tui.widgets.cards import CardTable
from mkflash_tui.tui.widgets.run_bar import RunBar

SIZE = (120, 40)


def cards_with_repeats(body: dict) -> dict:
    """The chunk's own cards plus one card every chunk repeats (dropped as a duplicate in all but the first)."""
    cards = default_cards(body)
    if chunk_of(body):
        cards["cards"].insert(0, {"type": "basic", "front": "What do all parts share?", "back": "Grams.", "quote": ""})
    return cards


def bar_text(screen) -> str:
    bar = screen.query_one(RunBar)
    return bar.render().plain


async def test_one_count_of_cards_everywhere(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 6)
    data = tmp_path / "data"
    monkeypatch.setenv("MKFLASH_DATA_DIR", str(data))
    with FakeOpenAI(cards=cards_with_repeats) as server:
        settings = online(server, path)
        settings.cards = 18  # three a chunk: the repeat and two of its own
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            made = sum(len(s.cards) for s in screen.run.status.values())
            await pilot.press("2", "d", "d")
            kept = len(screen.cards())
            assert kept == len(screen.run.cards()) - 2 < made - 2  # repeats across chunks dropped, 2 deleted
            await wait_for_text(pilot, f"2 Review ({kept})", f"{kept} cards")
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="the quit dialog")
            await wait_for_text(pilot, f"{kept} cards were never exported")
            assert "saved in this session: run the same input again to resume" in str(app.screen.reasons)
            await pilot.press("x")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ExportDialog", what="the export dialog")
            await pilot.press("enter")
            await wait_for(pilot, lambda: (tmp_path / "notes.apkg").exists(), what="the export")
        assert len(exported_notes(tmp_path, tmp_path / "notes.apkg")) == kept
        listing = run_cli("sessions", cwd=tmp_path, env={"MKFLASH_DATA_DIR": str(data)})
        row = listing.stdout.splitlines()[1].split()
        assert int(row[4]) == kept, listing.stdout  # ID DATE TIME CHUNKS CARDS …
        # Without --yes, a second run asks.
        asking = app_settings(str(path), "--base-url", server.base_url, "--api-key", "sk-test", "--chunk-tokens",
                              "120", "--overlap-tokens", "0", "--cards", "18")  # fmt: skip
        app = make_app(asking)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ResumeDialog), what="the resume question")
            assert app.screen.session.cards == kept and app.screen.session.exported_to
            await wait_for_text(pilot, f"done, {kept}")


async def test_resuming_prices_only_what_is_left_to_send(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 6)
    with FakeOpenAI() as server:
        holds = holds_per_chunk(server, 6)
        settings = online(server, path)
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            for hold in holds[:2]:
                hold.release()
            await wait_for(pilot, lambda: screen.run.counts()["done"] == 2, what="two chunks done")
            await pilot.press("c")
            await wait_for(pilot, lambda: screen.finished, what="the cancel")
            await wait_for_text(pilot, "4 cancelled")
            assert "failed" not in bar_text(screen)  # cancelled is not failed
        for hold in holds:
            hold.release()
        confirm_settings = app_settings(str(path), "--base-url", server.base_url, "--api-key", "sk-test",
                                        "--chunk-tokens", "120", "--overlap-tokens", "0")  # fmt: skip
        app = make_app(confirm_settings)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ResumeDialog), what="the resume question")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
            job = app.screen.job
            await wait_for_text(pilot, "4 to send", "(2 of 6 done earlier")
            whole = job.estimate.__class__  # the same Estimate type, for the whole run:
            from mkflash_tui.job import estimate

            full = estimate(job.settings, job.chunks, job.cards_total)
            assert isinstance(job.estimate, whole) and job.estimate.input_tokens < full.input_tokens * 0.8
            assert job.estimate.chunks == 4 and full.chunks == 6
            await pilot.press("enter")
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the rest of the run")
        app = make_app(confirm_settings)  # everything is done now: resuming costs nothing, so nothing is asked
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ResumeDialog), what="the resume question")
            await pilot.press("enter")
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the resumed run")
            assert screen.run.from_cache == 6 and not isinstance(app.screen, ConfirmScreen)


async def test_the_status_line_shows_calls_in_flight_against_the_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        hold = server.hold(lambda body: chunk_of(body) is not None)
        app = make_app(online(server, notes_file(tmp_path, 8), "--concurrency", "8"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: hold.arrived >= 8, what="eight calls in flight")
            await wait_for_text(pilot, "8/8 in flight")
            screen.run.set_concurrency(4)  # as when a server's 429s bring the limit down
            await wait_for_text(pilot, "8 in flight (limit 4)")
            assert not re.search(r"\b8/4\b", bar_text(screen))
            hold.release()
            await wait_for(pilot, lambda: screen.finished, what="the run")


async def test_the_clock_counts_work_not_idle_time(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = ManualClock()
    app = make_app(app_settings("--demo"), pace=0, run_options={"clock": clock})
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the demo run")
        bar = screen.query_one(RunBar)
        worked = bar.elapsed
        clock.advance(600)  # ten idle minutes
        assert bar.elapsed == worked
        assert "10m" not in bar_text(screen)


async def test_at_80_columns_the_status_line_keeps_tokens_and_cost(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        app = make_app(online(server, notes_file(tmp_path, 12)))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            line = bar_text(screen).splitlines()[1]
            assert "↑" in line and "↓" in line and "$" in line and not line.endswith("…"), line


async def test_review_keeps_document_order_when_chunks_finish_out_of_order(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        holds = holds_per_chunk(server, 6)
        app = make_app(online(server, notes_file(tmp_path, 6)))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await pilot.press("2")
            table = screen.query_one(CardTable)
            for i, hold in enumerate(reversed(holds)):  # the last chunk first
                hold.release()
                await wait_for(pilot, lambda i=i: screen.run.counts()["done"] == i + 1, what=f"{i + 1} chunks")
                await wait_for(pilot, lambda: len(table.cards) == len(screen.cards()), what="the table")
                rows = [table.cards[key].chunk_index for key in table.cards]
                assert rows == sorted(rows), rows
            # Nobody moved the cursor: it stayed on the first row, now the document's first card.
            assert table.cursor_row == 0 and table.current.chunk_index == 0


async def test_the_bar_speaks_in_words_and_prices_a_priced_model_from_its_first_token(tmp_path, monkeypatch) -> None:
    from test_tui import curse

    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(fault_for=curse("part 1 ")) as server:  # one chunk refused: a failure to show
        app = make_app(online(server, notes_file(tmp_path, 6), "--model", "gpt-4o-mini"))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            # The bar's count is repainted on the 10 Hz timer: read it once it has caught up with the deck.
            await wait_for(pilot, lambda: screen.card_count == len(screen.cards()), what="the bar's count")
            await pilot.pause(0.3)
            line = bar_text(screen).splitlines()[1]
    assert "failed" in line and "calls" in line and "cards" in line, line
    assert not set("⊘⇅▤✕") & set(line), line
    assert "free" not in line and "$" in line  # gpt-4o-mini has a price, even on a server of one's own


async def test_the_offline_demo_shows_no_calls_in_flight(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the demo")
        line = bar_text(screen).splitlines()[1]
    assert "in flight" not in line and "calls" not in line and "free" not in line, line


async def test_the_run_screens_help_fits_80_columns(tmp_path, monkeypatch) -> None:
    from tui_support import screen_text

    from mkflash_tui.tui.screens.dialogs import HelpScreen

    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=(80, 60)) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the demo")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = await screen_text(pilot)
    assert "arrows, PgUp/PgDn" in text and "Tab / Shift+Tab" in text and "Ctrl+C / Ctrl+V" in text
    assert "…" not in text
