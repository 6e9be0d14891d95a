"""Modal dialogs: export, edit a card, make one again, quit, one chunk in full, and help."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Static, TextArea

from ... import format as fmt
from ...core.ankiconnect import PushReport
from ...core.deck import ExportError, ExportFormat, ExportOptions
from ...core.engine import Run
from ...core.export import export_cards, export_groups
from ...core.models import Card, ChunkState
from ...core.store import JobInfo, SessionInfo
from ...job import known_stamps
from ..text import LiteralTable, plain
from .base import DismissOnce

if TYPE_CHECKING:
    from ...config import Settings
    from ...core.deck import NoteStamps
    from ...core.store import Store
    from ...job import Job


class Tickbox(Checkbox):
    """A Checkbox that says its state in characters too: with NO_COLOR set, Textual's box looks the same ticked
    and not (only its colour changes), so it shows [x] and [ ]."""

    @property
    def _button(self):  # type: ignore[override]
        if not os.environ.get("NO_COLOR"):
            return super()._button
        from textual.content import Content

        return Content("[x]" if self.value else "[ ]")


class DeckHolder(Protocol):
    """What the export dialog needs of the screen that opens it (the run screen): the job, the cards as they are
    now, and where to say that they were written or sent."""

    job: Job
    store: Store | None
    finished: bool  # generation is over

    @property
    def output(self) -> Path: ...  # the deck's file unless the user names another

    def cards(self) -> list[Card]: ...

    def export_options(self, *, force: bool | None = None) -> ExportOptions: ...

    def deck_groups(self, options: ExportOptions) -> list[tuple[list[Card], ExportOptions]]:
        """The cards as they are now, in groups of their own options: one document's ``[(cards, options)]``, or a
        shelf's, a group per document in its subdeck of ``options.deck``."""
        ...

    def mark_exported(self, path: Path, stamps: NoteStamps | None = None) -> None: ...

    def mark_sent(self) -> None: ...


