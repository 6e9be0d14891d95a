"""Helpers for driving the Textual app in tests: settings from real flags, waiting on conditions, a clock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from mkflash_tui.cli import app_parser
from mkflash_tui.config import Settings, settings_from_args
from mkflash_tui.tui.screens.run import RunScreen


def app_settings(*flags: str) -> Settings:
    """Settings exactly as ``mkflash-tui FLAGS`` would build them, ignoring the developer's environment (and
    config file: the test's own, see conftest)."""
    return settings_from_args(app_parser().parse_args(list(flags)),
                              environ={"MKFLASH_CONFIG": os.environ["MKFLASH_CONFIG"]})  # fmt: skip


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Let the app run until ``predicate()`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def started(pilot, app) -> RunScreen:
    """The app's run screen, once the input has been read and the run has started."""
    await wait_for(pilot, lambda: app.run_screen is not None and app.run_screen.query("ChunkBoard"),
                   what="the run screen")  # fmt: skip
    await pilot.pause()
    return app.run_screen


class ManualClock:
    """A clock that only moves when told: panels and the bar show the same times in every snapshot."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def screen_text(pilot) -> str:
    """What the terminal shows once pending layout and paint are done, as plain text lines."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    return "\n".join(strip.text for strip in pilot.app.screen._compositor.render_strips())


async def wait_for_text(pilot, *needles: str, timeout: float = 15.0) -> str:
    """The screen's text once it shows every one of ``needles``; fails naming what never appeared."""
    deadline = time.monotonic() + timeout
    while True:
        text = await screen_text(pilot)
        missing = [n for n in needles if n not in text]
        if not missing:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {missing!r} on screen:\n{text}")
        await pilot.pause(0.02)
