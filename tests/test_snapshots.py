"""SVG snapshots of every screen at 80×24 and 160×48, in the dark and the light theme, cursor blink off.

Times come from a manual clock, the generate view is caught mid-run by holding requests at the fake server
(on any free port: the label that would show it is set to a fixed text), and notifications (which vanish
after a few seconds) are cleared before the picture, so every picture is the same on every run. Update with
``pytest tests/test_snapshots.py --snapshot-update`` after checking the differences by eye (pytest writes a
report on failure).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from conftest import sections
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary
from rich.text import Text
from tui_support import ManualClock, app_settings, started, wait_for

from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.widgets.run_bar import RunBar

SIZES = [(80, 24), (160, 48)]
THEMES = ["textual-dark", "textual-light"]

pytestmark = [pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"]),
              pytest.mark.parametrize("theme", THEMES, ids=["dark", "light"])]  # fmt: skip


def steady(theme: str):
    """A run_before that sets the theme and stops cursors blinking, then lets everything settle."""

    async def prepare(pilot) -> None:
        pilot.app.theme = theme
        pilot.app.clear_notifications()  # they vanish on their own after seconds: never in a picture
        for screen in pilot.app.screen_stack:
            for widget in screen.query("Input, TextArea"):
                widget.cursor_blink = False
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return prepare


def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "lecture-notes.md").write_text(sections(3))
    (folder / "chapter-3.html").write_text("<h1>Chapter 3</h1><p>Photosynthesis makes sugar from light.</p>")
    (folder / "papers").mkdir()
    return folder


def test_start_screen(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(library(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # the tree's root shows as ~/library/ in every run
    app = make_app(app_settings())

    async def run_before(pilot) -> None:
        await pilot.press(*"lec")
        await steady(theme)(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_confirm_screen(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(library(tmp_path))
    app = make_app(app_settings("lecture-notes.md", "--api-key", "sk-snapshot-key", "--model", "gpt-4o"))

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmScreen", what="confirm")
        await steady(theme)(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_generate_view_mid_run(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    mid_run(snap_compare, tmp_path, monkeypatch, size, theme)


def test_timeline_view_mid_run(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    mid_run(snap_compare, tmp_path, monkeypatch, size, theme, "3")


class VirtualTime:
    """Time that moves only from one event to the next once the run has done all it can: the server answers a
    call (held until then) 0.3 s (the summary) or 0.5 s (a chunk) after it arrived, and a sleep ends when it is
    due. The run goes one call at a time, so what it does between events is the same on every run."""

    def __init__(self, server: FakeOpenAI, calls: int) -> None:
        self.clock = ManualClock()
        self.server = server
        self.holds = [server.hold(lambda body, k=k: len(server.requests) > k and server.requests[k] is body)
                      for k in range(calls)]  # fmt: skip
        self.sleepers: list[tuple[float, asyncio.Future]] = []

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.clock.now + seconds, future))
        await future

    async def drive(self, pilot, run, done) -> None:
        """Move time from event to event until ``done()``."""
        k, arrived_at, events = 0, None, []
        run.subscribe(events.append)
        while not done():
            await self._settle(pilot, run, k, events)
            if done():
                break
            if arrived_at is None and self.holds[k].arrived:
                arrived_at = self.clock.now
            due = [(when, i) for i, (when, _) in enumerate(self.sleepers)]
            if arrived_at is not None:
                latency = 0.3 if is_summary(self.server.requests[k]) else 0.5
                due.append((arrived_at + latency, -1))
            assert due, "the run waits for nothing it could get"
            when, which = min(due)
            self.clock.now = max(self.clock.now, when)
            if which < 0:
                self.holds[k].release()
                k, arrived_at = k + 1, None
            else:
                self.sleepers.pop(which)[1].set_result(None)

    async def _settle(self, pilot, run, k: int, events: list) -> None:
        """Until nothing changes for a while, and no call has its slot without having reached the server."""
        last, still = None, 0
        while still < 3:
            await pilot.pause(0.01)
            limiter = run.limiter
            state = (len(self.server.requests), self.holds[k].arrived, len(self.sleepers), limiter.in_use,
                     limiter.waiting, len(events))  # fmt: skip
            in_transit = limiter.in_use > 0 and not self.holds[k].arrived
            still = 0 if state != last or in_transit else still + 1
            last = state


def test_timeline_view_after_retries_halves_and_a_cache_hit(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    """A finished run, one call at a time: chunk 1 refused with a 429 then its Retry-After wait, chunk 3 cut off
    then asked for in halves, chunk 4 unreadable then repaired, chunk 5 (chunk 2 again) answered from the store;
    on virtual time, so the same picture on every run."""
    monkeypatch.chdir(tmp_path)
    text = sections(4, sentences=12)
    (tmp_path / "notes.md").write_text(text + "\n" + text[text.index("## Part 1") : text.index("## Part 2")])
    seen: dict[str, int] = {}

    def answer(number: int, body: dict) -> Fault | None:
        which = chunk_of(body) or ""
        seen[which] = seen.get(which, 0) + 1
        first = seen[which] == 1
        if "The part 0 fact 0 " in which and first:
            return Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "800"})
        if "The part 2 fact 0 " in which and "The part 2 fact 11 " in which:  # the whole chunk: cut off
            return Fault(content='{"cards": [{"front": "What is', finish_reason="length")
        if "The part 3 fact 0 " in which and first:
            return Fault(malformed=True)
        return None

    with FakeOpenAI(fault_for=answer) as server:
        time = VirtualTime(server, calls=12)
        settings = app_settings("notes.md", "--base-url", server.base_url, "--api-key", "sk-snapshot",
                                "--chunk-tokens", "300", "--overlap-tokens", "0", "--concurrency", "1",
                                "--yes")  # fmt: skip
        options = {"clock": time.clock, "sleep": time.sleep, "rng": random.Random(7)}
        app = make_app(settings, run_options=options)

        async def run_before(pilot) -> None:
            screen = await started(pilot, pilot.app)
            screen.query_one(RunBar).provider = "gpt-4o-mini · the test server"  # its port changes every run
            await time.drive(pilot, screen.run, lambda: screen.finished)
            await wait_for(pilot, lambda: pilot.app._notifications, what="the run's closing notice")
            await pilot.press("3")
            screen.refresh_views()
            await steady(theme)(pilot)

        try:
            assert snap_compare(app, terminal_size=size, run_before=run_before)
        finally:
            for hold in time.holds:
                hold.release()


def mid_run(snap_compare, tmp_path, monkeypatch, size, theme, *keys: str) -> None:
    """Six chunks: four answered one at a time by the manual clock, two still in flight; then ``keys``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text(sections(6))
    clock = ManualClock()
    with FakeOpenAI() as server:
        holds = [server.hold(lambda body, i=i: f"The part {i} fact" in (chunk_of(body) or "")) for i in range(6)]
        settings = app_settings("notes.md", "--base-url", server.base_url, "--api-key", "sk-snapshot",
                                "--chunk-tokens", "120", "--overlap-tokens", "0", "--yes")  # fmt: skip
        app = make_app(settings, run_options={"clock": clock})

        async def run_before(pilot) -> None:
            screen = await started(pilot, pilot.app)
            screen.query_one(RunBar).provider = "gpt-4o-mini · the test server"  # its port changes every run
            for hold in holds:
                assert await hold.wait_arrived_async(1)
            # Finish chunks 2, 1, 4 and 6 one at a time (the log's order is the release order); 3 and 5 stay held.
            for i in (1, 0, 3, 5):
                clock.advance(0.7 + i / 10)
                holds[i].release()
                chunk_id = screen.run.chunks[i].id
                await wait_for(pilot, lambda chunk_id=chunk_id: screen.run.status[chunk_id].state.finished)
            clock.advance(1.25)
            await pilot.press(*keys)
            screen.refresh_views()  # what the screen's 10 Hz timer does: flush the log, repaint board and bar
            await steady(theme)(pilot)

        try:
            assert snap_compare(app, terminal_size=size, run_before=run_before)
        finally:
            for hold in holds:
                hold.release()


