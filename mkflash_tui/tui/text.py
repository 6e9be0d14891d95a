"""The one door for untrusted text into widgets.

Text from files, pastes, models, paths and the store is data: it is shown literally and never read as Rich or
Textual markup. Textual reads a plain ``str`` as markup in ``Static``/``Label`` content, ``DataTable`` cells,
tree labels and notifications, so untrusted text reaches a widget only through here: ``plain()`` for content,
``LiteralTable`` for tables, ``LiteralDirectoryTree`` for file names, and the app's ``notify`` (markup off).
The tables and boards that draw their own segments fit their text through ``format.fit``.

Through every one of these doors text also loses terminal escape sequences and control characters
(``strip_controls``): Rich keeps them, and a terminal would obey them (colours, a cleared screen, a new title).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable, DirectoryTree

from ..core.text import strip_controls


def plain(text: object, style: str = "") -> Text:
    """``text`` as it is, in one style: what a widget shows is exactly these characters (the printable ones)."""
    return Text(strip_controls(str(text)), style=style)


def _literal(cell: Any) -> Any:
    return Text(strip_controls(cell), no_wrap=True, end="") if isinstance(cell, str) else cell


class LiteralTable(DataTable):
    """A DataTable whose ``str`` cells are shown as they are (a plain DataTable parses them as markup)."""

    def add_row(self, *cells: Any, **kwargs: Any):  # type: ignore[override]
        return super().add_row(*(_literal(c) for c in cells), **kwargs)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().update_cell(row_key, column_key, _literal(value), **kwargs)


class LiteralDirectoryTree(DirectoryTree):
    """A directory tree that shows file names as they are (``notes [draft].txt`` stays ``notes [draft].txt``)."""

    def process_label(self, label: Any) -> Text:
        return super().process_label(plain(label) if isinstance(label, str) else label)
