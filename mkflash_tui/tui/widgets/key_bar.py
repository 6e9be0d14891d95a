"""KeyBar: the keys of the focused screen, in one line drawn by one widget.

Textual's Footer rebuilds a widget per key on every focus change; switching views moves the focus, and that
rebuild was a third of the work of a switch. KeyBar draws the same line as text, so a change of keys costs one
repaint of one line. Keys are listed in binding order (the screen's own first); a click runs the key.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widget import Widget


class KeyBar(Widget):
    """The shown bindings of the screen's focus chain, plus the command palette's key at the right."""

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description"}

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        .key-bar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        .key-bar--description { color: $footer-description-foreground; }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._spans: list[tuple[int, int, int, Binding, bool]] = []  # (line, start, end, binding, enabled)
        self._keys: list[tuple[Binding, bool]] | None = None  # what shown() found, until the keys change

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda screen: self._keys_changed())

    def _keys_changed(self) -> None:
        # Working out the screen's active bindings takes a millisecond; do it once per change, not per frame.
        self._keys = None
        self._fit_height()
        self.refresh()

    def on_resize(self) -> None:
        self._fit_height()

    def _fit_height(self) -> None:
        """Two lines when the keys do not fit in one (an 80-column terminal in Review): no key is ever hidden."""
        width = sum(len(self.app.get_key_display(b)) + len(b.description) + 3 for b, _ in self.shown())
        height = 1 if width <= self.size.width or not self.size.width else 2
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def shown(self) -> list[tuple[Binding, bool]]:
        """(binding, enabled) for every key to show, one per action."""
        if self._keys is None:
            self._keys = self._find_keys()
        return self._keys

    def _find_keys(self) -> list[tuple[Binding, bool]]:
        seen: set[str] = set()
        keys: list[tuple[Binding, bool]] = []
        palette = self.app.COMMAND_PALETTE_BINDING
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen and binding.key != palette:
                seen.add(binding.action)
                keys.append((binding, enabled))
        return keys

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        lines = [Text(no_wrap=True, overflow="ellipsis")]
        self._spans = []
        for binding, enabled in self.shown():
            dim = Style() if enabled else Style(dim=True)
            item = Text.assemble((f" {self.app.get_key_display(binding)} ", key_style + dim),
                                 (f"{binding.description} ", description_style + dim))  # fmt: skip
            if lines[-1].cell_len + item.cell_len > self.size.width and lines[-1].cell_len and len(lines) < 2:
                lines.append(Text(no_wrap=True, overflow="ellipsis"))
            start = lines[-1].cell_len
            lines[-1].append_text(item)
            self._spans.append((len(lines) - 1, start, lines[-1].cell_len, binding, enabled))
        text = lines[-1]
        if self.app.ENABLE_COMMAND_PALETTE and self.size.width > text.cell_len + 14:
            palette = Text.assemble((" ^p ", key_style), ("palette ", description_style))
            text.append(" " * (self.size.width - text.cell_len - palette.cell_len))
            text.append_text(palette)
        return Text("\n").join(lines)

    def on_click(self, event: events.Click) -> None:
        for line, start, end, binding, enabled in self._spans:
            if line == event.y and start <= event.x < end:
                if enabled:
                    self.app.simulate_key(binding.key.split(",")[0])
                else:
                    self.app.bell()
                return
        if event.y == self.size.height - 1 and event.x >= self.size.width - 12 and self.app.ENABLE_COMMAND_PALETTE:
            self.app.action_command_palette()
