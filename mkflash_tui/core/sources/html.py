"""HTML as it is found: only the main content (``<main>``, ``role=main``, else ``<article>``, else the page), page
furniture left out, ``<pre>`` kept, ``<h1>``–``<h6>`` as sections."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ..models import Block, Document
from .base import _drop_title_heading, clean_heading, heading_title, page_title

_BLOCK_TAGS = {
    "p", "div", "section", "article", "li", "ul", "ol", "table", "tr", "td", "th", "br", "blockquote",
    "pre", "header", "footer", "main", "aside", "nav", "dd", "dt", "dl", "figure", "figcaption", "hr",
}  # fmt: skip
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head", "math"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Page furniture, not text: whole elements left out wherever they are.
_CHROME_TAGS = {"nav", "aside", "form", "button", "select", "dialog", "menu", "iframe", "object", "canvas"}
_SITE_TAGS = {"header", "footer"}  # left out outside the main content (an article's own header stays)
_CHROME_ROLES = {"navigation", "banner", "contentinfo", "search", "dialog", "alertdialog", "menu", "menubar",
                 "complementary", "toolbar", "tablist"}  # fmt: skip
_CHROME_WORDS = {
    "nav", "navbar", "navigation", "menu", "menubar", "sidebar", "toc", "breadcrumb", "breadcrumbs", "cookie",
    "cookies", "consent", "banner", "theme", "themes", "share", "sharing", "social", "pagination", "pager", "skip",
    "footer", "masthead", "topbar", "toolbar", "popup", "modal", "related", "newsletter", "subscribe", "advert",
    "ads", "sponsor", "search", "help", "hidden", "sr", "visually",
}  # fmt: skip
_MAIN = re.compile(r"<main[\s>]|<[a-z]+[^>]*\brole\s*=\s*[\"']?main\b|<article[\s>]", re.I)


def _is_chrome(tag: str, attrs: list[tuple[str, str | None]], in_main: bool) -> bool:
    if tag in _CHROME_TAGS or (tag in _SITE_TAGS and not in_main):
        return True
    if tag in ("html", "body", "main", "article"):
        return False  # their classes describe the page's state ("sidebar-visible"), not furniture
    values = dict(attrs)
    if "hidden" in values or values.get("aria-hidden") == "true":
        return True
    if (values.get("role") or "").lower() in _CHROME_ROLES:
        return True
    words = set(re.split(r"[\s_\-]+", f"{values.get('class') or ''} {values.get('id') or ''}".lower()))
    return bool(words & _CHROME_WORDS)


class _HTMLText(HTMLParser):
    """Text of an HTML page as blocks under their headings: scripts, styles and page furniture (navigation,
    menus, sidebars, theme pickers, cookie banners, site headers and footers) left out; ``<pre>`` keeps its
    lines. With ``main_only``, only what is inside ``<main>`` (or ``role=main``, or else ``<article>``) counts."""

    def __init__(self, *, main_only: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.headings: list[str] = []
        self.title = ""
        self.seen: list[tuple[int, str, int]] = []  # (level, heading, blocks before it)
        self.main_only = main_only
        self._main: tuple[str, int] | None = None  # the main element's tag and nesting depth while inside it
        self._main_done = False
        self._chrome: tuple[str, int] | None = None  # the skipped element's tag and nesting depth
        self._skip = 0
        self._pre = 0
        self._in_title = False
        self._heading_level = 0
        self._buffer: list[str] = []

    @property
    def _reading(self) -> bool:
        if self._skip or self._chrome is not None:
            return False
        return not self.main_only or self._main is not None

    def _flush(self) -> None:
        raw = "".join(self._buffer)
        self._buffer.clear()
        if self._pre:
            text = "\n".join(line.rstrip() for line in raw.strip("\n").split("\n"))
        else:
            text = re.sub(r"[ \t\f\v]+", " ", raw)
            text = "\n".join(line.strip() for line in text.split("\n") if line.strip())
        if not text.strip():
            return
        if self._heading_level:
            level = self._heading_level
            heading = clean_heading(text)
            del self.headings[level - 1 :]
            self.headings.extend([""] * (level - 1 - len(self.headings)))
            self.headings.append(heading)
            self.seen.append((level, heading, len(self.blocks)))
        else:
            self.blocks.append(Block(text, tuple(h for h in self.headings if h)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if self._chrome is not None:
            if tag == self._chrome[0]:
                self._chrome = (tag, self._chrome[1] + 1)
            return
        if self._main is not None and tag == self._main[0]:
            self._main = (tag, self._main[1] + 1)
        elif self.main_only and self._main is None and not self._main_done and _opens_main(tag, attrs):
            self._main = (tag, 1)
            return
        if self._skip or (tag in _VOID_TAGS and tag not in ("br", "hr")):
            return
        if _is_chrome(tag, attrs, self._main is not None or not self.main_only):
            if tag not in _VOID_TAGS:
                self._flush()
                self._chrome = (tag, 1)
            return
        if tag in _HEADING_TAGS:
            self._flush()
            self._heading_level = _HEADING_TAGS[tag]
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _BLOCK_TAGS:
            if tag in ("br", "li", "tr"):
                self._buffer.append("\n")
            else:
                self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if self._chrome is not None:
            if tag == self._chrome[0]:
                depth = self._chrome[1] - 1
                self._chrome = (tag, depth) if depth else None
            return
        if self._main is not None and tag == self._main[0]:
            depth = self._main[1] - 1
            if not depth:
                self._flush()
                self._main, self._main_done = None, True
                return
            self._main = (tag, depth)
        if tag in _HEADING_TAGS:
            self._flush()
            self._heading_level = 0
        elif tag == "pre":
            self._flush()
            self._pre = max(0, self._pre - 1)
        elif tag in _BLOCK_TAGS and tag not in ("br", "li", "tr", "td", "th"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._reading:
            keep_lines = self._pre or self._heading_level
            self._buffer.append(data if keep_lines else data.replace("\n", " "))

    def close(self) -> None:
        super().close()
        self._flush()


def _opens_main(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    return tag in ("main", "article") or (dict(attrs).get("role") or "").lower() == "main"


def html_blocks(text: str) -> tuple[list[Block], str, str]:
    """The blocks of an HTML page's main content, its ``<title>`` and the first heading of that content."""
    parser = _HTMLText(main_only=bool(_MAIN.search(text)))
    parser.feed(text)
    parser.close()
    if parser.main_only and not any(b.text.strip() for b in parser.blocks):
        parser = _HTMLText()  # the "main" element was empty: the whole page, less its furniture
        parser.feed(text)
        parser.close()
    return parser.blocks, " ".join(parser.title.split()), heading_title(parser.seen)


def _read_html(text: str, *, name: str, stem: str) -> Document:
    """A page's title: its one top-level heading when it heads the content, else its ``<title>`` (without the
    site's name), else none (the model's summary names it)."""
    blocks, title_tag, heading = html_blocks(text)
    title = heading or page_title(title_tag)
    return Document(_drop_title_heading(blocks, title), title=title or stem, name=name, stem=stem, kind="html")


# ---------------------------------------------------------------- EPUB