class ExportDialog(DismissOnce, ModalScreen[None]):
    """Deck name and path (with defaults), options, Enter writes. An existing file needs a second Enter."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "quit_app", "Quit", show=False),  # reaches here only when no text field has the focus
    ]

    def __init__(self, owner: DeckHolder, *, then_quit: bool = False) -> None:
        super().__init__()
        self.owner = owner
        self.then_quit = then_quit  # opened by the quit dialog's "Export first": quit once the deck is written
        self.job = owner.job
        self._confirm_overwrite: Path | None = None
        self._done = False
        self._sending = False

    def compose(self) -> ComposeResult:
        options = self.owner.export_options()
        with Vertical(id="dialog", classes="dialog"):
            yield Label("Export deck, then quit" if self.then_quit else "Export deck", classes="dialog-title")
            yield Label("Deck name")
            yield Input(options.deck, id="deck", compact=True)
            yield Label("File (.apkg, .csv, .md or .json)")
            yield Input(str(self.owner.output), id="path", compact=True)
            with Horizontal(classes="options"):
                yield Tickbox("reversed cards too", options.reverse, id="reverse", compact=True)
                yield Tickbox("subdeck per chapter", options.subdecks, id="subdecks", compact=True)
            yield Static(self._summary(), id="export-message")
            with Horizontal(classes="buttons"):
                yield Button("Send to Anki", id="send-anki", tooltip="to a running Anki, through AnkiConnect")
                yield Button("Export", variant="primary", id="export")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def action_quit_app(self) -> None:
        """q after the deck is written: close the dialog and quit as q does on the run screen."""
        if self._done:
            self.dismiss()
            self.app.call_later(self.app.action_quit)
        self.query_one("#path", Input).cursor_position = len(self.query_one("#path", Input).value)

    def _summary(self) -> Text:
        cards = self.owner.cards()
        text = Text(f"{fmt.plural(len(cards), 'card')} to write.")
        if not self.owner.finished:
            text.append(" Generation is still running; cards made later are not included.", style="italic")
        return text

    def _message(self, text: str | Text, style: str = "") -> None:
        self.query_one("#export-message", Static).update(Text(text, style=style) if isinstance(text, str) else text)

    @on(Input.Changed)
    def _changed(self) -> None:
        if self._confirm_overwrite is not None:
            self._confirm_overwrite = None
            self._message(self._summary())

    @on(Input.Submitted)
    @on(Button.Pressed, "#export")
    async def _export(self) -> None:
        if self._done:
            self.dismiss()
            return
        deck = self.query_one("#deck", Input).value.strip()
        raw_path = self.query_one("#path", Input).value.strip()
        if not deck:
            self._message("Give the deck a name.", "bold red")
            return
        if not raw_path:
            self._message("Give a file name for the deck.", "bold red")
            return
        path = Path(raw_path).expanduser()
        cards = self.owner.cards()
        if not cards:
            self._message("There are no cards to export yet.", "bold red")
            return
        force = False
        if path.exists() and not path.is_dir():
            if self._confirm_overwrite != path:
                self._confirm_overwrite = path
                self._message(f"{path} already exists. Press Enter again to overwrite it.", "bold yellow")
                return
            force = True
        options = dataclasses.replace(
            self.owner.export_options(force=force),
            deck=deck,
            reverse=self.query_one("#reverse", Checkbox).value,
            subdecks=self.query_one("#subdecks", Checkbox).value,
            format=ExportFormat.for_path(path, self.job.settings.format if path == self.owner.output else None),
        )
        groups = self.owner.deck_groups(options)
        stamps = known_stamps(self.owner.store, cards)  # read here: the store belongs to this thread
        try:
            if len(groups) == 1:
                result = await asyncio.to_thread(export_cards, groups[0][0], path, groups[0][1], stamps=stamps)
            else:
                result = await asyncio.to_thread(export_groups, groups, path, deck=deck, stamps=stamps)
        except (ExportError, OSError) as exc:
            self._confirm_overwrite = None
            self._message(str(exc) if isinstance(exc, ExportError) else f"Cannot write {path}: {exc.strerror}.",
                          "bold red")  # fmt: skip
            return
        self.owner.mark_exported(result.path, result.stamps)
        self._done = True
        if self.then_quit:
            self.dismiss()
            self.app.call_later(self.app.action_quit)  # asks again only if generation is still running
            return
        where = result.path.resolve()
        message = f"Wrote {fmt.plural(result.notes, 'note')} ({fmt.plural(result.cards, 'card')}) to {where}"
        if self.app.is_web:  # mkflash-tui serve: the deck goes to the browser too, as a download
            self.app.deliver_binary(result.path, save_filename=result.path.name)
            message += "; your browser downloads it"
        self._message(Text.assemble((message, "bold green"), "\nEnter or Esc closes; q quits."))
        done = self.query_one("#export", Button)
        done.label = "Done"
        self.query_one("#close", Button).display = False  # one way out: Done (Enter) or Esc
        done.focus()  # keys now close the dialog (or quit the app), not edit the file name just used
        self.app.notify(message, title="Exported")


    @on(Button.Pressed, "#send-anki")
    def _send_to_anki(self) -> None:
        cards = self.owner.cards()
        if not cards:
            self._message("There are no cards to send yet.", "bold red")
            return
        deck = self.query_one("#deck", Input).value.strip() or self.owner.export_options().deck
        options = dataclasses.replace(self.owner.export_options(), deck=deck,
                                      reverse=self.query_one("#reverse", Checkbox).value,
                                      subdecks=self.query_one("#subdecks", Checkbox).value)  # fmt: skip
        if self._sending:
            return  # a second press while the first push runs (disabling the button would move the focus)
        self._sending = True
        self._message(f"Sending {fmt.plural(len(cards), 'card')} to Anki at {self.job.settings.anki_url}…")
        groups = self.owner.deck_groups(options)
        self.run_worker(self._push(groups), group="anki", exclusive=True, exit_on_error=False)

    async def _push(self, groups: list[tuple[list[Card], ExportOptions]]) -> None:
        settings = self.job.settings

        def send():
            import contextlib

            from ...core.ankiconnect import AnkiConnectError
            from ...core.store import StoreError, open_store
            from ...job import send_to_anki

            try:  # a connection of this thread's own: the app's belongs to the event loop's thread
                store = open_store(settings.data_dir)
            except StoreError:
                store = None
            with contextlib.closing(store) if store is not None else contextlib.nullcontext():
                total = PushReport()
                try:
                    for cards, options in groups:  # a shelf: each document to its own subdeck
                        report = send_to_anki(cards, options, store, url=settings.anki_url, key=settings.anki_key)
                        for name in ("added", "updated", "unchanged", "stale", "skipped"):
                            setattr(total, name, getattr(total, name) + getattr(report, name))
                except AnkiConnectError as exc:
                    return str(exc)
                return total

        try:
            result = await asyncio.to_thread(send)
        finally:
            self._sending = False
        if isinstance(result, str):
            self._message(Text.assemble((result, "bold red"), "\nThe cards stay here; x or Send tries again."))
            self.app.notify(f"{result} The cards stay in this session.", title="Anki", severity="error",
                            timeout=10)  # fmt: skip
            return
        self.owner.mark_sent()
        message = f"Sent to Anki at {settings.anki_url}: {result.describe()}."
        self._message(Text(message, style="bold green"))
        self.app.notify(message, title="Anki", timeout=6)


class EditCardDialog(DismissOnce, ModalScreen[tuple[str, str] | None]):
    """Front and back in two text areas; Ctrl+S saves, Esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, card: Card) -> None:
        super().__init__()
        self.card = card

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog edit"):
            yield Label(f"Edit card {self.card.chunk_index + 1}.{self.card.ordinal + 1}", classes="dialog-title")
            yield Label("Front" if self.card.kind == "basic" else "Cloze text ({{c1::answer}})")
            yield TextArea(self.card.front, id="front", soft_wrap=True, show_line_numbers=False)
            yield Label("Back" if self.card.kind == "basic" else "Extra")
            yield TextArea(self.card.back, id="back", soft_wrap=True, show_line_numbers=False)
            with Horizontal(classes="buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="save")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#front", TextArea).focus()

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        front = self.query_one("#front", TextArea).text
        if not front.strip():
            self.notify("A card needs a front.", severity="error")
            return
        self.dismiss((front, self.query_one("#back", TextArea).text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class RemakeDialog(DismissOnce, ModalScreen[str | None]):
    """Make a card (or a chunk's cards) again: an optional note to the model and the call's price on one line.
    Enter sends; a call priced at a cent or more (or at an unknown price) asks for a second Enter."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, card: Card, price: str, *, takes_note: bool, confirm: bool) -> None:
        super().__init__()
        self.title_text = title
        self.card = card
        self.price = price
        self.takes_note = takes_note
        self.confirm = confirm  # a second Enter is needed: the call costs a cent or more, or its price is unknown

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(plain(self.title_text), classes="dialog-title")
            yield Static(plain(" ".join(self.card.front.split())[:300]), classes="hint")
            if self.takes_note:
                yield Input(placeholder="a note to the model (optional): simpler, more on X, as a cloze, in German",
                            id="note")  # fmt: skip
            else:
                yield Static(plain("The offline generator takes no note: it makes the chunk again and puts its "
                                   "next best cards in place, where the chunk has others."))  # fmt: skip
            yield Static(plain(self.price), id="remake-price")
            with Horizontal(classes="buttons"):
                yield Button("Make again (Enter)", variant="primary", id="make")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        if self.takes_note:
            self.query_one("#note", Input).focus()
        else:
            self.query_one("#make", Button).focus()

    @on(Input.Submitted, "#note")
    @on(Button.Pressed, "#make")
    def action_make(self) -> None:
        if self.confirm:
            self.confirm = False
            self.query_one("#remake-price", Static).update(plain(f"{self.price}. Enter again to send."))
            self.query_one("#make", Button).label = "Send (Enter)"
            return
        self.dismiss(self.query_one("#note", Input).value.strip() if self.takes_note else "")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclasses.dataclass(frozen=True, slots=True)
class ServerFix:
    api_key: str | None  # None: keep the key in use
    base_url: str | None
    model: str


class FixServerDialog(DismissOnce, ModalScreen[ServerFix | None]):
    """The server refused the run: correct the key, the address or the model and go on in this session."""

    BINDINGS = [Binding("escape", "cancel", "Not now")]

    FIELDS = {"key": "#fix-key", "base_url": "#fix-base-url", "model": "#fix-model"}
    HINTS = {
        "key": "Type the right key in the API key field below",
        "base_url": "Correct the server's address in the Base URL field below",
        "model": "Correct the model's name (or the address) below",
    }

    def __init__(self, settings: Settings, reason: str, field: str = "") -> None:
        super().__init__()
        self.settings = settings
        self.reason = reason
        self.field = field if field in self.FIELDS else "key"

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(id="dialog", classes="dialog"):
            yield Label("The server refused the run", classes="dialog-title")
            yield Static(plain(self.reason, "bold red"))
            yield Static(f"{self.HINTS[self.field]} and go on: the cards made so far and your edits stay in this "
                         "session, and only unfinished chunks are sent.", classes="hint")  # fmt: skip
            with Grid(classes="fields"):
                yield Label("API key")
                yield Input(password=True, compact=True, id="fix-key",
                            placeholder=f"unchanged (from {s.key_source})" if s.key_source else "none")  # fmt: skip
                yield Label("Base URL")
                yield Input(s.base_url or "", placeholder="https://api.openai.com/v1", compact=True,
                            id="fix-base-url")  # fmt: skip
                yield Label("Model")
                yield Input(s.model, compact=True, id="fix-model")
            with Horizontal(classes="buttons"):
                yield Button("Go on (Enter)", variant="primary", id="go-on")
                yield Button("Not now (Esc)", id="not-now")

    def on_mount(self) -> None:
        self.query_one(self.FIELDS[self.field], Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#go-on")
    def _go_on(self) -> None:
        model = self.query_one("#fix-model", Input).value.strip()
        if not model:
            self.query_one("#fix-model", Input).focus()
            return
        key = self.query_one("#fix-key", Input).value.strip() or None
        self.dismiss(ServerFix(key, self.query_one("#fix-base-url", Input).value.strip() or None, model))

    @on(Button.Pressed, "#not-now")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceDialog(DismissOnce, ModalScreen):
    """A question answered by a button or its key: both dismiss with ``answer(choice)``, the button's id."""

    def answer(self, choice: str) -> object:
        return choice

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.answer(event.button.id or ""))

    def action_choose(self, choice: str) -> None:
        self.dismiss(self.answer(choice))


class QuitDialog(ChoiceDialog):
    """Asked when quitting would stop a run or leave cards unexported. Dismisses with quit, export or stay."""

    BINDINGS = [
        Binding("q,y", "choose('quit')", "Quit"),
        Binding("x", "choose('export')", "Export first"),
        Binding("escape,n", "choose('stay')", "Stay"),
    ]

    def __init__(self, reasons: list[str]) -> None:
        super().__init__()
        self.reasons = reasons

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label("Quit mkflash-tui?", classes="dialog-title")
            yield Static(plain("\n".join(self.reasons)))
            with Horizontal(classes="buttons"):
                yield Button("Quit (q)", variant="error", id="quit")
                yield Button("Export first (x)", variant="primary", id="export")
                yield Button("Stay (Esc)", id="stay")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()


class BrokenStoreDialog(ChoiceDialog):
    """The session store cannot be read: move it aside and start a new one, or go on without keeping sessions.
    Dismisses with "move" or "without"."""

    BINDINGS = [Binding("m", "choose('move')", "Move it aside"), Binding("escape,w", "choose('without')", "Without")]

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label("The session store cannot be used", classes="dialog-title")
            yield Static(plain(self.problem))
            yield Static("Move it aside keeps the broken file (as .broken) and starts a new, empty store; without it, "
                         "this run's cards are not kept after you quit.", classes="hint")  # fmt: skip
            with Horizontal(classes="buttons"):
                yield Button("Move it aside (m)", variant="primary", id="move")
                yield Button("Go on without it (Esc)", id="without")

    def on_mount(self) -> None:
        self.query_one("#move", Button).focus()


class ReadingDialog(DismissOnce, ModalScreen[None]):
    """A wide, scrolling page of text to read and close. Subclasses set ``title_text`` and define
    ``body() -> Text``, which is called when the page is composed (so it sees the run and the app as they are)."""

    title_text = ""
    body: Callable[[], Text]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog wide"):
            if self.title_text:
                yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Static(self.body())
            yield Label("Esc closes", classes="hint")


class ChunkDialog(ReadingDialog):
    """One chunk in full: state, reason, its text and the model's raw output."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, run: Run, chunk_id: str) -> None:
        super().__init__()
        self.run = run
        self.chunk_id = chunk_id

    def body(self) -> Text:
        status = self.run.status[self.chunk_id]
        chunk = status.chunk
        text = Text()
        text.append(f"Chunk {chunk.index + 1} of {len(self.run.chunks)}", style="bold")
        text.append(f" · {status.state.value}")
        if status.attempt > 1:
            text.append(f" · attempt {status.attempt}")
        text.append(f" · {chunk.tokens} tokens · {fmt.plural(status.cards_wanted, 'card')} wanted\n")
        if chunk.location:
            text.append(f"From {chunk.location}\n", style="dim")
        if status.reason:
            style = "bold red" if status.state is ChunkState.FAILED else "yellow"
            text.append(f"\n{status.reason}\n", style=style)
        if status.cards:
            text.append("\nCards\n", style="bold")
            for card in status.cards:
                text.append(f"• {card.front}", style="")
                text.append(f" — {card.back}\n" if card.back else "\n", style="dim")
        text.append("\nText\n", style="bold")
        text.append(chunk.body.strip() + "\n")
        if status.raw_output:
            text.append("\nRaw model output\n", style="bold")
            text.append(status.raw_output[:20_000] + "\n", style="dim")
        return text


HelpRows = list  # of Binding, or (key, description)


class HelpScreen(ReadingDialog):
    """The keys of the screen it was opened from, read from the bindings themselves so they cannot drift from
    what the keys do. The opener hands over its sections: this dialog knows no screen."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]
    title_text = "Help"

    def __init__(self, intro: str, sections: list[tuple[str, HelpRows]]) -> None:
        super().__init__()
        self.intro = intro
        self.sections = sections

    def body(self):
        from rich.console import Group
        from rich.table import Table

        parts: list = [Text(self.intro, style="bold")]
        for title, rows in self.sections:
            parts.append(Text(f"\n{title}", style="bold underline"))
            # Two columns: the keys never wrap, the descriptions wrap beside them (it fits 80 columns).
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold", no_wrap=True, max_width=24)
            table.add_column(ratio=1)
            for row in rows:
                if isinstance(row, tuple):
                    key, description = row
                else:
                    key = self.app.get_key_display(row)
                    description = row.tooltip or row.description or row.action
                table.add_row(plain(key), plain(description))
            parts.append(table)
        return Group(*parts)


class ResumeDialog(ChoiceDialog):
    """An earlier session over the same text and settings exists: resume it (no repeated calls) or start fresh.
    Dismisses with True to resume."""

    BINDINGS = [
        Binding("enter,r", "choose('resume')", "Resume"),
        Binding("f", "choose('fresh')", "Start fresh"),
    ]

    def __init__(self, session: SessionInfo, changes: str = "") -> None:
        super().__init__()
        self.session = session
        self.changes = changes  # how the source differs from the session's last run, if it does

    def compose(self) -> ComposeResult:
        s = self.session
        when = datetime.datetime.fromtimestamp(s.updated).strftime("%Y-%m-%d %H:%M")
        changed = f"\n\nSince then the text has changed: {self.changes}." if self.changes else ""
        with Vertical(id="dialog", classes="dialog"):
            yield Label("Resume the earlier session?", classes="dialog-title")
            yield Static(
                plain(
                    f"{s.title} was last run on {when}: {s.chunks_done} of {s.chunks_total} chunks done, "
                    f"{fmt.plural(s.cards, 'card')}{', exported' if s.exported_to else ', never exported'}.{changed}"
                    "\n\nResuming reuses every unchanged chunk (no calls, no cost), keeps your deletions and edits, "
                    "and keeps the cards of removed text as stale. Starting fresh asks the model again."
                )
            )
            with Horizontal(classes="buttons"):
                yield Button("Resume (Enter)", variant="primary", id="resume")
                yield Button("Start fresh (f)", id="fresh")

    def answer(self, choice: str) -> bool:
        return choice == "resume"


class SessionsScreen(DismissOnce, ModalScreen[str | None]):
    """Earlier sessions, newest first, each with where it came from: Enter reopens one in the review view, Delete
    removes one (a second press confirms). It is handed the way to remove: it knows no store."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("delete,backspace", "remove", "Remove", tooltip="remove the highlighted session (press twice)"),
    ]

    def __init__(self, sessions: list[SessionInfo], remove: Callable[[str], bool] | None = None,
                 jobs: list[JobInfo] = ()) -> None:  # fmt: skip
        super().__init__()
        self.sessions = sessions
        self.jobs = list(jobs)  # runs over many documents: listed first, reopened whole
        self.remove_session = remove
        self._armed: str | None = None  # the session a first Delete picked

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog wide"):
            yield Label("Sessions", classes="dialog-title")
            if not self.sessions:
                yield Static("No sessions yet: every run is kept here, with its cards and your edits.")
            table = LiteralTable(cursor_type="row", id="sessions")
            table.add_columns("date", "chunks", "cards", "exported", "title", "source")
            by_id = {s.id: s for s in self.sessions}
            for job in self.jobs:
                members = [by_id[sid] for sid in job.sessions if sid in by_id]
                if not members:
                    continue
                date = datetime.datetime.fromtimestamp(job.updated).strftime("%Y-%m-%d %H:%M")
                done, total = sum(m.chunks_done for m in members), sum(m.chunks_total for m in members)
                exported = "yes" if all(m.exported_to for m in members) else "no"
                table.add_row(date, f"{done}/{total}", str(sum(m.cards for m in members)), exported,
                              f"{job.deck} ({fmt.plural(len(members), 'document')})",
                              _short_source(", ".join(job.inputs)), key=job.id)  # fmt: skip
            for s in self.sessions:
                date = datetime.datetime.fromtimestamp(s.updated).strftime("%Y-%m-%d %H:%M")
                table.add_row(date, f"{s.chunks_done}/{s.chunks_total}", str(s.cards),
                              "yes" if s.exported_to else "no", s.title, _short_source(s.source_text),
                              key=s.id)  # fmt: skip
            yield table
            yield Label("Enter reopens it in Review (no calls for finished chunks) · Delete removes it · Esc goes "
                        "back", classes="hint", id="sessions-hint")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    def action_remove(self) -> None:
        table = self.query_one(DataTable)
        if self.remove_session is None or not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        hint = self.query_one("#sessions-hint", Label)
        if self._armed != key.value:
            self._armed = key.value
            title = next((s.title for s in self.sessions if s.id == key.value), "")
            title = next((f"{j.deck} and its documents' sessions" for j in self.jobs if j.id == key.value), title)
            hint.update(plain(f"Delete again removes “{title}” and its cards for good · Esc goes back"))
            return
        self._armed = None
        if self.remove_session(str(key.value)):
            job = next((j for j in self.jobs if j.id == key.value), None)
            for gone in [key.value, *(job.sessions if job else ())]:
                if gone in table.rows:
                    table.remove_row(gone)
            self.sessions = [s for s in self.sessions if s.id != key.value and not (job and s.id in job.sessions)]
            self.jobs = [j for j in self.jobs if j.id != key.value]
        hint.update("Enter reopens it in Review · Delete removes it · Esc goes back")


def _short_source(source: str, width: int = 40) -> str:
    """A session's source in a column: the home folder as ~, and a long path cut at its start (its end, the
    file's name, is what tells sessions apart)."""
    home = str(Path.home())
    if source.startswith(home + "/"):
        source = "~" + source[len(home) :]
    return source if len(source) <= width else "…" + source[-(width - 1) :]


class DocumentPicker(DismissOnce, ModalScreen[int | None]):
    """A shelf's documents, with their cards: Enter shows one (its chunks on the board, its cards in Review);
    the first line shows all of them again. Dismisses with the document's index, -1 for all, None for Esc."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, names: list[str], cards: list[int], current: int | None) -> None:
        super().__init__()
        self.names = names
        self.counts = cards
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog wide"):
            yield Label("Show one document", classes="dialog-title")
            table = LiteralTable(cursor_type="row", id="documents-picked")
            table.add_columns("", "document", "cards")
            table.add_row("", "All documents", str(sum(self.counts)), key="-1")
            for index, (name, count) in enumerate(zip(self.names, self.counts, strict=True)):
                table.add_row(str(index + 1), name, str(count), key=str(index))
            yield table
            yield Label("Enter shows it · Esc goes back", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.focus()
        if self.current is not None:
            table.move_cursor(row=self.current + 1)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(int(event.row_key.value or -1))
