"""MkflashApp: start (pick a file or paste) → confirm the cost (paid providers) → generate and review → export.

``make_app`` is what the entry point and the tests both call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Static

from .. import format as fmt
from ..config import Settings
from ..config_file import remember
from ..core.chunking import ChunkingError
from ..core.models import Document
from ..core.prompts import DEFAULT_STYLE
from ..core.providers.presets import PRESETS
from ..core.sources import SourceError, parse_bytes
from ..core.sources.gather import Gathered
from ..core.store import JobInfo, Store, StoreError, move_store_aside, open_store
from ..core.text import strip_controls
from ..job import Job, discover_server, load_document, prepare, settings_for_session
from ..shelf import Shelf, prepare_shelf
from .screens.confirm import ConfirmScreen, ShelfConfirmScreen
from .screens.dialogs import BrokenStoreDialog, HelpScreen, QuitDialog, ResumeDialog, SessionsScreen
from .screens.run import RunScreen
from .screens.shelf import ShelfScreen
from .screens.start import StartChoice, StartScreen
from .text import plain
from .widgets.key_bar import KeyBar

APP_KEYS = [
    ("Ctrl+P", "command palette: every action by name"),
    ("Ctrl+O", "earlier sessions, to reopen and export again (start screen; palette: Sessions)"),
    ("Ctrl+Q", "quit, from any screen"),
]
DEMO_PACE = 1.6  # seconds per offline call in --demo, so a person can watch chunks run side by side


class LoadingScreen(Screen):
    """The first thing painted: what is being read, while the text is read and chunked in a thread."""

    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(Text.assemble(("mkflash-tui", "bold"), "\n\n", plain(self.what)), id="loading")
        yield KeyBar()


class MkflashApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "mkflash-tui"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        # Tab moves the focus before the keys typed after it are handed out: as an ordinary binding it runs only
        # once the Tab has bubbled up from the focused field, and keys in the same burst went to that field.
        Binding("tab", "focus_next", "Next field", show=False, priority=True),
        Binding("shift+tab", "focus_previous", "Previous field", show=False, priority=True),
    ]

    def __init__(self, settings: Settings, *, pace: float | None = None, run_options: dict | None = None,
                 shelf: tuple[list[str], Gathered] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.settings = settings
        self.shelf_inputs = shelf  # (what was named, what it stands for): many documents, one job
        self.pace = DEMO_PACE if pace is None and settings.demo else (pace or 0.0)
        self.run_options = run_options or {}  # e.g. an injected clock, for tests and screenshots
        self.job: Job | None = None
        self.store: Store | None = None
        self.store_error: str | None = None

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:  # fmt: skip
        """Every notification shows its message literally: messages carry titles, paths and model output."""
        super().notify(strip_controls(message), title=strip_controls(title), severity=severity, timeout=timeout,
                       markup=False)  # fmt: skip

    def action_help_quit(self) -> None:
        """Ctrl+C: say how to quit. Textual's own toast writes its key in markup, which ``notify`` here shows as
        it is ("[b]ctrl+q[/b]"): the same words, plain."""
        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit"):
                self.notify(f"Press {key} to quit the app", title="Do you want to quit?")
                return

    def get_default_screen(self) -> Screen:
        if self.shelf_inputs is not None:
            return LoadingScreen(f"Reading {fmt.plural(len(self.shelf_inputs[1].inputs), 'document')}…")
        what = "Opening the demo text…" if self.settings.demo else f"Reading {self.settings.input}…"
        return LoadingScreen(what if (self.settings.input or self.settings.demo) else "")

    def on_mount(self) -> None:
        if self.settings.theme and self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.settings.config_warning:
            self.notify(self.settings.config_warning, title="Config file", severity="warning", timeout=15)
        if self.settings.notice:
            self.notify(self.settings.notice, severity="warning", timeout=10)
        if self.shelf_inputs is not None:
            self.load_shelf(self.settings, *self.shelf_inputs)
        elif self.settings.input or self.settings.demo:
            self.load(self.settings)
        else:
            self.show_start(self.settings)

    # ------------------------------------------------------------------ flow

    def show_start(self, settings: Settings, message: str = "") -> None:
        self.push_screen(StartScreen(settings, message), self._started)

    def _started(self, choice: StartChoice | None) -> None:
        if choice is None:
            return
        self.remember(remembered_values(choice.settings))
        self.load(choice.settings, pasted=choice.pasted)

    def _theme_changed(self, theme) -> None:
        if theme.name != self.settings.theme:
            self.settings.theme = theme.name
            self.remember({"theme": theme.name})

    def remember(self, values: dict) -> None:
        """Keep the user's choices in the config file's [app] section (never a key; headless runs ignore it)."""
        try:
            remember(values)
        except OSError as exc:
            self.notify(f"Your choices could not be kept in the config file ({exc.strerror or exc}).",
                        severity="warning", timeout=6)  # fmt: skip

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, settings: Settings, pasted: str | None = None, document: Document | None = None,
             reopen: bool = False) -> None:  # fmt: skip
        """Read and chunk in a thread (tiktoken and PDFs take a moment), then confirm or start."""
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                server = pool.submit(discover_server, settings)  # while the input is read
                if pasted is not None:
                    document = parse_bytes(pasted.encode("utf-8"), name="pasted text", stem="pasted", suffix=".md")
                document = document or load_document(settings)
                job = prepare(settings, document, server=server.result())
        except (SourceError, ChunkingError) as exc:
            self.call_from_thread(self._load_failed, settings, str(exc))
            return
        if not (settings.fresh or settings.demo):
            try:  # a connection of this thread's own: the app's belongs to the event loop's thread
                with contextlib.closing(open_store(settings.data_dir)) as reader:
                    job.continue_from(reader)
                    job.learn_speed(reader)
            except StoreError:
                pass  # the app says so when it opens the store; this run is then a new one
        if reopen:
            self.call_from_thread(self.start_run, job, view="review")
        else:
            self.call_from_thread(self.job_ready, job)

    # ------------------------------------------------------------------ a shelf: many documents, one job

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_shelf(self, settings: Settings, names: list[str], gathered: Gathered) -> None:
        """Read every document in a thread (saying which, as each is read), then confirm or start. ``names``:
        what the user gave (the job's identity); ``gathered``: the documents they stand for."""

        def reading(done: int, total: int) -> None:
            if done < total:
                self.call_from_thread(self._say_loading, f"Reading {done + 1} of {total}: {gathered.inputs[done]}")

        reading(0, len(gathered.inputs))
        shelf = prepare_shelf(settings, gathered, names, server=discover_server(settings), on_read=reading)
        self._continue_shelf(shelf)
        self.call_from_thread(self.shelf_ready, shelf)

    def _say_loading(self, what: str) -> None:
        if isinstance(self.screen, LoadingScreen):
            self.screen.query_one("#loading", Static).update(Text.assemble(("mkflash-tui", "bold"), "\n\n",
                                                                          plain(what)))  # fmt: skip

    def _continue_shelf(self, shelf: Shelf) -> None:
        """Each document continues its own earlier session (run in the loading thread: its own connection)."""
        if shelf.jobs and not shelf.settings.fresh:
            try:
                with contextlib.closing(open_store(shelf.settings.data_dir)) as reader:
                    shelf.continue_from(reader)
            except StoreError:
                pass  # said when the app opens the store; the documents' sessions are then new ones

    def shelf_ready(self, shelf: Shelf, view: str = "generate") -> None:
        for _, reason in shelf.skipped[:3]:
            self.notify(reason, title="Skipped", severity="warning", timeout=10)
        if len(shelf.skipped) > 3:
            self.notify(f"… and {fmt.plural(len(shelf.skipped) - 3, 'more input')} could not be read.",
                        severity="warning", timeout=10)  # fmt: skip
        if not shelf.jobs:
            message = "None of the documents could be read; nothing was sent."
            self.notify(message, title="Cannot use this input", severity="error", timeout=10)
            self.show_start(shelf.settings, message)
            return
        self._ensure_store(shelf.settings, then=partial(self._shelf_store_ready, shelf, view))

    def _shelf_store_ready(self, shelf: Shelf, view: str) -> None:
        settings = shelf.settings
        nothing_to_send = shelf.estimate().chunks == 0
        if view == "generate" and settings.online and (not settings.yes or shelf.over_budget) and not nothing_to_send:
            self.push_screen(ShelfConfirmScreen(shelf),
                             lambda start: self.start_shelf(shelf) if start else self.show_start(settings))  # fmt: skip
        else:
            self.start_shelf(shelf, view)

    def start_shelf(self, shelf: Shelf, view: str = "generate") -> None:
        """Open every document's session and the job, and run them on one screen."""
        settings = shelf.settings
        if settings.ignored_offline():
            self.notify(f"The offline generator ignores {' and '.join(settings.ignored_offline())}: it cards "
                        "the text as written, in its own language.", timeout=6)  # fmt: skip
        for note in shelf.jobs[0].fitted:
            self.notify(note[0].upper() + note[1:] + ".", timeout=8)
        continued_docs = sum(1 for j in shelf.jobs if j.previous is not None)
        if continued_docs and not settings.fresh and view == "generate":
            self.notify(f"Continuing {fmt.plural(continued_docs, 'document')} of this job from earlier sessions.",
                        timeout=6)  # fmt: skip
        sessions: list[str | None] = [None] * len(shelf.jobs)
        continued = [True] * len(shelf.jobs)
        decisions = {}
        if self.store is not None:
            try:
                opened = shelf.open(self.store)
                sessions = [session for session, _ in opened]
                continued = [was for _, was in opened]
                decisions = {s: self.store.decisions(s) for s, was in opened if was}
            except StoreError as exc:
                self.store_error, self.store = str(exc), None
                self.notify(f"{exc}. Cards will not be kept after you quit.", severity="warning", timeout=10)
        if self.store is not None and shelf.job_id is not None:
            from ..job import take_up_batches

            if (said := take_up_batches(shelf.settings, self.store, shelf.job_id)) is not None:
                self.notify(said[0].upper() + said[1:] + ".", timeout=10)
        runs = shelf.make_runs(self.store, sessions, stream=True, pace=self.pace, **self.run_options)
        screen = ShelfScreen(shelf, runs, store=self.store, decisions=decisions, continued=continued, view=view)
        if self.run_screen is not None:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def reopen_job(self, job: JobInfo) -> None:
        """An earlier job, whole, in the review view: each document from its session's kept text."""
        assert self.store is not None
        sources = []
        try:
            with contextlib.closing(open_store(self.settings.data_dir)) as reader:
                sources = [reader.session_source(sid) for sid in job.sessions]
                names = {s.id: s.input_name for s in reader.sessions()}
        except StoreError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
            return
        kept = [(sid, source) for sid, source in zip(job.sessions, sources, strict=True) if source is not None]
        if not kept:
            self.call_from_thread(self.notify, "That job's documents were kept without their text; run its "
                                  "folder again to reopen it.", severity="warning", timeout=8)  # fmt: skip
            return
        spec, _, source_key = kept[0][1]
        settings = settings_for_session(self.settings, spec, source_key)
        settings.deck = job.deck
        shelf = Shelf(settings, list(job.inputs), [], deck=job.deck)
        for sid, (spec, document, source_key) in kept:
            own = settings_for_session(self.settings, spec, source_key)
            own.input = names.get(sid) or document.name
            try:
                shelf.jobs.append(prepare(own, document))
            except ChunkingError as exc:
                shelf.skipped.append((own.input, str(exc)))
        self._continue_shelf(shelf)
        self.call_from_thread(self.shelf_ready, shelf, "review")

    # ------------------------------------------------------------------ sessions

    def _ensure_store(self, settings: Settings, then=None) -> Store | None:
        """The store, opened once. A damaged one asks whether to move it aside (then ``then()`` goes on)."""
        if self.store is None and self.store_error is None:
            try:
                self.store = open_store(settings.data_dir)
            except StoreError as exc:
                self.store_error = str(exc)
                if "is damaged" in str(exc) and then is not None:
                    self.push_screen(BrokenStoreDialog(str(exc)),
                                     lambda choice: (self._broken_store(settings, choice), then()))  # fmt: skip
                    return None
                self.notify(f"{exc}. Cards will not be kept after you quit.", severity="warning", timeout=10)
        if then is not None:
            then()
        return self.store

    def _broken_store(self, settings: Settings, choice: str | None) -> None:
        """Move the damaged store aside and open a new one in its place, or go on without one (said once)."""
        if choice != "move":
            self.notify("Going on without the session store: cards will not be kept after you quit.",
                        severity="warning", timeout=8)  # fmt: skip
            return
        try:
            moved = move_store_aside(settings.data_dir)
            self.store, self.store_error = open_store(settings.data_dir), None
        except (OSError, StoreError) as exc:
            self.notify(f"Could not move the store aside ({exc}); going on without it.", severity="error")
            return
        self.notify(f"The damaged store is kept as {moved}; a new one is in use.", timeout=8)

    def action_sessions(self) -> None:
        store = self._ensure_store(self.settings)
        if store is None:
            return
        if isinstance(self.screen, SessionsScreen):
            return
        try:
            jobs = store.jobs()
        except StoreError:
            jobs = []
        self.push_screen(SessionsScreen(store.sessions(), remove=self._delete_session, jobs=jobs), self.reopen)

    def _delete_session(self, session_id: str) -> bool:
        try:
            if self.store is not None and session_id.startswith("j") and self.store.remove_job(session_id):
                return True
            return self.store is not None and self.store.remove_session(session_id)
        except StoreError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return False

    def reopen(self, session_id: str | None) -> None:
        """Open an earlier session in the review view: its answers come from the store, its decisions kept."""
        if session_id is None or self.store is None:
            return
        job = next((j for j in self.store.jobs() if j.id == session_id), None)
        if job is not None:
            if isinstance(self.screen, StartScreen):
                self.pop_screen()
            self.reopen_job(job)
            return
        source = self.store.session_source(session_id)
        if source is None:
            self.notify("That session was kept by an older version without its text; open its file again to "
                        "resume it.", severity="warning", timeout=8)  # fmt: skip
            return
        spec, document, source_key = source
        if isinstance(self.screen, StartScreen):
            self.pop_screen()
        self.load(settings_for_session(self.settings, spec, source_key), document=document, reopen=True)

    def _load_failed(self, settings: Settings, message: str) -> None:
        self.notify(message, title="Cannot use this input", severity="error", timeout=10)
        self.show_start(settings, message)

    def job_ready(self, job: Job) -> None:
        self.job = job
        self._ensure_store(job.settings, then=partial(self._store_ready, job))

    def _store_ready(self, job: Job) -> None:
        if job.settings.demo:
            job.settings.fresh = True  # the demo is there to be watched: no question, generated anew every time
        earlier = None
        if self.store is not None and job.previous is not None and not job.settings.fresh and not job.settings.yes:
            earlier = self.store.session_info(job.previous.session_id)
        if earlier is not None and earlier.chunks_done:
            changes = job.changes.describe() if job.changes and (job.changes.changed or job.changes.removed) else ""
            self.push_screen(ResumeDialog(earlier, changes), partial(self._resume_chosen, job))
        else:
            self._confirm_or_start(job)

    def _resume_chosen(self, job: Job, resume: bool | None) -> None:
        if not resume:
            job.start_over()
        self._confirm_or_start(job)

    def _confirm_or_start(self, job: Job) -> None:
        if self.store is not None and job.previous is not None and not job.settings.fresh:
            from ..job import take_up_batches

            job.taken_up = take_up_batches(job.settings, self.store, job.previous.session_id)
            if job.taken_up:
                self.notify(job.taken_up[0].upper() + job.taken_up[1:] + ".", timeout=10)
        nothing_to_send = job.done_earlier and job.estimate.chunks == 0  # resumed and complete: no cost to confirm
        needs_confirm = job.settings.online and (not job.settings.yes or job.over_budget) and not nothing_to_send
        if needs_confirm:
            self.push_screen(ConfirmScreen(job), partial(self._confirmed, job))
        else:
            self.start_run(job)

    def _confirmed(self, job: Job, start: bool | None) -> None:
        if start:
            self.start_run(job)
        else:
            self.show_start(job.settings)

    def start_run(self, job: Job, view: str = "generate") -> None:
        self.job = job
        self._ensure_store(job.settings)
        session_id, resumed, decisions = None, False, {}
        if job.settings.ignored_offline():
            self.notify(f"The offline generator ignores {' and '.join(job.settings.ignored_offline())}: it cards "
                        "the text as written, in its own language.", timeout=6)  # fmt: skip
        for note in job.fitted:
            self.notify(note[0].upper() + note[1:] + ".", timeout=8)
        if job.changes is not None and (job.changes.changed or job.changes.removed) and not job.settings.fresh:
            self.notify(f"Continuing the earlier session: {job.changes.describe()}.", timeout=6)
        if self.store is not None:
            try:
                session_id, resumed = job.open_session(self.store)
                decisions = self.store.decisions(session_id) if resumed else {}
            except StoreError as exc:
                self.store_error = str(exc)
                self.store = None
                self.notify(f"{exc}. Cards will not be kept after you quit.", severity="warning", timeout=10)
        desk = None
        if self.store is not None and session_id is not None and not job.taken_up:
            from ..job import take_up_batches

            if (said := take_up_batches(job.settings, self.store, session_id)) is not None:
                self.notify(said[0].upper() + said[1:] + ".", timeout=10)
        if job.settings.batch and self.store is not None and session_id is not None:
            from ..job import batch_desk, batch_run

            def desk_for(provider):
                nonlocal desk
                desk = batch_desk(job.settings, provider, self.store, session_id)
                return desk

            run = batch_run(job, self.store, session_id, desk_for, **self.run_options)
            desk.now = run.now
        else:
            run = job.make_run(stream=True, pace=self.pace, store=self.store, session_id=session_id,
                               **self.run_options)  # fmt: skip
        screen = RunScreen(job, run, store=self.store, decisions=decisions, view=view,
                           resumed=resumed or session_id is None, desk=desk)  # fmt: skip
        if self.run_screen is not None:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    @property
    def run_screen(self) -> RunScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, RunScreen):
                return screen
        return None

    # ------------------------------------------------------------------ actions

    async def action_quit(self) -> None:
        screen = self.run_screen
        if screen is None:
            self.exit(0)
            return
        if isinstance(self.screen, QuitDialog):
            return
        reasons = []
        if not screen.finished:
            counts = screen.run.counts()
            reasons.append(f"Generation is still running ({counts['done']} of {counts['total']} chunks done).")
            left = screen.desk.open_batches if screen.desk is not None else []
            if left:
                batches = "1 batch" if len(left) == 1 else f"{len(left)} batches"
                reasons.append(f"{batches} ({fmt.plural(sum(len(b.lines) for b in left), 'request')}) go on at the "
                               "provider: quitting only detaches, and reopening this session collects the "
                               "answers.")  # fmt: skip
        if screen.unsaved:
            verb = "was" if screen.unsaved == 1 else "were"
            reasons.append(f"{fmt.plural(screen.unsaved, 'card')} {verb} never exported.")
        if not reasons:
            await self.shutdown()
            return
        if screen.run.session_id and not screen.run.halted and not screen.job.settings.demo:
            reasons.append("Every finished chunk and every deletion and edit is saved in this session: run the same "
                           "input again to resume, or reopen it with Ctrl+O.")  # fmt: skip

        async def decide(choice: str | None) -> None:
            if choice == "quit":
                await self.shutdown()
            elif choice == "export":
                self.call_later(screen.action_export, True)  # export, then quit; once this dialog is off screen

        self.push_screen(QuitDialog(reasons), decide)

    async def shutdown(self) -> None:
        screen = self.run_screen
        if screen is not None:
            screen.run.cancel()  # the screen closes the client when it unmounts
        self.exit(0)

    def on_unmount(self) -> None:
        if self.store is not None:
            self.store.close()

    def action_help(self) -> None:
        """The keys of the screen in use (the start screen's own, or the run's)."""
        if isinstance(self.screen, (HelpScreen, QuitDialog)):
            return
        page = next((s.help_page() for s in reversed(self.screen_stack) if hasattr(s, "help_page")), None)
        self.push_screen(HelpScreen(*(page or ("mkflash-tui turns a text into an Anki deck.", APP_KEYS))))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Every key and what it does", self.action_help)
        yield SystemCommand("Sessions", "Reopen an earlier run in the review view and export it again",
                            self.action_sessions)  # fmt: skip
        run_screen = screen if isinstance(screen, RunScreen) else None
        if run_screen is None:
            return

        def in_review(method):
            def call() -> None:
                run_screen.action_view("review")
                run_screen.call_after_refresh(method)

            return call

        yield SystemCommand("Generate view", "Chunks and their calls, live (key 1)",
                            partial(run_screen.action_view, "generate"))  # fmt: skip
        yield SystemCommand("Review view", "The cards, as they arrive (key 2)",
                            partial(run_screen.action_view, "review"))  # fmt: skip
        yield SystemCommand("Export deck", "Write the cards to .apkg, .csv, .md or .json (key x)",
                            run_screen.action_export)  # fmt: skip
        yield SystemCommand("Cancel run", "Stop every call; finished cards stay (key c)", run_screen.action_cancel_run)
        yield SystemCommand("Retry failed chunks", "Send failed chunks again (key r)", run_screen.action_retry_failed)
        yield SystemCommand("Delete card", "Delete the highlighted card (key d)", in_review(run_screen.delete_card))
        yield SystemCommand("Undo delete", "Bring back the last deleted card (key u)",
                            in_review(run_screen.undo_delete))  # fmt: skip
        yield SystemCommand("Edit card", "Edit the highlighted card's front and back (key e)",
                            in_review(run_screen.edit_card))  # fmt: skip
        yield SystemCommand("Filter cards", "Show only cards containing some words (key /)",
                            in_review(lambda: run_screen.query_one("#review").action_filter()))  # fmt: skip


def remembered_values(settings: Settings) -> dict:
    """What the app keeps of a run started from its start screen (None: the default, so the key goes)."""
    preset = PRESETS[settings.preset]
    return {
        "provider": settings.preset,
        "model": settings.model if settings.online and settings.model != preset.model else None,
        "base_url": settings.base_url if settings.online and settings.base_url != preset.base_url else None,
        "cards": settings.cards,
        "instructions": settings.instructions or None,
        "language": settings.language,
        "style": settings.style if settings.style != DEFAULT_STYLE else None,
    }


def make_app(settings: Settings, **kwargs) -> MkflashApp:
    """The app for ``settings``; keyword arguments go to ``MkflashApp`` (pace, run_options)."""
    return MkflashApp(dataclasses.replace(settings), **kwargs)


def run_app(settings: Settings, **kwargs) -> int:
    """Run the app in this terminal; returns the exit code. ``kwargs`` go to ``make_app`` (a shelf)."""
    app = make_app(settings, **kwargs)
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)
