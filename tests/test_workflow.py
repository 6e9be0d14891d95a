"""The gaps users hit in the app's workflow: the review table uses the width, every key is on the key bar at
80x24, the start screen's complaint is whole and its folder named, "Export first" exports and then quits, and
help lists every key."""

from __future__ import annotations

from pathlib import Path

from test_tui import demo_finished
from tui_support import app_settings, screen_text, wait_for, wait_for_text

from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.dialogs import ExportDialog, HelpScreen, QuitDialog
from mkflash_tui.tui.screens.run import ReviewView, RunScreen
from mkflash_tui.tui.screens.start import StartScreen
from mkflash_tui.tui.widgets.cards import CardTable


async def review_at(size: tuple[int, int], tmp_path: Path, monkeypatch) -> tuple[str, CardTable]:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=size) as pilot:
        screen = await demo_finished(pilot, app)
        await pilot.press("2")
        await pilot.pause(0.2)
        return await screen_text(pilot), screen.query_one(CardTable)


async def test_review_columns_use_the_width(tmp_path, monkeypatch) -> None:
    wide_text, wide = await review_at((160, 40), tmp_path, monkeypatch)
    narrow_text, narrow = await review_at((80, 24), tmp_path, monkeypatch)
    assert wide.front_width > 40 and wide.back_width > 30
    assert narrow.front_width < wide.front_width and narrow.back_width < wide.back_width
    longest = "What is the Volcanic Explosivity Index (VEI)?"  # cut at 80 columns, whole at 160
    assert longest in wide_text and longest not in narrow_text


async def test_every_key_is_on_the_key_bar_at_80x24(tmp_path, monkeypatch) -> None:
    text, _ = await review_at((80, 24), tmp_path, monkeypatch)
    bar = "\n".join(text.splitlines()[-2:])
    for key in ("d Delete", "u Undo", "e Edit", "/ Filter", "x Export", "c Cancel", "r Retry", "? Help", "q Quit"):
        assert key in bar, (key, bar)


async def test_start_screen_complaint_is_whole_and_the_folder_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("# Notes\n\nSome text.\n")
    app = make_app(app_settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        text = await wait_for_text(pilot, "notes.md")
        assert f"📂 {tmp_path}/" in text or "📂 ~" in text
        screen = app.screen
        screen.query_one("#provider").value = "openrouter"
        await pilot.pause()
        screen.query_one("#path").value = "notes.md"
        await pilot.press("ctrl+s")
        text = await wait_for_text(pilot, "OPENROUTER_API_KEY.")
        assert "needs an API key" in text and isinstance(app.screen, StartScreen)


async def test_export_first_exports_and_then_quits(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await demo_finished(pilot, app)
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
        assert "then quit" in await screen_text(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert app.return_code == 0 and (tmp_path / "demo.apkg").stat().st_size > 0


async def test_export_first_then_escape_stays(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await demo_finished(pilot, app)
        await pilot.press("q", "x")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="the run screen")
        assert app.is_running and not (tmp_path / "demo.apkg").exists()


async def test_help_lists_every_key(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=(120, 60)) as pilot:
        await demo_finished(pilot, app)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        body = "\n".join(str(part) if not hasattr(part, "columns") else
                          "\n".join(f"{k} {d}" for k, d in zip(part.columns[0]._cells, part.columns[1]._cells,
                                                                strict=True))
                          for part in app.screen.body().renderables)  # fmt: skip
    for needle in ("↑ ↓", "Ctrl+End", "Ctrl+C", "Tab / Shift+Tab", "Esc", "Ctrl+Q", "Ctrl+P"):
        assert needle in body, needle
    for binding in (*RunScreen.BINDINGS, *ReviewView.BINDINGS):
        assert (binding.tooltip or binding.description) in body, binding


async def test_the_start_screens_help_lists_its_own_keys_and_fits_80_columns(tmp_path, monkeypatch) -> None:
    from tui_support import screen_text

    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings())
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.pause(0.2)
        app.screen.query_one("#tree").focus()  # ? in a text field is a character
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = await screen_text(pilot)
    for words in ("f2", "f3", "f4", "the Paste tab", "start with the file", "earlier sessions"):
        assert words in text, words
    assert "delete the highlighted card" not in text  # the run's keys are not the start screen's
    # Every key whole in its column: none cut, none wrapped into its description.
    for line in text.splitlines():
        assert "…" not in line


async def test_f2_f3_f4_switch_the_start_screens_tabs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings())
    async with app.run_test(size=(100, 36)) as pilot:
        await pilot.pause(0.2)
        tabs = app.screen.query_one("TabbedContent")
        await pilot.press("f3")
        assert tabs.active == "tab-paste" and app.focused is app.screen.query_one("#pasted")
        await pilot.press("f4")
        assert tabs.active == "tab-settings" and app.focused is app.screen.query_one("#profile")
        await pilot.press("f2")
        assert tabs.active == "tab-file" and app.focused is app.screen.query_one("#path")


async def test_the_tab_order_does_not_move_when_the_model_list_appears(tmp_path, monkeypatch) -> None:
    from fake_openai import FakeOpenAI

    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(model_list=["alpha-7b", "beta-13b"]) as server, FakeOpenAI(model_list=None) as bare:
        app = make_app(app_settings())
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("f4")
            screen = app.screen
            screen.query_one("#provider").value = "openai"
            await pilot.pause()
            screen.query_one("#base-url").value = bare.base_url  # a server without a model list
            await wait_for(pilot, lambda: bare.model_list_headers, what="the first look")

            async def order() -> list[str]:
                screen.query_one("#profile").focus()
                await pilot.pause()
                seen = []
                for _ in range(12):
                    await pilot.press("tab")
                    seen.append(app.focused.id if app.focused else "")
                return seen

            before = await order()
            screen.query_one("#base-url").value = server.base_url
            await wait_for(pilot, lambda: screen.query_one("#model-list").display, what="the model list")
            after = await order()
    assert after == before and "model-list" not in after


async def test_notifications_leave_the_card_being_read_alone_at_80x24(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings("--demo"), pace=0)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await demo_finished(pilot, app)
        await pilot.press("2")
        await pilot.pause(0.2)
        app.notify("A notice long enough to take a few lines of the screen, as a failure's reason does.")
        await wait_for(pilot, lambda: screen.query("Toast"), what="the toast")
        await pilot.pause(0.6)  # its entrance
        detail = screen.query_one("#detail-scroll").region
        for toast in screen.query("Toast"):
            assert not toast.region.overlaps(detail), (toast.region, detail)


async def test_settings_fit_at_80x24(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(app_settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        await pilot.pause(0.2)
        app.screen.query_one("#start-tabs").active = "tab-settings"
        app.screen.query_one("#provider").focus()
        text = await wait_for_text(pilot, "Provider")
        for label in ("Profile", "Provider", "Base URL", "API key", "Model", "Chunk tokens", "Total cards",
                      "Language", "Style", "Instructions", "Concurrency", "Flagged cards"):  # fmt: skip
            assert label in text, label


async def test_a_resumed_exported_session_quits_without_asking(tmp_path, monkeypatch) -> None:
    """Every card was written to a deck by the earlier run: quitting loses nothing, so nothing is asked."""
    from conftest import run_cli, sections

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text(sections(4))
    assert run_cli("generate", "notes.md", cwd=tmp_path).returncode == 0  # writes notes.apkg
    app = make_app(app_settings(str(tmp_path / "notes.md"), "--yes"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.finished, what="the run")
        assert app.run_screen.cards() and app.run_screen.unsaved == 0
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")
        assert not isinstance(app.screen, QuitDialog)
