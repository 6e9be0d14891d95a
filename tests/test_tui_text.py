"""Text is data everywhere in the app: markup-looking strings from files, pastes, models, paths and the store are
shown literally, in every place text is drawn, and never crash a screen."""

from __future__ import annotations

import re
from pathlib import Path

from fake_openai import FakeOpenAI, Fault, chunk_of
from test_tui import exported_notes, notifications
from textual.widgets import Input, TextArea
from tui_support import app_settings, started, wait_for, wait_for_text

from mkflash_tui.core.fields import shown_text
from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.confirm import ConfirmScreen
from mkflash_tui.tui.screens.dialogs import ChunkDialog, EditCardDialog, ExportDialog, QuitDialog
from mkflash_tui.tui.screens.start import StartScreen
from mkflash_tui.tui.widgets.cards import CardTable

SIZE = (160, 50)
# What a document, a model or a path may hold that Rich/Textual would read as markup.
HOSTILE = [
    "[/]",
    "[red]Hello[/red]",
    "[link=x]click here[/link]",
    "\\[b] escaped",
    "[@click=app.quit]quit[/]",
    "[b][i]nest[/b]",
    "[bold]open",
]
TITLE = "Guide [/] [red]Hello[/red]"


def hostile_document(tmp_path: Path) -> Path:
    parts = [f"# {TITLE}"]
    for i, word in enumerate(HOSTILE):
        body = " ".join(f"Sentence {j} of section {i} says {word} matters in case {i}x{j}." for j in range(5))
        parts.append(f"## Part {i} {word}\n\n{body}")
    path = tmp_path / "notes [draft].md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def hostile_cards(body: dict) -> dict:
    text = chunk_of(body) or ""
    index = int(re.search(r"section (\d+)", text).group(1)) if re.search(r"section (\d+)", text) else 0
    word = HOSTILE[index % len(HOSTILE)]
    return {"cards": [{"type": "basic", "front": f"Q{index} {word}?", "back": f"A{index} {word}", "quote": word}]}


def hostile_summary(body: dict) -> dict:
    return {"title": "Summary [/] [link=x]click here[/link]", "summary": "About [bold]things[/bold]."}


def visible(text: str, needle: str) -> bool:
    return needle in text


async def test_markup_looking_text_is_shown_literally_everywhere(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = hostile_document(tmp_path)
    failing = Fault(status=400, message="bad request [/] [red]oops[/red]")
    fault_for = lambda n, b: failing if "section 6 " in (chunk_of(b) or "") else None  # noqa: E731
    with FakeOpenAI(cards=hostile_cards, summary=hostile_summary, fault_for=fault_for) as server:
        settings = app_settings(path.name, "--base-url", server.base_url, "--api-key", "sk-test",
                                "--chunk-tokens", "120", "--overlap-tokens", "0")  # fmt: skip
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            # Confirm: the document's title and its file name.
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
            await wait_for_text(pilot, TITLE, "notes [draft].md")
            await pilot.press("enter")
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            # Header (summary title), board (chunk labels = headings), log (START lines with labels).
            await wait_for_text(pilot, "Summary [/] [link=x]click here[/link]", "Part 1 [red]Hello[/red]")
            log_text = "\n".join(str(line) for line in screen.query_one("#log").lines)
            assert "Part 3 \\[b] escaped" in log_text and "Part 4 [@click=app.quit]quit[/]" in log_text
            # Notifications: a failure whose reason holds markup.
            assert any("bad request [/] [red]oops[/red]" in n for n in notifications(app))
            # The chunk dialog: reason and raw output.
            board = screen.query_one("#board")
            [failed] = screen.run.failures()
            board.cursor = failed.chunk.index
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ChunkDialog), what="the chunk dialog")
            await wait_for_text(pilot, "bad request [/] [red]oops[/red]")
            await pilot.press("escape")
            # Review: the table and the detail pane.
            await pilot.press("2")
            # A model's card reads as its note does: its Markdown rendered ("\\[" is an escaped "["), Rich's
            # markup never read.
            await wait_for_text(pilot, *(shown_text(f"Q{i} {word}?", markdown=True) for i, word in enumerate(HOSTILE)
                                         if i != 6))  # fmt: skip
            table = screen.query_one(CardTable)
            table.move_cursor(row=1)
            await wait_for_text(pilot, f"A1 {HOSTILE[1]}", f"“{HOSTILE[1]}”")
            # Edit: save a front full of markup.
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, EditCardDialog), what="the edit dialog")
            app.screen.query_one("#front", TextArea).text = "Edited [/] [b]bold?"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: not isinstance(app.screen, EditCardDialog), what="the save")
            await wait_for_text(pilot, "Edited [/] [b]bold?")
            # Export: a path with brackets, in the dialog and in the notification.
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
            app.screen.query_one("#path", Input).value = "deck [final].apkg"
            await pilot.press("enter")
            await wait_for(pilot, lambda: (tmp_path / "deck [final].apkg").exists(), what="the export")
            await wait_for_text(pilot, "deck [final].apkg")
            assert any("deck [final].apkg" in n for n in notifications(app))
            await pilot.press("escape")
            # Quit: the dialog, then stay.
            await pilot.press("2", "d")
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="the quit dialog")
            await pilot.press("escape")

        # The next launch: Resume dialog and the sessions list carry the stored title.
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ResumeDialog", what="the resume dialog")
            await wait_for_text(pilot, TITLE)
            await pilot.press("escape")
        app = make_app(app_settings())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "SessionsScreen", what="the sessions")
            await wait_for_text(pilot, TITLE, "notes [draft].md")


