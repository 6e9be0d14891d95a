"""The app's Timeline view (key 3) against the fake server: every call drawn where and when it happened — a 429
then its Retry-After wait then the answer, a repair, a chunk asked for in halves, a repeat answered from the
store, a call still in flight growing with the clock — and its keys: lanes, zoom, pan, fit, Enter."""

from __future__ import annotations

import itertools
from pathlib import Path

from conftest import sections
from fake_openai import FakeOpenAI, Fault, chunk_of, is_summary
from tui_support import app_settings, started, wait_for

from mkflash_tui.tui.app import make_app
from mkflash_tui.tui.screens.dialogs import ChunkDialog
from mkflash_tui.tui.widgets.timeline import TimelineView

SIZE = (120, 40)


def drawn(view: TimelineView, lane: int) -> list[str]:
    """The lane's marks in time order, each run of equal columns once (blank columns left out)."""
    return [kind for kind, _ in itertools.groupby(view.cells(lane)) if kind is not None]


def columns_of(view: TimelineView, lane: int, kind: str) -> list[int]:
    return [i for i, shown in enumerate(view.cells(lane)) if shown == kind]


async def test_the_timeline_draws_every_call_as_it_happened_and_its_keys_move_zoom_and_open(tmp_path: Path) -> None:
    text = sections(5, sentences=12)
    repeat = text[text.index("## Part 3") : text.index("## Part 4")]
    (tmp_path / "notes.md").write_text(text + "\n" + repeat)  # part 3 twice: the second is answered from the store
    attempts: dict[str, int] = {}

    def faults(number: int, body: dict) -> Fault | None:
        if is_summary(body):
            return None
        which = chunk_of(body) or ""
        attempts[which] = attempts.get(which, 0) + 1
        if "The part 0 fact 0 " in which and attempts[which] == 1:
            return Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "400"})
        if "The part 1 fact 0 " in which and attempts[which] == 1:
            return Fault(malformed=True)
        if "The part 2 fact 0 " in which and "The part 2 fact 11 " in which:  # the whole chunk: cut off
            return Fault(content='{"cards": [{"front": "What is', finish_reason="length")
        return None

    with FakeOpenAI(latency=0.05, fault_for=faults) as server:
        held = server.hold(lambda body: "The part 4 fact" in (chunk_of(body) or ""))
        settings = app_settings(str(tmp_path / "notes.md"), "--base-url", server.base_url, "--api-key", "sk-test",
                                "--chunk-tokens", "300", "--overlap-tokens", "0", "--yes")  # fmt: skip
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, app)
            assert len(screen.run.chunks) == 6
            await wait_for(pilot, lambda: held.arrived == 1, what="part 4's call at the server")
            await wait_for(pilot, lambda: sum(s.state.finished for s in screen.run.status.values()) == 5,
                           what="every chunk but the held one")  # fmt: skip
            await pilot.press("3")
            view = screen.query_one(TimelineView)
            assert app.focused is view and view.display

            # Part 4's call is in flight: drawn as such, and longer a moment later.
            assert drawn(view, 4) == ["running"]
            before = len(columns_of(view, 4, "running"))
            await pilot.pause(0.6)
            view.tick()
            await pilot.pause()
            assert len(columns_of(view, 4, "running")) > before
            held.release()
            await wait_for(pilot, lambda: screen.finished, what="the run")
            view.tick()
            await pilot.pause()

            # Every call, once the run is over, where it happened.
            assert drawn(view, -1) == ["answered"]  # the summary
            assert drawn(view, 0) == ["failed", "wait", "answered"]  # the 429, its Retry-After, the answer
            bars = view.timeline.lane(0, 0.0)
            wait = next(b for b in bars if b.kind == "wait")
            assert wait.end - wait.start >= 0.4
            frame = view._make_frame()
            assert abs(columns_of(view, 0, "wait")[0] - int((wait.start - frame.start) / frame.step)) <= 1
            assert drawn(view, 1) == ["failed", "wait", "repair"]  # unreadable, its backoff, the repair that answered
            assert [b.detail for b in view.timeline.lane(2, 0.0) if b.kind == "part"] == ["1/2", "2/2"]
            assert drawn(view, 2)[0] == "failed" and "answered" in drawn(view, 2)  # cut off, then its halves
            assert drawn(view, 4) == ["answered"]
            assert drawn(view, 5) == ["cache"]  # the repeat of part 3: no call
            assert view.timeline.ideal() is not None and view._make_frame().ideal is not None
            sent = len([b for b in server.requests if b.get("messages")])
            calls = [b for b in view.timeline.bars if b.kind in ("attempt", "repair")]
            assert len(calls) == sent  # one bar per request the server got

            # Lanes: ↓ moves, Enter opens that chunk; the summary's lane is the first.
            await pilot.press("down", "down", "down")
            assert view.cursor == 3
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ChunkDialog), what="the chunk dialog")
            assert app.screen.chunk_id == screen.run.chunks[2].id
            await pilot.press("escape")
            await pilot.pause()

            # Zoom in halves the time a column, panning moves along it, 0 fits the whole run again.
            whole = view._make_frame().step
            await pilot.press("plus")
            assert view.step is not None and abs(view.step - whole / 2) < 1e-9
            await pilot.press("plus", "right")
            assert view.start > 0
            await pilot.press("0")
            assert view.step is None and view.start == 0
            await pilot.press("minus")  # already the whole run: stays fitted
            assert view.step is None
            await pilot.press("1")
            assert screen.query_one("#views").current == "generate"
