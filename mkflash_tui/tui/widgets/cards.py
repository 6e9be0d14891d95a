"""CardTable (one row per card, keyed by the card's immutable id) and CardDetail (the highlighted card in full)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from ... import format as fmt
from ...core.export import effective_kind
from ...core.models import Card, CardKind
from ...core.quality import explain
from ..text import LiteralTable

FRONT_WIDTH = 34
BACK_WIDTH = 26


class CardTable(LiteralTable):
    """Cards in the order they were shown; rows are keyed by card id so edits and deletes find them."""

    DEFAULT_CSS = """
    CardTable { height: 1fr; }
    """
    # A list of cards, not a spreadsheet: Home and End go to the first and the last card (not the first and the
    # last column, as in a DataTable).
    BINDINGS = [
        Binding("home", "scroll_top", "First card", show=False),
        Binding("end", "scroll_bottom", "Last card", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.cards: dict[str, Card] = {}
        self.front_width, self.back_width = FRONT_WIDTH, BACK_WIDTH

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        self.add_column("#", key="chunk", width=4)
        self.add_column("type", key="type", width=5)
        self.add_column("front", key="front", width=self.front_width)
        self.add_column("back", key="back", width=self.back_width)

    def on_resize(self) -> None:
        """Front and back share the table's width (a wide terminal shows more of each card)."""
        widths = column_widths(self.size.width)
        if widths == (self.front_width, self.back_width) or self.size.width == 0:
            return
        self.front_width, self.back_width = widths
        keep, cards = self.current_id, list(self.cards.values())
        self.clear(columns=True)
        self._add_columns()
        self.show(cards, focus_id=keep)  # the cells again, cut to the new widths

    def _cells(self, card: Card) -> tuple[object, ...]:
        kind = "cloze" if effective_kind(card) is CardKind.CLOZE else "basic"
        front = fmt.fit(card.front, self.front_width - (2 if card.flags else 0)) + (" ✎" if card.edited else "")
        if card.flags:
            front = Text.assemble(("⚑ ", "bold yellow"), front)
        back = fmt.fit(card.back, self.back_width) if kind == "basic" else Text("—", style="dim")
        if card.stale:  # made of text the source no longer has: listed after the current cards
            return (Text("old", justify="right", style="dim"), Text("stale", style="bold yellow"), front, back)
        return (Text(str(card.chunk_index + 1), justify="right"), kind, front, back)

    def append(self, cards: list[Card]) -> None:
        """Add the cards not shown yet. Rows stay in document order: cards from an earlier chunk than the last
        row (chunks finish in any order) are sorted into place, and the cursor stays on the card it was on."""
        last = max((_order(c) for c in self.cards.values()), default=-1)
        out_of_order = False
        for card in cards:
            if card.id not in self.cards:
                self.cards[card.id] = card
                self.add_row(*self._cells(card), key=card.id)
                out_of_order = out_of_order or _order(card) < last
                last = max(last, _order(card))
        if out_of_order:
            # The cursor follows the card it is on, unless it is on the first row: there it stays on the first
            # row (someone who has not moved yet is reading from the top, not following the first arrival).
            current = self.current_id if self.cursor_row > 0 else None
            # A stable sort by chunk keeps each chunk's cards in their own order (they arrive together, in order),
            # so the table's order and ours are the same sort of the same rows.
            self.sort("chunk", key=lambda cell: int(cell.plain) if cell.plain.isdigit() else STALE_ORDER)
            self.cards = dict(sorted(self.cards.items(), key=lambda item: _order(item[1])))
            if current is not None:
                self.move_cursor(row=self.get_row_index(current), animate=False, scroll=False)

    def show(self, cards: list[Card], *, focus_id: str | None = None) -> None:
        """Replace every row, keeping the cursor on ``focus_id`` (or the current card, or the same row)."""
        # Until the user has been in the table, new cards arriving out of order leave the cursor on row 0.
        keep = focus_id or (self.current_id if self.has_focus else None)
        row = self.cursor_row if self.has_focus else 0
        self.clear()
        self.cards = {}
        self.append(cards)
        if keep in self.cards:
            self.move_cursor(row=self.get_row_index(keep), animate=False, scroll=True)
        elif self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1), animate=False)

    def remove(self, card_id: str) -> None:
        if card_id in self.cards:
            del self.cards[card_id]
            self.remove_row(card_id)

    def refresh_card(self, card: Card) -> None:
        if card.id in self.cards:
            for key, value in zip(("chunk", "type", "front", "back"), self._cells(card), strict=True):
                self.update_cell(card.id, key, value)

    @property
    def current_id(self) -> str | None:
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        return self.coordinate_to_cell_key((row, 0)).row_key.value

    @property
    def current(self) -> Card | None:
        card_id = self.current_id
        return self.cards.get(card_id) if card_id else None


STALE_ORDER = 10**9


def column_widths(table_width: int) -> tuple[int, int]:
    """(front, back) widths for a table ``table_width`` cells wide: what the number and type columns, the
    cells' padding and the scroll bar leave, about 3:2."""
    room = table_width - 4 - 5 - 8 - 2
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
        shown = (note, self.app.theme) if card is None else (card.id, card.front, card.back, self.app.theme)
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
        text.append("\n" + card.front + "\n\n")
        if card.back:
            text.append("Back" if kind is CardKind.BASIC else "Extra", style=f"bold {theme.primary}")
            text.append("\n" + card.back + "\n\n")
        if card.quote:
            text.append("Source\n", style=f"bold {theme.primary}")
            text.append(f"“{card.quote}”\n\n", style="italic")
        if card.flags:
            text.append("Flagged by the quality gate\n", style="bold yellow")
            for flag, why in zip(card.flags, explain(card.flags), strict=False):
                text.append(f"• {flag}: ", style="bold")
                text.append(why + "\n")
            text.append("\n")
        where = card.location or "the start of the document"
        if card.stale:
            text.append("Stale: ", style="bold yellow")
            text.append(f"made of text the source no longer has (it was in {where}). It stays in the deck, tagged "
                        "mkflash::stale, until you delete it (d).", style="dim")  # fmt: skip
        else:
            text.append(f"From {where} · chunk {card.chunk_index + 1}", style="dim")
        self.update(text)
