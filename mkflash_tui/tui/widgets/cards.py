"""CardTable (one row per card, keyed by the card's immutable id) and CardDetail (the highlighted card in full).

CardTable draws its rows itself through the line API, like the chunk board. A DataTable renders every visible
cell again through Rich after any row is added or removed (its caches are keyed by an update counter): 25 ms a
frame at 160x48, on every arrival of cards and every ``d``. Here a frame is a few hundred segments.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from ... import format as fmt
from ...core.deck import effective_kind
from ...core.fields import shown_text
from ...core.models import Card, CardKind
from ...core.quality import explain
from ...core.text import strip_controls

FRONT_WIDTH = 34
BACK_WIDTH = 26
NUMBER_WIDTH, TYPE_WIDTH = 4, 5
STALE_ORDER = 10**9


class CardTable(ScrollView, can_focus=True):
    """Cards in document order (stale ones last), with a row cursor; the header stays on the first line.

    The rows are card ids; what is drawn is read from the cards at paint time, in cells of the current widths,
    so a resize or an edit costs one repaint and never rebuilds anything.
    """

    COMPONENT_CLASSES = {
        "card-table--header",
        "card-table--even-row",
        "card-table--cursor",
        "card-table--dim",
        "card-table--flag",
    }

    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        # A list of cards, not a spreadsheet: Home and End go to the first and the last card.
        Binding("home,ctrl+home", "jump(0)", "First card", show=False),
        Binding("end,ctrl+end", "jump(-1)", "Last card", show=False),
    ]

    DEFAULT_CSS = """
    CardTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        &:focus { background-tint: $foreground 5%; }
        & > .card-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .card-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .card-table--even-row { background: $surface-darken-1 40%; }
        & > .card-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .card-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .card-table--dim { color: $foreground-muted; }
        & > .card-table--flag { color: $warning; text-style: bold; }
    }
    """

    cursor_row: reactive[int] = reactive(0)

    class Highlighted(Message):
        """The cursor moved to another row (``card_id`` is None when the table is empty)."""

        def __init__(self, table: CardTable, card_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.card_id = card_id

        @property
        def control(self) -> CardTable:
            return self.table

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cards: dict[str, Card] = {}  # in the order shown
        self._ids: list[str] = []  # row -> card id
        self._orders: list[int] = []  # row -> its card's place in the document (sorted)
        self._rows: dict[str, int] | None = {}  # card id -> row, rebuilt when rows move
        self.front_width, self.back_width = FRONT_WIDTH, BACK_WIDTH
        self._style_cache: dict[str, Style] = {}

    # ------------------------------------------------------------------ rows

    @property
    def row_count(self) -> int:
        return len(self._ids)

    def get_row_index(self, card_id: str) -> int:
        if self._rows is None:
            self._rows = {card_id: row for row, card_id in enumerate(self._ids)}
        return self._rows[card_id]

    def append(self, cards: list[Card]) -> None:
        """Add the cards not shown yet, each in its place in document order (chunks finish in any order; a
        chunk's cards arrive together and keep their own order). The cursor stays on the card it was on, unless
        it is on the first row: someone who has not moved yet is reading from the top, not following a card."""
        current = self.current_id if self.cursor_row > 0 else None
        added = False
        for card in cards:
            if card.id in self.cards:
                continue
            order = _order(card)
            row = bisect_right(self._orders, order)
            self._ids.insert(row, card.id)
            self._orders.insert(row, order)
            self.cards[card.id] = card
            if row < len(self._ids) - 1:
                self._rows = None  # rows below moved: rebuilt when next asked for
            elif self._rows is not None:
                self._rows[card.id] = row
            added = True
        if not added:
            return
        if list(self.cards) != self._ids:  # keep ``cards`` in the order shown
            self.cards = {card_id: self.cards[card_id] for card_id in self._ids}
        self._rows_changed()
        if current is not None:
            self.move_cursor(row=self.get_row_index(current), scroll=False)
        elif self.cursor_row == 0:
            self._highlight()  # the first row may be another card now

    def show(self, cards: list[Card], *, focus_id: str | None = None) -> None:
        """Replace every row, keeping the cursor on ``focus_id`` (or the current card, or the same row)."""
        # Until the user has been in the table, new cards arriving out of order leave the cursor on row 0.
        keep = focus_id or (self.current_id if self.has_focus else None)
        row = self.cursor_row if self.has_focus else 0
        self.clear()
        self.append(cards)
        if keep in self.cards:
            self.move_cursor(row=self.get_row_index(keep))
        elif self._ids:
            self.move_cursor(row=min(row, len(self._ids) - 1))
        self._highlight()

    def clear(self) -> None:
        self.cards, self._ids, self._orders, self._rows = {}, [], [], {}
        self._rows_changed()

    def remove(self, card_id: str) -> None:
        if card_id not in self.cards:
            return
        row = self.get_row_index(card_id)
        del self.cards[card_id], self._ids[row], self._orders[row]
        self._rows = None
        self._rows_changed()
        if self.cursor_row >= len(self._ids) and self._ids:
            self.cursor_row = len(self._ids) - 1
        self._highlight()

    def refresh_card(self, card: Card) -> None:
        if card.id in self.cards:
            self.cards[card.id] = card
            self.refresh()

    def _rows_changed(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._ids) + 1)
        self.refresh()

    @property
    def current_id(self) -> str | None:
        if not self._ids:
            return None
        return self._ids[min(self.cursor_row, len(self._ids) - 1)]

    @property
    def current(self) -> Card | None:
        card_id = self.current_id
        return self.cards.get(card_id) if card_id else None

    # ------------------------------------------------------------------ the cursor

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        self.cursor_row = max(0, min(row, len(self._ids) - 1))
        if scroll:
            self._scroll_to_cursor()

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh()
        self._highlight()

    def _highlight(self) -> None:
        self.post_message(self.Highlighted(self, self.current_id))

    def _scroll_to_cursor(self) -> None:
        rows = max(1, self.scrollable_content_region.height - 1)  # the header takes a line
        top = round(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + rows:
            self.scroll_to(y=self.cursor_row - rows + 1, animate=False, immediate=True)

    def action_move(self, step: int) -> None:
        if self._ids:
            self.move_cursor(row=self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        if self._ids:
            page = max(1, self.scrollable_content_region.height - 2)
            self.move_cursor(row=self.cursor_row + direction * page)

    def action_jump(self, row: int) -> None:
        if self._ids:
            self.move_cursor(row=row % len(self._ids))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        row = round(self.scroll_offset.y) + offset.y - 1
        if row < len(self._ids):
            self.move_cursor(row=row, scroll=False)

    def on_resize(self) -> None:
        """Front and back share the table's width (a wide terminal shows more of each card)."""
        if self.size.width:
            self.front_width, self.back_width = column_widths(self.size.width)
        self._rows_changed()
        self.call_after_refresh(self._scroll_to_cursor)  # a shorter table still shows the card being read

    # ------------------------------------------------------------------ drawing

    def _style(self, name: str) -> Style:
        """A component class's style; a row's own style under the text styles (dim, flag), so they keep the
        row's background."""
        style = self._style_cache.get(name)
        if style is None:
            if not name:
                style = self.rich_style
            else:
                style = self.get_component_rich_style(name, partial=name in ("card-table--dim", "card-table--flag"))
            self._style_cache[name] = style
        return style

    def notify_style_update(self) -> None:
        self._style_cache.clear()
        super().notify_style_update()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            base = self._style("card-table--header")
            heads = (("#", NUMBER_WIDTH, True), ("type", TYPE_WIDTH, False), ("front", self.front_width, False),
                     ("back", self.back_width, False))  # fmt: skip
            columns = [[(fmt_cell(name, width, right=right), "")] for name, width, right in heads]
        else:
            row = round(self.scroll_offset.y) + y - 1
            if row >= len(self._ids):
                return Strip.blank(width, self._style(""))
            if row == self.cursor_row:
                base = self._style("card-table--cursor")
            else:
                base = self._style("card-table--even-row" if row % 2 == 0 else "")
            columns = self._columns(self.cards[self._ids[row]])
        gap = Segment(" ", base)
        segments: list[Segment] = []
        for pieces in columns:
            segments.append(gap)
            segments.extend(Segment(text, base + self._style(style) if style else base) for text, style in pieces)
            segments.append(gap)
        return Strip(segments).adjust_cell_length(width, base)

    def _columns(self, card: Card) -> list[list[tuple[str, str]]]:
        """Each column's pieces, (text, component class or ""), together exactly the column's width."""
        cloze = effective_kind(card) is CardKind.CLOZE
        if card.stale:  # made of text the source no longer has: listed after the current cards
            number = [(fmt_cell("old", NUMBER_WIDTH, right=True), "card-table--dim")]
            kind = [(fmt_cell("stale", TYPE_WIDTH), "card-table--flag")]
        else:
            number = [(fmt_cell(str(card.chunk_index + 1), NUMBER_WIDTH, right=True), "")]
            kind = [(fmt_cell("cloze" if cloze else "basic", TYPE_WIDTH), "")]
        edited = " ✎" if card.edited else ""
        shown_front = as_shown(card.front, card.markdown)
        if card.flags or card.known:
            front = [("⚑ ", "card-table--flag"), (fmt_cell(shown_front, self.front_width - 2, suffix=edited), "")]
        else:
            front = [(fmt_cell(shown_front, self.front_width, suffix=edited), "")]
        if cloze:
            back = [(fmt_cell("—", self.back_width), "card-table--dim")]
        else:
            back = [(fmt_cell(as_shown(card.back, card.markdown), self.back_width), "")]
        return [number, kind, front, back]


@lru_cache(maxsize=65536)
def as_shown(text: str, markdown: bool) -> str:
    """A card's text as its note shows it in Anki (a model's Markdown rendered, the document's words as they are)."""
    return shown_text(text, markdown=markdown)


def fmt_cell(text: str, width: int, *, right: bool = False, suffix: str = "") -> str:
    """``text`` on one line in exactly ``width`` cells: cut with an ellipsis (wide characters count twice),
    then ``suffix``, padded with spaces."""
    text = fmt.fit(text, 10 * max(width, 1))
    room = max(0, width - cell_len(suffix))
    if cell_len(text) > room:
        text = set_cell_size(text, max(0, room - 1)) + ("…" if room else "")
    text += suffix
    text = set_cell_size(text, width) if cell_len(text) > width else text
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


def column_widths(table_width: int) -> tuple[int, int]:
    """(front, back) widths for a table ``table_width`` cells wide: what the number and type columns, the
    cells' padding and the scroll bar leave, about 3:2."""
    room = table_width - NUMBER_WIDTH - TYPE_WIDTH - 8 - 2
    front = max(FRONT_WIDTH - 10, room * 3 // 5)
    return front, max(BACK_WIDTH - 10, room - front)


def _order(card: Card) -> int:
    return STALE_ORDER if card.stale else card.chunk_index


class CardDetail(Static):
    """The highlighted card: front, back, the sentence it came from and where that sentence is."""

    DEFAULT_CSS = """
    CardDetail { padding: 0 1; }
    """

    _shown: tuple = ()

    def show(self, card: Card | None, *, note: str = "") -> None:
        # An update relayouts the screen (the pane sizes to its text): skip it when nothing shown would change.
        shown = (note, self.app.theme) if card is None else (card.id, card.front, card.back, card.known,
                                                             self.app.theme)  # fmt: skip
        if shown == self._shown:
            return
        self._shown = shown
        if card is None:
            self.update(Text(note or "No card yet: cards appear here as chunks finish.", style="dim"))
            return
        theme = self.app.current_theme
        kind = effective_kind(card)
        text = Text()
        text.append("Front" if kind is CardKind.BASIC else "Cloze", style=f"bold {theme.primary}")
        if card.edited:
            text.append("  (edited)", style="italic dim")
        text.append("\n" + strip_controls(as_shown(card.front, card.markdown)) + "\n\n")
        if card.back:
            text.append("Back" if kind is CardKind.BASIC else "Extra", style=f"bold {theme.primary}")
            text.append("\n" + strip_controls(as_shown(card.back, card.markdown)) + "\n\n")
        if card.quote:
            text.append("Source\n", style=f"bold {theme.primary}")
            text.append(f"“{strip_controls(as_shown(card.quote, False))}”\n\n", style="italic")
        if card.flags:
            text.append("Flagged by the quality gate\n", style="bold yellow")
            for flag, why in zip(card.flags, explain(card.flags), strict=False):
                text.append(f"• {flag}: ", style="bold")
                text.append(why + "\n")
            text.append("\n")
        if card.known:
            text.append("In your collection already (in-collection)\n", style="bold yellow")
            text.append(strip_controls(card.known) + "\n\n")
        where = strip_controls(card.location) or "the start of the document"
        if card.stale:
            text.append("Stale: ", style="bold yellow")
            text.append(f"made of text the source no longer has (it was in {where}). It stays in the deck, tagged "
                        "mkflash::stale, until you delete it (d).", style="dim")  # fmt: skip
        else:
            text.append(f"From {where} · chunk {card.chunk_index + 1}", style="dim")
        self.update(text)
