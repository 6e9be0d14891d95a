"""Keys arrive in bursts (a fast typist, a held key, a paste): no burst may break the screen stack, and keys
typed after Tab land in the field Tab moved to. Keys here are sent the way a terminal delivers them — all at
once, with no pause for the app to settle between them."""

from __future__ import annotations

import unicodedata

from fake_openai import FakeOpenAI, chunk_of
from rich.cells import cell_len
from test_tui import demo_finished, holds_per_chunk, notes_file, online
from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.widgets import Input, TextArea
from tui_support import app_settings, screen_text, started, wait_for

from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.confirm import ConfirmScreen
from mkflash_tui.tui.screens.dialogs import (
    ChunkDialog,
    EditCardDialog,
    ExportDialog,
    HelpScreen,
    QuitDialog,
    ResumeDialog,
    SessionsScreen,
)
from mkflash_tui.tui.screens.run import RunScreen
from mkflash_tui.tui.screens.start import StartScreen
from mkflash_tui.tui.widgets.cards import CardTable
from mkflash_tui.tui.widgets.chunk_board import ChunkBoard

SIZE = (120, 40)


async def burst(pilot, *keys: str) -> None:
    """Post every key at once, as one read from the terminal would, then let the app work through them."""
    app = pilot.app
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        try:
            char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)
    for _ in range(10):
        await pilot.pause()


def stack(app) -> list[str]:
    return [type(s).__name__ for s in app.screen_stack]


def run_screens(app) -> int:
    return sum(isinstance(s, RunScreen) for s in app.screen_stack)


async def test_enter_bursts_after_an_export_close_only_the_dialog(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await demo_finished(pilot, app)
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: (tmp_path / "demo.apkg").exists(), what="the export")
        await wait_for(pilot, lambda: app.screen.query_one("#export").label.plain == "Done", what="Done")
        await burst(pilot, "enter", "enter", "enter")
        assert app.screen is screen and run_screens(app) == 1, stack(app)
        await burst(pilot, "x", "enter", "enter", "enter", "enter", "escape", "escape")
        assert app.screen is screen and app.is_running, stack(app)


