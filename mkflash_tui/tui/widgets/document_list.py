"""DocumentList: a shelf's documents, a line each (its state, its name, chunks done of all, cards, failures).

Like the chunk board it draws through the line API and is repainted by its screen's timer, only the lines whose
text changed: 50 documents cost one line's paint when one chunk finishes. The highlighted document's chunks are
the ones the board shows.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ... import format as fmt
from ...core.engine import Run


class DocumentList(ScrollView, can_focus=True):
    """One line per document; ↑ ↓ choose the document whose chunks the board shows, Enter goes to them."""

    COMPONENT_CLASSES = {
        "document-list--cursor",
        "document-list--done",
        "document-list--running",
        "document-list--failed",
        "document-list--dim",
    }

    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "move(-10)", show=False),
        Binding("pagedown", "move(10)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("enter", "choose", "Its chunks", show=False),
    ]

    DEFAULT_CSS = """
    DocumentList { background: $surface; }
    DocumentList > .document-list--cursor { background: $primary-muted; }
    DocumentList > .document-list--done { color: $success; }
    DocumentList > .document-list--running { color: $primary; text-style: bold; }
    DocumentList > .document-list--failed { color: $error; text-style: bold; }
    DocumentList > .document-list--dim { color: $foreground-muted; }
    """

    cursor: reactive[int] = reactive(0, layout=False)

    class Highlighted(Message):
        """Another document is highlighted: the board shows its chunks."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    class Chosen(Message):
        """Enter on a document: the user wants to move among its chunks."""

    def __init__(self, runs: list[Run], names: list[str], *, kept: Callable[[int], int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs = runs
        self.names = names  # what each document is called here: its subdeck title and file
        self.kept = kept  # the cards document ``i`` adds to the deck now
        self._drawn: dict[int, tuple] = {}

    def on_mount(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.runs))

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.runs))

    def tick(self) -> None:
        """Repaint the visible lines whose document changed since they were drawn (the screen's timer)."""
        if not self.is_mounted or not self.size.height:
            return
        top = round(self.scroll_offset.y)
        for index in range(top, min(len(self.runs), top + self.size.height)):
            if self._drawn.get(index) != self._signature(index):
                self.refresh_line(index - top)

    def _signature(self, index: int) -> tuple:
        counts = self.runs[index].counts()
        return (counts["done"], counts["failed"], counts["cancelled"], counts.get("running", 0), self.kept(index),
                self.runs[index].fatal, index == self.cursor and self.has_focus)  # fmt: skip

    def line_text(self, index: int) -> str:
        """The plain text of document ``index``'s line (for tests)."""
        return "".join(segment.text for segment in self._line(index, self.size.width or 100)).rstrip()

    def render_line(self, y: int) -> Strip:
        index = y + round(self.scroll_offset.y)
        width = self.size.width
        if index >= len(self.runs):
            return Strip.blank(width, self.rich_style)
        self._drawn[index] = self._signature(index)
        return Strip(self._line(index, width)).adjust_cell_length(width, self.rich_style)

    def _line(self, index: int, width: int) -> list[Segment]:
        run = self.runs[index]
        counts = run.counts()
        total, done, failed = counts["total"], counts["done"], counts["failed"] + counts["cancelled"]
        base = self.rich_style
        if index == self.cursor and self.has_focus:
            base = base + self.get_component_rich_style("document-list--cursor", partial=True)
        if run.fatal or (failed and done + failed == total):
            glyph, style = "✕", "failed"
        elif done == total:
            glyph, style = "●", "done"
        elif counts.get("running", 0) or done:
            glyph, style = "◐", "running"
        else:
            glyph, style = "○", "dim"
        state = base + self.get_component_rich_style(f"document-list--{style}", partial=True)
        dim = base + self.get_component_rich_style("document-list--dim", partial=True)
        right = f"{done}/{total} chunks · {fmt.plural(self.kept(index), 'card')}"
        if failed:
            right += f" · {counts['failed']} failed" if counts["failed"] else f" · {failed} cancelled"
        left = f"{index + 1:>3} "
        name_width = max(4, width - len(left) - 2 - len(right) - 2)
        name = fmt.fit(self.names[index], name_width).ljust(name_width)
        return [Segment(left, base + Style(bold=True)), Segment(glyph + " ", state), Segment(name, base),
                Segment("  " + right, state if failed else dim)]  # fmt: skip

    # ------------------------------------------------------------------ interaction

    def watch_cursor(self, old: int, new: int) -> None:
        top, height = round(self.scroll_offset.y), max(1, self.size.height)
        if new < top:
            self.scroll_to(0, new, animate=False)
        elif new >= top + height:
            self.scroll_to(0, new - height + 1, animate=False)
        self.refresh()
        self.post_message(self.Highlighted(new))

    def action_move(self, step: int) -> None:
        if self.runs:
            self.cursor = min(len(self.runs) - 1, max(0, self.cursor + step))

    def action_jump(self, index: int) -> None:
        if self.runs:
            self.cursor = index % len(self.runs)

    def action_choose(self) -> None:
        self.post_message(self.Chosen())

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and 0 <= offset.y + round(self.scroll_offset.y) < len(self.runs):
            self.cursor = offset.y + round(self.scroll_offset.y)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
