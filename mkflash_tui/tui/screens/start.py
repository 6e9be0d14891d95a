"""StartScreen: pick a file (path with completion, or a directory tree) or paste text, and adjust the settings."""

from __future__ import annotations

import dataclasses
import os

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
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
from ...config_file import ConfigFile, load_config
from ...core.prompts import DEFAULT_STYLE, STYLES
from ...core.providers.base import ProviderError
from ...core.providers.presets import PRESETS
from ...core.sources import is_url
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


class ModelSuggester(Suggester):
    """Completes a model name from the server's list (the right arrow key accepts it)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self.names: list[str] = []

    async def get_suggestion(self, value: str) -> str | None:
        low = value.lower()
        return next((n for n in self.names if n.lower().startswith(low) and n.lower() != low), None) if low else None


class DocumentTree(LiteralDirectoryTree):
    """A directory tree that hides dot files; its root is labelled with the folder's path (~ for home)."""

    def on_mount(self) -> None:
        folder = os.path.abspath(str(self.path))
        home = os.path.expanduser("~")
        shown = "~" + folder[len(home):] if home not in ("", "/") and folder.startswith(home) else folder
        self.root.set_label(plain(shown + os.sep if not shown.endswith(os.sep) else shown))

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
        Binding("ctrl+s", "go", "Start", tooltip="start with the file, the web address or the pasted text"),
        Binding("f2", "show_tab('tab-file')", "File", priority=True, tooltip="the File tab: a file or a web address"),
        Binding("f3", "show_tab('tab-paste')", "Paste", priority=True, tooltip="the Paste tab: text to card"),
        Binding("f4", "show_tab('tab-settings')", "Settings", priority=True,
                tooltip="the Settings tab: provider, model, cards, language, style"),
        Binding("ctrl+o", "app.sessions", "Sessions", tooltip="earlier sessions, to reopen and export again"),
        Binding("question_mark", "app.help", "Help", show=False, tooltip="this help (outside a text field)"),
        Binding("ctrl+q", "app.quit", "Quit", tooltip="quit"),
    ]

    def action_show_tab(self, tab: str) -> None:
        """F2, F3, F4: File, Paste, Settings, with the focus in the tab's first field."""
        self.query_one(TabbedContent).active = tab
        first = {"tab-file": "#path", "tab-paste": "#pasted", "tab-settings": "#profile"}[tab]
        self.query_one(first).focus()

    def help_page(self) -> tuple[str, list]:
        """What the help screen lists on the start screen: its own keys."""
        return ("Pick a file or a web address (File), paste text (Paste), or choose the provider and the cards "
                "(Settings); then start.", [
                    ("Start screen", list(self.BINDINGS)),
                    ("Fields", [("Tab / Shift+Tab", "the next and the previous field"),
                                ("Enter", "in File: start with the file or address typed"),
                                ("↑ ↓, Enter", "in the file tree: move, and pick a file")]),
                    ("App", [("Ctrl+P", "command palette: every action by name")]),
                ])  # fmt: skip

    def __init__(self, settings: Settings, message: str = "", config: ConfigFile | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.message = message
        self.config = config or load_config()
        self.model_suggester = ModelSuggester()
        self._preset = settings.preset
        self._key_env: str | None = None  # a profile's api_key_env
        self._models_for: tuple[str | None, str | None] | None = None

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
            with TabPane("Settings", id="tab-settings"), VerticalScroll(id="settings-scroll"):
                with Grid(id="settings-grid"):
                    yield Label("Profile")
                    yield Select([("none", "")] + [(name, name) for name in sorted(self.config.profiles)],
                                 value=s.profile if s.profile in self.config.profiles else "", allow_blank=False,
                                 compact=True, id="profile")  # fmt: skip
                    yield Label("Provider")
                    yield Select([(f"{p.name}: {p.label}", p.name) for p in PRESETS.values()], value=s.preset,
                                 allow_blank=False, compact=True, id="provider")  # fmt: skip
                    yield Label("Base URL")
                    yield Input(s.base_url if s.base_url != PRESETS[s.preset].base_url else "", compact=True,
                                id="base-url")  # fmt: skip
                    yield Label("API key")
                    yield Input(password=True, compact=True, id="api-key")
                    yield Label("Model")
                    yield Input(s.model, compact=True, suggester=self.model_suggester, id="model")
                    yield Label("", id="model-list-label")
                    # Not in the Tab order: it appears once the server answers, and a field that appears while
                    # the user tabs moves every later field one stop (typed "French" landed in Total cards). The
                    # Model field completes the server's names as they are typed; the list is for the mouse.
                    model_list = Select([], prompt="models on the server", compact=True, id="model-list")
                    model_list.can_focus = False
                    yield model_list
                    yield Label("Chunk tokens")
                    yield Input(str(s.chunk_tokens), type="integer", compact=True, id="chunk-tokens")
                    yield Label("Total cards")
                    yield Input(str(s.cards or ""), placeholder="auto (about 1 per 80 tokens)", type="integer",
                                compact=True, id="cards")  # fmt: skip
                    yield Label("Language")
                    yield Input(s.language or "", placeholder="the source's own", compact=True, id="language")
                    yield Label("Style")
                    yield Select([(f"{name}{' (default)' if name == DEFAULT_STYLE else ''}", name) for name in STYLES],
                                 value=s.style, allow_blank=False, compact=True, id="style")  # fmt: skip
                    yield Label("Instructions")
                    yield Input(s.instructions, placeholder="extra instructions for the card prompt", compact=True,
                                id="instructions")  # fmt: skip
                    yield Label("Concurrency")
                    yield Input(str(s.concurrency), type="integer", compact=True, id="concurrency")
                    yield Label("Flagged cards")
                    yield Select([("keep them, marked ⚑ in Review", "keep"), ("leave them out", "drop")],
                                 value="drop" if s.drop_flagged else "keep", allow_blank=False, compact=True,
                                 id="flagged")  # fmt: skip
                with Horizontal(id="server-row"):
                    yield Static("", id="server-facts")
                    yield Button("Check server", id="check-server", compact=True)
                yield Static("", id="settings-hint")
        with Horizontal(id="start-buttons"):
            yield Static(plain(self.message), id="start-message")
            yield Button("Start (Ctrl+S)", variant="primary", id="go")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()
        self._show_model_list([])
        self._describe_provider()

    # ------------------------------------------------------------------ settings

    @on(Select.Changed, "#provider")
    def _provider_changed(self, event: Select.Changed) -> None:
        """A new preset: its defaults replace the old preset's where the user had not changed them."""
        old, new = PRESETS[self._preset], PRESETS[str(event.value)]
        if old.name == new.name:
            return
        self._preset = new.name
        model = self.query_one("#model", Input)
        if model.value.strip() in ("", old.model or "", self.settings.model if old.name == "openai" else ""):
            model.value = new.model or ""
        concurrency = self.query_one("#concurrency", Input)
        if concurrency.value.strip() in ("", str(old.concurrency), str(self.settings.concurrency)):
            concurrency.value = str(new.concurrency)
        self.query_one("#base-url", Input).value = ""
        self._describe_provider()

    @on(Select.Changed, "#profile")
    def _profile_changed(self, event: Select.Changed) -> None:
        values = self.config.profiles.get(str(event.value), {})
        if not values:
            self._key_env = None
            self._describe_provider()
            return
        if values.get("provider") in PRESETS:
            self.query_one("#provider", Select).value = values["provider"]
            self._preset = values["provider"]
        fields = {"base_url": "#base-url", "model": "#model", "chunk_tokens": "#chunk-tokens", "cards": "#cards",
                  "language": "#language", "instructions": "#instructions", "concurrency": "#concurrency"}
        for key, selector in fields.items():
            if key in values:
                self.query_one(selector, Input).value = str(values[key])
        if values.get("style") in STYLES:
            self.query_one("#style", Select).value = values["style"]
        if "drop_flagged" in values:
            self.query_one("#flagged", Select).value = "drop" if values["drop_flagged"] else "keep"
        self._key_env = values.get("api_key_env")
        self._describe_provider()

    @on(Select.Changed, "#model-list")
    def _model_picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value:
            self.query_one("#model", Input).value = event.value

    @on(Input.Changed, "#base-url")
    @on(Input.Changed, "#api-key")
    def _server_changed(self) -> None:
        self._describe_provider()

    def _describe_provider(self) -> None:
        """Say where the key comes from, and ask the server (after a pause in typing) which models it has."""
        preset = PRESETS[self._preset]
        online = preset.name != "offline"
        for selector in ("#base-url", "#api-key", "#model", "#language", "#style", "#instructions"):
            self.query_one(selector).disabled = not online
        self.query_one("#base-url", Input).placeholder = preset.base_url or "https://api.openai.com/v1"
        key_env = self._key_env or preset.key_env
        key_field = self.query_one("#api-key", Input)
        if not online:
            key_field.placeholder = "not needed"
        elif key_env and os.environ.get(key_env):
            key_field.placeholder = f"from {key_env}"
        elif preset.name == self.settings.preset and self.settings.key_source:
            key_field.placeholder = f"from {self.settings.key_source}"
        elif key_env:
            key_field.placeholder = f"type it, or set {key_env}" + ("" if preset.needs_key else " (optional)")
        else:
            key_field.placeholder = "not needed"
        hint = "Keys are never saved. " + ("The offline generator writes cards in the text's own language."
                                           if not online else "Language and style change the prompt.")  # fmt: skip
        self.query_one("#settings-hint", Static).update(hint)
        if online:
            self.set_timer(0.6, self._fetch_models)
        else:
            self._show_model_list([])

    def _fetch_models(self) -> None:
        preset = PRESETS[self._preset]
        if preset.name == "offline":
            return
        base_url = self.query_one("#base-url", Input).value.strip() or preset.base_url
        where = (base_url, self._key(preset))
        if where == self._models_for:
            return
        self._models_for = where
        self._load_models(*where)

    @work(thread=True, exclusive=True, group="models", exit_on_error=False)
    def _load_models(self, base_url: str | None, key: str | None) -> None:
        from ...core.providers.discovery import discover, list_models

        try:
            names = list_models(base_url, key, timeout=4.0)
        except ProviderError:
            names = []  # no list: the text field is all there is
        self.app.call_from_thread(self._show_model_list, names, (base_url, key))
        info = discover(base_url, key, self.query_one("#model", Input).value.strip())
        self.app.call_from_thread(self._show_server, info, (base_url, key))

    def _show_server(self, info, where) -> None:
        """What the server says about itself, in one line (the full check is the button's)."""
        if where != self._models_for:
            return
        if not info.reachable:
            text = "Server: nothing answers there yet."
        elif info.kind == "openai":
            text = "Server: OpenAI."
        else:
            text = (f"Server: {info.kind}, context {info.describe_window()}, slots {info.describe_slots()}.")
        self.query_one("#server-facts", Static).update(plain(text))

    @on(Button.Pressed, "#check-server")
    def _check_server(self) -> None:
        try:
            settings = self._choice(for_check=True).settings
        except ValueError as exc:
            self.query_one("#server-facts", Static).update(plain(str(exc), "bold red"))
            return
        self.query_one("#server-facts", Static).update(plain(f"Checking {settings.server()}…"))
        self._run_check(settings)

    @work(exclusive=True, group="check", exit_on_error=False)
    async def _run_check(self, settings: Settings) -> None:
        from ...doctor import check

        result = await check(settings)
        rows = [f"{label}: {fact}" for label, fact in result.lines()] + [f"a run: {n}" for n in result.plan]
        rows += [f"problem: {p}" for p in result.problems]
        rows.append("A run would work." if result.works else "A run would not work.")
        self.query_one("#server-facts", Static).update(plain("\n".join(rows)))

    def _show_model_list(self, names: list[str], where=None) -> None:
        if where is not None and where != self._models_for:
            return  # an answer for a server the user has moved away from
        self.model_suggester.names = names
        picker = self.query_one("#model-list", Select)
        label = self.query_one("#model-list-label", Label)
        picker.set_options([(n, n) for n in names[:500]])
        picker.display = label.display = bool(names)
        label.update(f"{len(names)} on server" if names else "")

    def _key(self, preset) -> str | None:
        """The key for ``preset``: typed, else its environment variable's, else the one the app started with if
        it belongs to this preset. Another provider's key is never sent."""
        typed = self.query_one("#api-key", Input).value.strip()
        if typed:
            return typed
        key_env = self._key_env or preset.key_env
        if key_env and os.environ.get(key_env):
            return os.environ[key_env]
        if preset.name == self.settings.preset:
            return self.settings.api_key
        return None

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

    def _choice(self, for_check: bool = False) -> StartChoice:
        """The start screen's choices; ``for_check``: only the server's, for the Check button."""
        settings = dataclasses.replace(self.settings)
        settings.demo = False
        preset = PRESETS[str(self.query_one("#provider", Select).value)]
        settings.preset = preset.name
        settings.provider = "offline" if preset.name == "offline" else "openai"
        settings.provider_reason = "chosen on the start screen"
        profile = str(self.query_one("#profile", Select).value)
        settings.profile = profile or None
        settings.base_url = self.query_one("#base-url", Input).value.strip() or preset.base_url
        settings.model = self.query_one("#model", Input).value.strip() or settings.model
        key = self._key(preset)
        if key != self.settings.api_key or preset.name != self.settings.preset:
            typed = self.query_one("#api-key", Input).value.strip()
            settings.api_key = key
            source = (self._key_env or preset.key_env or "") if key else ""
            settings.key_source = "the start screen" if typed else source
        settings.language = self.query_one("#language", Input).value.strip()[:40] or None
        settings.style = str(self.query_one("#style", Select).value)
        settings.instructions = self.query_one("#instructions", Input).value.strip()
        settings.cards = _number(self.query_one("#cards", Input).value, "Total cards", allow_blank=True)
        concurrency = _number(self.query_one("#concurrency", Input).value, "Concurrency") or 1
        settings.concurrency_explicit = self.settings.concurrency_explicit or concurrency != self.settings.concurrency
        settings.concurrency = concurrency
        settings.drop_flagged = self.query_one("#flagged", Select).value == "drop"
        chunk_tokens = _number(self.query_one("#chunk-tokens", Input).value, "Chunk tokens") or 0
        if chunk_tokens < 64:
            raise ValueError("Chunk tokens must be at least 64.")
        if chunk_tokens != settings.chunk_tokens:
            settings.chunk_tokens = chunk_tokens
            settings.overlap_tokens = min(settings.overlap_tokens, chunk_tokens // 8)
        if settings.online and not self.query_one("#model", Input).value.strip():
            raise ValueError("Name the model in Settings (the list under it shows the server's).")
        if preset.name == "openai" and not (settings.api_key or settings.base_url):
            raise ValueError("The OpenAI provider needs an API key or a base URL (see Settings).")
        if preset.needs_key and not settings.api_key and settings.base_url == preset.base_url:
            raise ValueError(f"{preset.label} needs an API key: type it in Settings or set {preset.key_env}.")
        if for_check:
            return StartChoice(settings)
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