async def test_bursts_on_every_dialog_of_the_run_screen(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await demo_finished(pilot, app)
        sequences = [
            ("question_mark", "question_mark", "escape", "escape", "escape"),  # help
            ("1", "enter", "enter", "enter", "escape", "escape"),  # a chunk in full
            ("2", "e", "ctrl+s", "ctrl+s", "escape", "escape"),  # edit
            ("2", "e", "escape", "escape", "escape"),
            ("x", "escape", "escape", "x", "escape", "enter"),  # export opened and closed
            ("q", "escape", "escape", "q", "n", "escape"),  # quit asked, stayed
            ("1", "2", "1", "2", "x", "escape", "d", "u", "u", "u"),
        ]
        for keys in sequences:
            await burst(pilot, *keys)
            # Keys that arrived before a dialog was on screen went to the screen below it: what matters is that
            # the stack holds the run screen once, at most one dialog over it, and Esc gets back to it.
            assert run_screens(app) == 1 and len(app.screen_stack) <= 3 and app.is_running, (keys, stack(app))
            for _ in range(3):
                if app.screen is not screen:
                    await pilot.press("escape")
            assert app.screen is screen, (keys, stack(app))
        for dialog, keys in (
            (HelpScreen, ("question_mark",)),
            (ChunkDialog, ("1", "enter")),
            (EditCardDialog, ("2", "e")),
            (ExportDialog, ("x",)),
            (QuitDialog, ("q",)),
        ):
            await pilot.press(*keys)
            await wait_for(pilot, lambda dialog=dialog: isinstance(app.screen, dialog), what=dialog.__name__)
            await burst(pilot, "escape", "escape", "escape", "escape")
            await wait_for(pilot, lambda: app.screen is screen, what=f"the run screen after {dialog.__name__}")
            assert run_screens(app) == 1, stack(app)


async def test_bursts_on_the_start_confirm_resume_and_sessions_screens(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = notes_file(tmp_path, 2)
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await burst(pilot, "ctrl+o", "escape", "escape", "ctrl+o", "escape")
        assert isinstance(app.screen, StartScreen) and app.is_running, stack(app)
        app.screen.query_one("#path", Input).value = path.name
        await burst(pilot, "enter", "enter", "enter")
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run")
        assert run_screens(app) == 1, stack(app)

    settings = app_settings(path.name, "--base-url", "http://127.0.0.1:9/v1", "--model", "llama3.1:8b")
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
        await burst(pilot, "escape", "escape", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        assert app.is_running and stack(app).count("StartScreen") == 1, stack(app)

    app = make_app(app_settings(path.name), pace=0)  # the same file again: asks to resume
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ResumeDialog), what="the resume question")
        await burst(pilot, "enter", "enter", "enter", "f")
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the resumed run")
        assert run_screens(app) == 1 and app.screen is screen, stack(app)

    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await burst(pilot, "ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions screen")
        await burst(pilot, "enter", "enter", "enter")
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the reopened session")
        assert run_screens(app) == 1 and app.screen is screen, stack(app)


async def test_keys_typed_right_after_tab_land_in_the_next_field(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        await demo_finished(pilot, app)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
        deck, path = app.screen.query_one("#deck", Input), app.screen.query_one("#path", Input)
        deck.focus()
        await pilot.pause()
        before_deck, before_path = deck.value, path.value
        await burst(pilot, "tab", "Z", "Y")
        assert deck.value == before_deck and "ZY" in path.value and path.value != before_path


async def test_the_log_keeps_following_after_the_terminal_shrinks_and_grows(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        holds = holds_per_chunk(server, 30)
        app = make_app(online(server, notes_file(tmp_path, 30)))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: sum(h.arrived for h in holds) >= 30, what="every chunk in flight")
            log = screen.query_one("#log")
            await pilot.resize_terminal(40, 12)
            await wait_for(pilot, lambda: log.size.width == 40, what="the small terminal")
            for hold in holds[:10]:  # lines arrive while the terminal is small
                hold.release()
            await wait_for(pilot, lambda: sum("END" in line for line in log.lines) >= 10, what="ten END lines")
            await pilot.resize_terminal(*SIZE)
            await wait_for(pilot, lambda: log.size.width > 40, what="the large terminal")
            for hold in holds[10:]:
                hold.release()
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await wait_for(pilot, lambda: "DONE" in log.lines[-1], what="the last line")
            await wait_for(pilot, lambda: log.is_vertical_scroll_end, what="the log at its end")
            assert "DONE" in await screen_text(pilot)


async def test_paging_the_board_moves_its_cursor_with_the_view(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings(str(notes_file(tmp_path, 60)), "--chunk-tokens", "120", "--overlap-tokens", "0"),
                   pace=0)  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run")
        board = screen.query_one(ChunkBoard)
        assert len(board.ids) == 60 and board.cursor == 0
        await pilot.press("pagedown")
        await pilot.pause()
        first_page_cursor = board.cursor
        assert first_page_cursor > 0
        visible_rows = range(int(board.scroll_offset.y), int(board.scroll_offset.y) + board.size.height)
        row_of_cursor = (board.cursor // board.columns) * 4
        assert row_of_cursor in visible_rows  # the cursor is on a panel the user sees
        await pilot.press("end")
        assert board.cursor == 59
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChunkDialog), what="the chunk dialog")
        assert app.screen.chunk_id == board.ids[59]
        await pilot.press("escape", "home")
        assert board.cursor == 0 and board.scroll_offset.y == 0


async def test_the_card_table_pages_jumps_and_clicks_with_its_cursor_in_view(tmp_path, monkeypatch) -> None:
    """The card list draws its own rows: paging and End keep the cursor on a row the user sees, a click picks the
    row under the pointer, and a front of wide characters keeps the columns in line."""
    monkeypatch.chdir(tmp_path)

    def cards(body: dict) -> dict:
        facts = [s.strip() + "." for s in (chunk_of(body) or "").split(".") if "weighs" in s]
        return {"cards": [{"type": "basic", "front": f"What does {fact.split(' states')[0]} state?",
                           "back": fact.split("states that ")[-1], "quote": fact} for fact in facts]}  # fmt: skip

    with FakeOpenAI(cards=cards) as server:
        app = make_app(online(server, notes_file(tmp_path, 20), "--cards", "200"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            await pilot.press("2")
            await check_the_card_table(pilot, app, screen)


async def check_the_card_table(pilot, app, screen) -> None:
    """Paging, End, a resize, Home, a click and a wide-character edit in the Review view of a finished run."""
    table = screen.query_one(CardTable)
    await wait_for(pilot, lambda: table.row_count > table.size.height + 5, what="more cards than a screen")
    rows_shown = table.scrollable_content_region.height - 1  # under the header

    def in_view() -> bool:
        return table.scroll_offset.y <= table.cursor_row < table.scroll_offset.y + rows_shown

    await pilot.press("pagedown")
    assert table.cursor_row >= rows_shown - 2 and in_view()
    await pilot.press("end")
    await pilot.pause()
    last = table.current
    assert table.cursor_row == table.row_count - 1 and in_view()
    assert last.front[:30] in await screen_text(pilot)  # its row, and the detail pane shows it
    await pilot.resize_terminal(60, 14)  # a shorter table still shows the card being read
    await pilot.pause(0.2)
    rows_shown = table.scrollable_content_region.height - 1
    assert table.current is last and in_view()
    await pilot.resize_terminal(*SIZE)
    await pilot.pause(0.2)
    rows_shown = table.scrollable_content_region.height - 1
    await pilot.press("home")
    assert table.cursor_row == 0 and table.scroll_offset.y == 0
    await pilot.click(CardTable, offset=(10, 4))  # the header is line 0: row 3
    await pilot.pause()
    assert table.cursor_row == 3 and screen.query_one("#detail").render().plain.count(table.current.front) == 1
    # A front of wide characters: each cell is measured in cells, so the back column stays where it is.
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, EditCardDialog), what="the edit dialog")
    app.screen.query_one("#front", TextArea).text = "漢字かな交じり文" * 8
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: app.screen is screen, what="the save")
    lines = (await screen_text(pilot)).splitlines()
    header = next(line for line in lines if " front " in line and " back" in line)
    wide = next(line for line in lines if "漢字" in line)
    back = table.current.back[:10]
    assert "…" in wide and cell_len(wide[: wide.index(back)]) == cell_len(header[: header.index("back")])