def after_the_demo(*keys: str, theme: str):
    """A demo app (one call at a time, so the log behind the view lists START/END in the same order on every
    run) and a run_before that waits for it to finish, then presses ``keys``."""
    app = make_app(app_settings("--demo", "--concurrency", "1"), pace=0, run_options={"clock": ManualClock()})

    async def run_before(pilot) -> None:
        screen = await started(pilot, pilot.app)
        await wait_for(pilot, lambda: screen.finished, what="the demo run")
        await wait_for(pilot, lambda: pilot.app._notifications, what="the run's closing notice")
        pilot.app.clear_notifications()
        await pilot.pause()
        await pilot.press(*keys)
        await steady(theme)(pilot)

    return app, run_before


def test_review_view(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(tmp_path)
    app, run_before = after_the_demo("2", "down", "down", theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_export_dialog(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(tmp_path)
    app, run_before = after_the_demo("x", theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_review_after_a_delete(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(tmp_path)
    app, run_before = after_the_demo("2", "down", "d", theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_review_after_an_edit(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(tmp_path)
    app, demo_done = after_the_demo("2", "e", theme=theme)

    async def run_before(pilot) -> None:
        await demo_done(pilot)
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "EditCardDialog", what="the edit dialog")
        pilot.app.screen.query_one("#front").text = "What rises through the crust when a volcano erupts?"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "RunScreen", what="the saved edit")
        await steady(theme)(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_export_done(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    monkeypatch.chdir(tmp_path)
    app, demo_done = after_the_demo("x", theme=theme)

    async def run_before(pilot) -> None:
        await demo_done(pilot)
        pilot.app.screen.query_one("#path").value = "volcanoes.apkg"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "volcanoes.apkg").exists(), what="the export")
        await wait_for(pilot, lambda: str(pilot.app.screen.query_one("#export").label) == "Done", what="Done")
        message = pilot.app.screen.query_one("#export-message")
        shown = message.render()  # the temp folder differs every run
        message.update(Text(str(shown).replace(str(tmp_path), "~"), style="bold"))
        await steady(theme)(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_export_dialog_without_colour(snap_compare, tmp_path, monkeypatch, size, theme) -> None:
    """NO_COLOR: a ticked and an unticked box differ in their characters, [x] and [ ]."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    app, demo_done = after_the_demo("x", theme=theme)

    async def run_before(pilot) -> None:
        await demo_done(pilot)
        await wait_for(pilot, lambda: pilot.app.screen.query("#subdecks"), what="the export dialog")
        pilot.app.screen.query_one("#subdecks").value = True
        await steady(theme)(pilot)
        text = "\n".join(strip.text for strip in pilot.app.screen._compositor.render_strips())
        assert "[x] subdeck per chapter" in text and "[ ] reversed cards too" in text

    assert snap_compare(app, terminal_size=size, run_before=run_before)
