"""StartScreen: pick a file (path with completion, or a directory tree) or paste text, and adjust the settings."""

from __future__ import annotations

import dataclasses
import os

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.suggester import Suggester
from textual.widgets import (
    Button,
    DirectoryTree,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from ...config import Settings
from ...core.fetch import is_url
from ..text import LiteralDirectoryTree, plain
from ..widgets.key_bar import KeyBar
from .base import DismissOnce


class PathSuggester(Suggester):
    """Completes file system paths; the right arrow key accepts the suggestion."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        directory, prefix = os.path.split(expanded)
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            return None
        for name in names:
            if name.startswith(prefix) and name != prefix and not (name.startswith(".") and not prefix):
                completed = os.path.join(directory, name)
                if os.path.isdir(completed):
                    completed += os.sep
                return value + completed[len(expanded) :]
        return None


class DocumentTree(LiteralDirectoryTree):
    """A directory tree that hides dot files."""

    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".")]


@dataclasses.dataclass(slots=True)
class StartChoice:
    """What the start screen hands back: a path or pasted text, and the settings to use."""

    settings: Settings
    path: str | None = None
    pasted: str | None = None


class StartScreen(DismissOnce, Screen[StartChoice]):
    """Shown when no file was given (or the given one could not be read)."""

    BINDINGS = [
        Binding("ctrl+s", "go", "Start"),
        Binding("ctrl+o", "app.sessions", "Sessions"),
        Binding("question_mark", "app.help", "Help", show=False),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]

    def __init__(self, settings: Settings, message: str = "") -> None:
        super().__init__()
        self.settings = settings
        self.message = message

    def compose(self) -> ComposeResult:
        s = self.settings
        yield Static(
            "[b]mkflash-tui[/b]  a file or a web address: Enter · pasted text: Ctrl+S",
            id="start-title",
        )
        with TabbedContent(id="start-tabs"):
            with TabPane("File", id="tab-file"):
                yield Input(s.input or "", placeholder="a file (.md .txt .html .pdf .epub .srt) or a web address",
                            suggester=PathSuggester(), id="path")  # fmt: skip
                yield DocumentTree(".", id="tree")
            with TabPane("Paste", id="tab-paste"):
                yield TextArea(id="pasted", soft_wrap=True, show_line_numbers=False)
            with TabPane("Settings", id="tab-settings"), Grid(id="settings-grid"):
                yield Label("Provider")
                yield Select(
                    [("offline generator (no key, no network)", "offline"), ("OpenAI-compatible server", "openai")],
                    value=s.provider,
                    allow_blank=False,
                    id="provider",
                )
                yield Label("Model")
                yield Input(s.model, id="model")
                yield Label("Base URL")
                yield Input(s.base_url or "", placeholder="https://api.openai.com/v1", id="base-url")
                yield Label("API key")
                yield Input(placeholder="from OPENAI_API_KEY" if s.api_key else "never saved", password=True,
                            id="api-key")  # fmt: skip
                yield Label("Total cards")
                yield Input(str(s.cards or ""), placeholder="auto (about 1 per 80 tokens)", type="integer",
                            id="cards")  # fmt: skip
                yield Label("Concurrency")
                yield Input(str(s.concurrency), type="integer", id="concurrency")
                yield Label("Chunk tokens")
                yield Input(str(s.chunk_tokens), type="integer", id="chunk-tokens")
                yield Label("Flagged cards")
                yield Select([("keep them, marked ⚑ in Review", "keep"), ("leave them out", "drop")],
                             value="drop" if s.drop_flagged else "keep", allow_blank=False, id="flagged")  # fmt: skip
        with Horizontal(id="start-buttons"):
            yield Static(plain(self.message), id="start-message")
            yield Button("Start (Ctrl+S)", variant="primary", id="go")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        field = self.query_one("#path", Input)
        field.value = str(event.path)
        field.focus()

    @on(Input.Changed, "#path")
    def _path_changed(self, event: Input.Changed) -> None:
        """A new path makes the last complaint ("Pick a file first", "no such file") stale: clear it."""
        if event.value != (self.settings.input or ""):
            self.query_one("#start-message", Static).update("")

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def action_go(self) -> None:
        try:
            choice = self._choice()
        except ValueError as exc:
            self.query_one("#start-message", Static).update(plain(str(exc), "bold red"))
            return
        self.dismiss(choice)

    def _choice(self) -> StartChoice:
        settings = dataclasses.replace(self.settings)
        settings.demo = False
        settings.provider = str(self.query_one("#provider", Select).value)
        settings.provider_reason = "chosen on the start screen"
        settings.model = self.query_one("#model", Input).value.strip() or settings.model
        settings.base_url = self.query_one("#base-url", Input).value.strip() or None
        key = self.query_one("#api-key", Input).value.strip()
        if key:
            settings.api_key, settings.key_source = key, "the start screen"
        settings.cards = _number(self.query_one("#cards", Input).value, "Total cards", allow_blank=True)
        settings.concurrency = _number(self.query_one("#concurrency", Input).value, "Concurrency") or 1
        settings.drop_flagged = self.query_one("#flagged", Select).value == "drop"
        chunk_tokens = _number(self.query_one("#chunk-tokens", Input).value, "Chunk tokens") or 0
        if chunk_tokens < 64:
            raise ValueError("Chunk tokens must be at least 64.")
        if chunk_tokens != settings.chunk_tokens:
            settings.chunk_tokens = chunk_tokens
            settings.overlap_tokens = min(settings.overlap_tokens, chunk_tokens // 8)
        if settings.online and not (settings.api_key or settings.base_url):
            raise ValueError("The OpenAI provider needs an API key or a base URL (see Settings).")
        pasted = self.query_one("#pasted", TextArea).text
        path = self.query_one("#path", Input).value.strip()
        if is_url(pasted) and len(pasted.split()) == 1 and not path:
            path = pasted.strip()  # a web address pasted: the page, not its address as text
        elif self.query_one(TabbedContent).active == "tab-paste" or (pasted.strip() and not path):
            if not pasted.strip():
                raise ValueError("Paste some text first (or pick a file).")
            settings.input = None
            return StartChoice(settings, pasted=pasted)
        if not path:
            raise ValueError("Pick a file first (or paste text in the Paste tab).")
        settings.input = path
        return StartChoice(settings, path=path)


def _number(text: str, name: str, *, allow_blank: bool = False) -> int | None:
    text = text.strip()
    if not text:
        if allow_blank:
            return None
        raise ValueError(f"{name} needs a number.")
    value = int(text)
    if value < 1:
        raise ValueError(f"{name} must be at least 1.")
    return value