async def test_start_screen_paths_pastes_and_file_names_are_literal(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes [draft].txt").write_text("Magma is molten rock below the surface of the earth.\n")
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, StartScreen)
        await wait_for_text(pilot, "notes [draft].txt")  # the directory tree
        app.screen.query_one("#path", Input).value = "missing [/] [red]x[/red].md"
        await pilot.press("enter")
        message = "missing [/] [red]x[/red].md: no such file."
        await wait_for(pilot, lambda: any(message in n for n in notifications(app)), what="the notification")
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), what="the start screen")
        await wait_for_text(pilot, message)
    app = make_app(app_settings(), pace=0)
    async with app.run_test(size=SIZE) as pilot:
        # Paste a text full of markup.
        app.screen.query_one("#start-tabs").active = "tab-paste"
        await pilot.pause()
        pasted = "# Paste [/] [bold]title\n\n" + " ".join(
            f"Fact {i}: the [red]lava[/red] flow number {i} slowly cools and hardens into dark [link=x]basalt[/link] "
            "rock on the flank of the volcano."
            for i in range(8)
        )
        app.screen.query_one("#pasted", TextArea).text = pasted
        await pilot.press("ctrl+s")
        screen = await started(pilot, app)
        await wait_for(pilot, lambda: screen.finished, what="the run")
        await wait_for_text(pilot, "Paste [/] [bold]title")
        await pilot.press("2")
        await wait_for_text(pilot, "[red]lava[/red]")


# What a terminal log, a web page or a hostile server may carry that a terminal would obey: colours, a cleared
# screen, a new window title, the clipboard (OSC 52), a bell.
ESCAPES = ["\x1b[31m", "\x1b[2J", "\x1b]0;pwned\x07", "\x1b]52;c;ZXZpbA==\x07", "\x07", "\x9b1m"]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escaping_cards(body: dict) -> dict:
    text = chunk_of(body) or ""
    index = int(re.search(r"section (\d+)", text).group(1)) if re.search(r"section (\d+)", text) else 0
    code = ESCAPES[index % len(ESCAPES)]
    return {"cards": [{"type": "basic", "front": f"Q{index} {code}red?", "back": f"A{index}{code} back",
                       "quote": f"says {code}this"}]}  # fmt: skip


async def test_escape_sequences_never_reach_the_terminal_or_the_deck(tmp_path, monkeypatch) -> None:
    """Text from a document, a model and a server's error is drawn, logged, notified and exported without its
    escape sequences and control characters, and what is left of it is shown."""
    monkeypatch.chdir(tmp_path)
    parts = ["# Guide \x1b[31mred\x1b[0m"]
    for i, code in enumerate(ESCAPES):
        body = " ".join(f"Sentence {j} of section {i} says {code}this matters in case {i}x{j}." for j in range(5))
        parts.append(f"## Part {i} {code}heading\n\n{body}")
    (tmp_path / "log.txt").write_text("\n\n".join(parts) + "\n")
    failing = Fault(status=400, message="bad \x1b]0;pwned\x07request \x1b[2Jhere")
    fault_for = lambda n, b: failing if "section 5 " in (chunk_of(b) or "") else None  # noqa: E731
    summary = lambda body: {"title": "Summary \x1b[1mbold\x1b[0m", "summary": "About \x07it."}  # noqa: E731
    with FakeOpenAI(cards=escaping_cards, summary=summary, fault_for=fault_for) as server:
        settings = app_settings("log.txt", "--base-url", server.base_url, "--api-key", "sk-test",
                                "--chunk-tokens", "120", "--overlap-tokens", "0")  # fmt: skip
        app = make_app(settings)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm screen")
            text = await wait_for_text(pilot, "Guide red")
            assert not CONTROL.search(text)
            await pilot.press("enter")
            screen = await started(pilot, app)
            await wait_for(pilot, lambda: screen.finished, what="the run")
            text = await wait_for_text(pilot, "Summary bold", "Part 1 heading", "bad request here")
            assert not CONTROL.search(text), repr(CONTROL.search(text))
            log_text = "\n".join(str(line) for line in screen.query_one("#log").lines)
            assert "Part 2 heading" in log_text and not CONTROL.search(log_text)
            assert any("bad request here" in n for n in notifications(app))
            assert not any(CONTROL.search(n) for n in notifications(app))
            [failed] = screen.run.failures()
            screen.query_one("#board").cursor = failed.chunk.index
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ChunkDialog), what="the chunk dialog")
            assert not CONTROL.search(await wait_for_text(pilot, "bad request here"))
            await pilot.press("escape")
            await pilot.press("2")
            text = await wait_for_text(pilot, "Q0 red?", "Q1 red?", "A0 back", "“says this”")
            assert not CONTROL.search(text)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
            await pilot.press("enter")
            await wait_for(pilot, lambda: (tmp_path / "log.apkg").exists(), what="the export")
    notes = exported_notes(tmp_path, tmp_path / "log.apkg")
    assert len(notes) == len(ESCAPES) - 1
    for note in notes:
        assert not any(CONTROL.search(value) for value in note.fields.values()), note.fields
    assert {note.fields["Front"] for note in notes} >= {"Q0 red?", "Q4 red?"}
