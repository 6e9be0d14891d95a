"""Card text → Anki field HTML, and back to the text a person reads.

Text taken from the document (quotes, context, headings, and the cards the offline generator builds from its
sentences) is escaped and never interpreted: ``_____`` stays a blank, ``__debug__`` stays ``__debug__``, "4. More
Control Flow Tools" stays a heading. Only what a model wrote is read as Markdown, by a CommonMark parser
(markdown-it-py's "js-default" preset: raw HTML shown as text, no images, which would make Anki fetch a URL, no
linkify), with line breaks kept. MathJax ``\\( … \\)`` / ``\\[ … \\]`` and Anki's cloze markers are protected
first, so Markdown cannot eat their backslashes, underscores or braces.

``shown_text`` is what Review shows for a field: the deck's HTML turned back into text, so the two always agree.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from html.parser import HTMLParser

_MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_CLOZE_MARK = re.compile(r"\{\{c\d+::|::[^}]*\}\}|\}\}")
_PLACEHOLDER = "\ue000{}\ue001"
_RESTORE = re.compile("\ue000(\\d+)\ue001")


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("js-default", {"breaks": True, "html": False, "linkify": False}).disable("image")


def render_field(text: str, *, markdown: bool = False) -> str:
    """``text`` as field HTML: escaped, and (``markdown``: a model wrote it) its Markdown rendered."""
    if not text:
        return ""
    text = text.replace("\x00", "").replace("\ue000", "").replace("\ue001", "")
    if not markdown:
        return html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>")
    if _PLAIN.fullmatch(text):
        # One line with nothing Markdown could read: the parser would give back the line, escaped (most cards,
        # at a hundredth of the cost; test_fidelity checks the two agree).
        return html.escape(text, quote=False)
    return _render_markdown(text)


# One line that Markdown reads as plain text: no character that opens any syntax (emphasis, code, links, HTML,
# entities, escapes, tables, strikethrough, math), no quote (the parser escapes it), no line break or tab, no
# leading or trailing space, and no opening that makes a block (a heading, a quote, a list item, a rule).
_PLAIN = re.compile(r"(?![ \d]*[.)]|[-+*=_>#]|\s)[^\\`*_\[\]<>#!|~&\"'\r\n\t\f\v$\x00-\x1f\x7f]*(?<!\s)")


def _render_markdown(text: str) -> str:
    protected: list[str] = []

    def protect(fragment: str) -> str:
        protected.append(fragment)
        return _PLACEHOLDER.format(len(protected) - 1)

    text = _MATH.sub(lambda m: protect(html.escape(m.group(0), quote=False)), text)
    text = _CLOZE_MARK.sub(lambda m: protect(html.escape(m.group(0), quote=False)), text)
    rendered = _markdown().render(text).strip()
    # One paragraph is the field itself: Anki's own fields carry no <p> around a sentence.
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        rendered = rendered[3:-4]
    rendered = rendered.replace("<br>\n", "<br>").replace("\n", "")
    return _RESTORE.sub(lambda m: protected[int(m.group(1))], rendered)


class _Text(HTMLParser):
    BLOCKS = frozenset({"p", "div", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "tr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n• ")
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def field_text(field_html: str) -> str:
    """A field's HTML as the text a person reads in Anki: tags gone, entities read, breaks and list items kept."""
    parser = _Text()
    parser.feed(field_html)
    parser.close()
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()


def shown_text(text: str, *, markdown: bool = False) -> str:
    """What Review shows for a field: exactly what the deck's field reads as."""
    return field_text(render_field(text, markdown=markdown))
