"""The real ``mkflash-tui --demo`` in a real terminal (tmux): review, delete one card, export, import in Anki."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from anki_check import AnkiCollection

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, cwd: Path, command: str, size: tuple[int, int] = (120, 40)) -> None:
        self.socket = f"mkflash-test-{uuid.uuid4().hex[:8]}"
        self.run("new-session", "-d", "-x", str(size[0]), "-y", str(size[1]), "-s", "app", "-c", str(cwd), command)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def keys(self, *keys: str) -> None:
        """Type ``keys``; the caller waits for what they should show (no fixed pauses)."""
        for key in keys:
            self.run("send-keys", "-t", "app", key)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.screen())
            if match:
                return match
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never appeared; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_demo_in_a_real_terminal(tmp_path: Path) -> None:
    tmux = Tmux(tmp_path, f"{sys.executable} -m mkflash_tui --demo; echo mkflash-exited-$?; sleep 30")
    try:
        # The finish toast counts the cards once every chunk is in; the tab's count catches up on its timer.
        made = int(tmux.wait_for(r"Done: (\d+) cards").group(1))
        tmux.wait_for(rf"2 Review \({made}\)")
        assert made > 3
        tmux.keys("2")
        # The review table is on screen: its header (a notification may sit over its right half) and first row.
        tmux.wait_for(r"# +type +front")
        tmux.wait_for(r"(?m)^ +1 +(basic|cloze) +\S")
        tmux.keys("d")
        tmux.wait_for(rf"2 Review \({made - 1}\)")
        tmux.keys("x")
        tmux.wait_for(r"Export deck")
        tmux.keys("Enter")
        tmux.wait_for(r"Wrote \d+ notes")
        deck = tmp_path / "demo.apkg"
        assert deck.exists()
        anki = AnkiCollection(tmp_path / "anki")
        try:
            anki.import_apkg(deck)
            assert len(anki.notes()) == made - 1
        finally:
            anki.close()
        tmux.keys("Escape")
        tmux.wait_for(r"^(?![\s\S]*Export deck)")  # the dialog is closed
        tmux.keys("q")
        screen = tmux.wait_for(r"mkflash-exited-\d+|Quit mkflash-tui\?").group(0)
        assert screen == "mkflash-exited-0"  # exported: quitting asks nothing, and the app ends cleanly
    finally:
        tmux.close()
