"""Make the SVG screenshots in this folder from the real app (headless, 120×36): the offline demo, and for the
Timeline a run against the test server (``tests/fake_openai.py``) that refuses one call with a 429.

    python screenshots/make_screenshots.py

The README's headless timeline (``timeline.svg``) is drawn by ``python tests/bench/bench_ratelimit.py --timeline``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from mkflash_tui.cli import app_parser
from mkflash_tui.config import settings_from_args
from mkflash_tui.tui.app import make_app

HERE = Path(__file__).resolve().parent
SIZE = (120, 36)
sys.path.insert(0, str(HERE.parent / "tests"))
from fake_openai import FakeOpenAI, Fault, is_summary  # noqa: E402


def settings(*flags: str):
    environ = {"MKFLASH_CONFIG": os.environ["MKFLASH_CONFIG"]}  # set in main(): never the user's own file
    return settings_from_args(app_parser().parse_args(list(flags)), environ=environ)


async def until(pilot, predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the app never got there")
        await pilot.pause(0.05)


async def shoot(app, name: str, steps) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await steps(pilot)
        for screen in app.screen_stack:
            for widget in screen.query("Input, TextArea"):
                widget.cursor_blink = False
        await pilot.pause(0.2)
        app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
        print(f"screenshots/{name}.svg")


async def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="mkflash-shots-"))
    workdir = home / "notes"
    workdir.mkdir()
    os.environ["HOME"] = str(home)  # the file tree's root shows as ~/notes/, the same on every machine
    os.environ["MKFLASH_CONFIG"] = str(home / "config.toml")  # never the user's own settings
    os.chdir(workdir)
    (workdir / "lecture-notes.md").write_bytes((HERE.parent / "mkflash_tui" / "data" / "demo.md").read_bytes())
    (workdir / "reading").mkdir()

    async def start(pilot) -> None:
        await pilot.press(*"lec", "right")

    await shoot(make_app(settings()), "start", start)

    async def settings_tab(pilot) -> None:
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "StartScreen")
        screen = pilot.app.screen
        screen.query_one("#start-tabs").active = "tab-settings"
        screen.query_one("#provider").focus()  # the focus in the File tab would take the tab back
        await pilot.pause(0.3)

    await shoot(make_app(settings("--provider", "ollama", "--language", "English", "--style", "exam")), "settings",
                settings_tab)  # fmt: skip

    async def confirm(pilot) -> None:
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmScreen")

    await shoot(make_app(settings("lecture-notes.md", "--api-key", "sk-not-a-real-key")), "confirm", confirm)

    async def generating(pilot) -> None:
        await until(pilot, lambda: pilot.app.run_screen is not None and pilot.app.run_screen.run.counts()["done"] >= 3)

    await shoot(make_app(settings("--demo")), "generate", generating)

    def finished(pilot) -> bool:
        return pilot.app.run_screen is not None and pilot.app.run_screen.finished

    async def review(pilot) -> None:
        await until(pilot, lambda: finished(pilot))
        await pilot.press("2", "down", "down")

    await shoot(make_app(settings("--demo"), pace=0), "review", review)

    async def export(pilot) -> None:
        await until(pilot, lambda: finished(pilot))
        await pilot.press("x")

    await shoot(make_app(settings("--demo"), pace=0), "export", export)

    async def help_screen(pilot) -> None:
        await until(pilot, lambda: finished(pilot))
        await pilot.press("question_mark")

    await shoot(make_app(settings("--demo"), pace=0), "help", help_screen)

    refused: list[int] = []

    def one_429(number: int, body: dict) -> Fault | None:
        if is_summary(body) or refused:
            return None
        refused.append(number)
        return Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "900"})

    async def timeline(pilot) -> None:
        await until(pilot, lambda: finished(pilot))
        await pilot.press("3")

    with FakeOpenAI(latency=0.6, fault_for=one_429) as server:
        flags = ("lecture-notes.md", "--base-url", server.base_url, "--api-key", "sk-screenshots", "--yes",
                 "--concurrency", "4", "--chunk-tokens", "250")  # fmt: skip
        await shoot(make_app(settings(*flags)), "timeline-view", timeline)


if __name__ == "__main__":
    asyncio.run(main())
