"""Read text from a file or stdin into a ``Document``, keeping headings (text, Markdown, HTML) or pages (PDF).

Every problem a user can cause raises ``SourceError`` with one readable sentence.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO

from .models import Block, Document
from .text import strip_controls

MAX_BYTES = 200 * 1024 * 1024


class SourceError(Exception):
    """The input cannot be read as text. ``str(error)`` is one sentence for the user."""


def read_source(name: str, *, stdin: BinaryIO | None = None) -> Document:
    """Read ``name`` (a path, or ``-`` for stdin) into a Document, or raise ``SourceError``.

    At most ``MAX_BYTES`` are read from any stream: a size the file system reports is not trusted.
    """
    if name.strip().lower().startswith(("http://", "https://")):
        from .fetch import fetch_url

        return fetch_url(name)
    if name == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = read_bounded(stream)
        return parse_bytes(data, name="-", stem="stdin", suffix="")
    path = check_readable(name)
    try:
        with open(path, "rb") as handle:
            data = read_bounded(handle)
    except OSError as exc:
        raise SourceError(f"{name}: cannot read it ({exc.strerror or exc}).") from None
    return parse_bytes(data, name=name, stem=path.stem or "deck", suffix=path.suffix.lower())


READ_PIECE = 2**20


def read_bounded(stream: BinaryIO, limit: int = MAX_BYTES) -> bytes:
    """At most ``limit + 1`` bytes of ``stream``, read a piece at a time: ``read(limit + 1)`` would set aside the
    whole limit (200 MB) for a file of any size."""
    pieces: list[bytes] = []
    size = 0
    while size <= limit:
        piece = stream.read(min(READ_PIECE, limit + 1 - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_readable(name: str) -> Path:
    """The path ``name`` names, if it is a regular file this process may read; otherwise raise ``SourceError``."""
    path = Path(name).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SourceError(_stat_problem(name, path, exc)) from None
    if stat.S_ISDIR(mode):
        raise SourceError(f"{name} is a directory; give a text, Markdown, HTML, PDF, EPUB or subtitle file.")
    if not stat.S_ISREG(mode):
        what = next((label for test, label in _NOT_REGULAR if test(mode)), "not a regular file")
        raise SourceError(
            f"{name} is {what}, not a file; to read a stream, pipe it in: mkflash-tui generate - < {name}."
        )
    if not os.access(path, os.R_OK):
        raise SourceError(f"{name}: permission denied; mkflash-tui cannot read it.")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SourceError(f"{name} is {size // 2**20} MB; mkflash-tui reads files up to {MAX_BYTES // 2**20} MB.")
    return path


def _stat_problem(name: str, path: Path, exc: OSError) -> str:
    """One sentence for a path that cannot even be looked at."""
    if exc.errno == errno.ELOOP:
        return f"{name} is a symbolic link loop (links that lead back to themselves); point it at a real file."
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return f"{name} is a broken symbolic link (what it points to, {os.readlink(path)}, does not exist)."
        return f"{name}: no such file."
    if exc.errno == errno.ENOTDIR:
        return f"{name}: no such file (a part of the path is a file, not a folder)."
    if exc.errno == errno.EACCES:
        return f"{name}: permission denied; mkflash-tui cannot read it."
    if exc.errno == errno.ENAMETOOLONG:
        return f"{name[:60]}…: the path is too long."
    return f"{name}: cannot read it ({(exc.strerror or str(exc)).lower()})."


def parse_bytes(data: bytes, *, name: str, stem: str, suffix: str) -> Document:
    """Turn raw bytes into a Document, choosing the reader by suffix or by content."""
    if len(data) > MAX_BYTES:
        raise SourceError(f"{name} is larger than {MAX_BYTES // 2**20} MB; mkflash-tui reads up to that.")
    if suffix == ".pdf" or data[:5] == b"%PDF-":
        doc = _read_pdf(data, name=name, stem=stem)
    elif suffix == ".epub" or (data[:2] == b"PK" and b"application/epub+zip" in data[:100]):
        doc = _read_epub(data, name=name, stem=stem)
    else:
        text = decode_text(data, name=name)
        head = text[:2000].lstrip().lower()
        xhtml = head.startswith("<?xml") and "<html" in head
        if suffix in (".html", ".htm", ".xhtml") or head.startswith(("<!doctype html", "<html")) or xhtml:
            doc = _read_html(text, name=name, stem=stem)
        elif suffix in (".srt", ".vtt") or head.startswith("webvtt") or _SRT_START.match(head):
            doc = _read_subtitles(text, name=name, stem=stem)
        else:
            kind = "markdown" if suffix in (".md", ".markdown", ".mdown", ".mkd") else "text"
            doc = _read_markdown(text, name=name, stem=stem, kind=kind)
    if not any(b.text.strip() for b in doc.blocks):
        where = "stdin" if name == "-" else name
        raise SourceError(f"{where} has no text to make cards from (it is empty or only whitespace).")
    return doc


def decode_text(data: bytes, *, name: str) -> str:
    """Decode bytes as UTF-8, or detect the charset (latin-1, cp1252, …); refuse binary data."""
    where = "stdin" if name == "-" else name
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _normalise_newlines(data.decode("utf-16"))
    sample = data[:65536]
    if b"\x00" in sample or _control_ratio(sample) > 0.1:
        raise SourceError(
            f"{where} looks like a binary file, not text; give a text, Markdown, HTML, PDF, EPUB or subtitle file."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _decode_legacy(data, where)
    return _normalise_newlines(text)


def _decode_legacy(data: bytes, where: str) -> str:
    """Text that is not UTF-8: a detected non-Latin charset (Cyrillic, Greek, …), else Windows-1252."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        detected = str(best)
        letters = [c for c in detected if c.isalpha()]
        non_latin = sum(1 for c in letters if ord(c) > 0x24F)
        # Detection is good at telling scripts apart but often confuses Western code pages with each other.
        if letters and non_latin / len(letters) > 0.3:
            return detected
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        if best is not None:
            return str(best)
        raise SourceError(f"{where} is not text in any encoding mkflash-tui recognises.") from None


def _control_ratio(sample: bytes) -> float:
    if not sample:
        return 0.0
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls / len(sample)


def _normalise_newlines(text: str) -> str:
    """Newlines as ``\\n``, and no escape sequences or control characters (a terminal log's colours, a stray
    BEL): they would reach the model, the deck and the screen."""
    return strip_controls(text)


# ---------------------------------------------------------------- Markdown and plain text

_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
# A reStructuredText (or plain-text) adornment: one punctuation character repeated, at least three times.
_ADORNMENT = re.compile(r"^([=\-~*^\"+#'.:_])\1{2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_COMMENT = re.compile(r"^\.\.(?:\s|$)(?![\w-]+::)")
_FRONT_MATTER = re.compile(r"\A(---|\+\+\+)[ \t]*\n(.*?)\n\1[ \t]*(?:\n|\Z)", re.S)
_WIKILINK = re.compile(r"(!?)\[\[([^\]|#\n]*)(?:#([^\]|\n]*))?(?:\|([^\]\n]*))?\]\]")
_CALLOUT = re.compile(r"^>\s*\[!(\w+)\][+-]?\s*(.*)$")


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """YAML (``---``) or TOML (``+++``) front matter at the top of a Markdown text: its simple ``key: value``
    pairs, and the text after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    separator = ":" if match.group(1) == "---" else "="
    for line in match.group(2).split("\n"):
        key, found, value = line.partition(separator)
        if found and key.strip() and not key.startswith((" ", "\t", "-", "#")):
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[match.end() :]


def _obsidian(line: str) -> str:
    """Obsidian syntax as text: ``[[Page|shown]]`` reads "shown", ``[[Page#Part]]`` "Page › Part", embeds go."""

    def link(match: re.Match) -> str:
        if match.group(1):
            return ""  # ![[embed.png]]: an embedded file, not text
        page, part, alias = match.group(2).strip(), (match.group(3) or "").strip(), match.group(4)
        if alias is not None and alias.strip():
            return alias.strip()
        return f"{page} › {part}" if page and part else page or part

    return _WIKILINK.sub(link, line) if "[[" in line else line


def _read_markdown(text: str, *, name: str, stem: str, kind: str) -> Document:
    headings: list[str] = []  # heading path, index = level - 1
    blocks: list[Block] = []
    title = ""
    para: list[str] = []
    in_fence = False
    in_callout = False
    styles: list[tuple[str, bool]] = []  # reStructuredText heading styles (character, overlined) in order of use
    overline = ""
    if kind == "markdown":
        meta, text = front_matter(text)
        title = " ".join(meta.get("title", "").split())

    def flush() -> None:
        if para:
            body = "\n".join(para).strip()
            if kind == "text" and _RST_COMMENT.match(body):
                body = ""  # a reStructuredText comment (".. text"), not a directive (".. name::")
            if body:
                blocks.append(Block(body, tuple(h for h in headings if h)))
            para.clear()

    seen: list[tuple[int, str, int]] = []  # (level, heading, blocks before it): what heads the whole document

    def set_heading(level: int, heading: str) -> None:
        flush()
        heading = clean_heading(_strip_inline_markdown(heading))
        del headings[level - 1 :]
        headings.extend([""] * (level - 1 - len(headings)))
        headings.append(heading)
        seen.append((level, heading, len(blocks)))

    lines = text.split("\n")
    for line in lines:
        underline = kind == "text" and not in_fence and len(para) == 1 and _ADORNMENT.match(line)
        if _FENCE.match(line) and not underline:  # "~~~" under a one-line paragraph underlines a title
            in_fence = not in_fence
            para.append(line)
            continue
        if in_fence:
            para.append(line)
            continue
        match = _ATX.match(line)
        if match:
            set_heading(len(match.group(1)), match.group(2))
            continue
        if kind == "markdown":
            if (
                _SETEXT.match(line)
                and len(para) == 1
                and para[0].strip()
                and not para[0].lstrip().startswith(("-", "*", ">"))
            ):
                heading = para.pop()
                set_heading(1 if line.lstrip().startswith("=") else 2, heading)
                continue
            callout = _CALLOUT.match(line)
            if callout:  # > [!note] Title: a callout reads as "Note: Title" and its lines as text
                flush()
                kind_word = callout.group(1).capitalize()
                line = f"{kind_word}: {callout.group(2)}" if callout.group(2).strip() else f"{kind_word}:"
                in_callout = True
            elif in_callout and line.startswith(">"):
                line = line[1:].lstrip()
            else:
                in_callout = False
            line = _obsidian(line)
        else:
            adornment = _ADORNMENT.match(line)
            if adornment:
                char = adornment.group(1)
                if not para:
                    overline = char  # the line above a title, or a separator: never text
                    continue
                if len(para) == 1 and para[0].strip() and len(line.strip()) >= min(len(para[0].strip()), 3):
                    style = (char, overline == char)
                    if style not in styles:
                        styles.append(style)
                    set_heading(min(6, styles.index(style) + 1), para.pop())
                    overline = ""
                    continue
            elif _SETEXT.match(line) and len(para) == 1 and para[0].strip():  # "Title" over "==" or "--"
                style = (line.strip()[0], False)
                if style not in styles:
                    styles.append(style)
                set_heading(min(6, styles.index(style) + 1), para.pop())
                continue
        if not line.strip():
            flush()
            if not para:
                overline = ""
        else:
            para.append(line)
    flush()
    title = title or heading_title(seen)
    return Document(_drop_title_heading(blocks, title), title=title or stem, name=name, stem=stem, kind=kind)


def heading_title(seen: list[tuple[int, str, int]]) -> str:
    """The heading that heads the whole document: the only one at the top level, before any text. A document
    of several top-level sections has no such heading (its first section is not its title)."""
    if not seen:
        return ""
    top = min(level for level, _, _ in seen)
    tops = [(heading, before) for level, heading, before in seen if level == top]
    if len(tops) == 1 and seen[0][0] == top and tops[0][1] == 0:
        return tops[0][0]
    return ""


_PERMALINK = re.compile(r"\s*[¶#🔗]+\s*$")
_SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.(?=\s)")


def clean_heading(text: str) -> str:
    """A heading as a person names it: no permalink sign (Sphinx's ¶, mdBook's #), and a section number without
    its trailing dot ("4.3. The range() Function¶" → "4.3 The range() Function")."""
    text = _PERMALINK.sub("", " ".join(text.split()))
    return _SECTION_NUMBER.sub(r"\1", text)


_SITE_SEPARATORS = re.compile(r"\s+(?:—|–|\||·|::|-)\s+")


def page_title(title: str) -> str:
    """An HTML ``<title>`` without the site's name after it ("Page — Site documentation" → "Page")."""
    parts = _SITE_SEPARATORS.split(title)
    return clean_heading(parts[0] if len(parts) > 1 and parts[0].strip() else title)


def _drop_title_heading(blocks: list[Block], title: str) -> tuple[Block, ...]:
    """A lone top heading that every block shares is the document's title, not a section: drop it from paths."""
    shared = title and blocks and all(b.headings[:1] == (title,) for b in blocks)
    if shared and any(len(b.headings) > 1 for b in blocks):
        return tuple(Block(b.text, b.headings[1:], b.page) for b in blocks)
    return tuple(blocks)


_INLINE = re.compile(r"[*_`]+")


def _strip_inline_markdown(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return _INLINE.sub("", text).strip()


# ---------------------------------------------------------------- HTML

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

_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
MAX_EPUB_ENTRY = 50 * 1024 * 1024  # an entry that unpacks to more than this is not a chapter (a zip bomb?)


def _read_epub(data: bytes, *, name: str, stem: str) -> Document:
    """An EPUB's chapters in reading (spine) order, their headings as sections; navigation and table-of-contents
    documents left out; title and author from the book's metadata."""
    import posixpath
    import zipfile
    from xml.etree import ElementTree

    where = "stdin" if name == "-" else name
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        names = set(book.namelist())
        if "META-INF/encryption.xml" in names and _drm(book.read("META-INF/encryption.xml")):
            raise SourceError(f"{where} is a DRM-protected EPUB; mkflash-tui can read only unprotected books.")
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        rootfile = container.find(f".//{_CONTAINER}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise KeyError("rootfile")
        opf_path = rootfile.get("full-path", "")
        package = ElementTree.fromstring(book.read(opf_path))
        base = posixpath.dirname(opf_path)
        title = " ".join((package.findtext(f".//{_DC}title") or "").split())
        author = " ".join((package.findtext(f".//{_DC}creator") or "").split())
        manifest = {
            item.get("id"): item for item in package.iter(f"{_OPF}item") if item.get("id") and item.get("href")
        }
        toc_id = (package.find(f"{_OPF}spine") or ElementTree.Element("spine")).get("toc")
        blocks: list[Block] = []
        for ref in package.iter(f"{_OPF}itemref"):
            item = manifest.get(ref.get("idref"))
            if item is None or ref.get("linear") == "no" or item.get("id") == toc_id:
                continue
            properties = (item.get("properties") or "").split()
            media = item.get("media-type") or ""
            if "nav" in properties or "html" not in media:
                continue  # the table of contents, or an image or stylesheet in the spine
            path = posixpath.normpath(posixpath.join(base, item.get("href", "").split("#")[0]))
            with book.open(path) as entry:  # read with a bound: the size the zip directory states is not trusted
                raw = entry.read(MAX_EPUB_ENTRY + 1)
            if len(raw) > MAX_EPUB_ENTRY:
                raise SourceError(f"{where}: the chapter {path} unpacks to more than 50 MB; is the book broken?")
            chapter, _, _ = html_blocks(decode_text(raw, name=name))
            blocks.extend(chapter)
    except SourceError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError, OSError, EOFError):
        raise SourceError(f"{where} is not a readable EPUB (a broken or incomplete book file).") from None
    if not any(b.text.strip() for b in blocks):
        raise SourceError(f"{where} has no text in its chapters (only images?).")
    title = title or stem
    if author:
        title = f"{title} — {author}" if title != stem else title
    return Document(tuple(blocks), title=title, name=name, stem=stem, kind="epub")


def _drm(encryption_xml: bytes) -> bool:
    """Whether an EPUB's encryption.xml encrypts more than fonts (font obfuscation is not DRM)."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(encryption_xml)
    except ElementTree.ParseError:
        return True
    for data in root.iter("{http://www.w3.org/2001/04/xmlenc#}EncryptedData"):
        method = data.find("{http://www.w3.org/2001/04/xmlenc#}EncryptionMethod")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        reference = data.find(".//{http://www.w3.org/2001/04/xmlenc#}CipherReference")
        uri = (reference.get("URI", "") if reference is not None else "").lower()
        if "obfuscation" in algorithm or "font" in algorithm or uri.endswith((".otf", ".ttf", ".woff", ".woff2")):
            continue
        return True
    return False


# ---------------------------------------------------------------- subtitles

_SRT_START = re.compile(r"\A\s*\d+\s*\n\s*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}\s*-->")
_CUE_TIME = re.compile(r"^\s*((?:\d{1,2}:)?\d{1,2}:\d{2})[,.]\d{1,3}\s*-->\s*(?:\d{1,2}:)?\d{1,2}:\d{2}[,.]\d{1,3}")
_CUE_TAG = re.compile(r"<[^>]{0,200}>|\{\\[^}]{0,100}\}")
SUBTITLE_BLOCK_SECONDS = 60  # cues are joined into paragraphs of about this long, each with its start time


def _read_subtitles(text: str, *, name: str, stem: str) -> Document:
    """SRT or WebVTT: cue numbers, timings and styling removed; cues joined into paragraphs of about a minute,
    each located by its start time ("at 12:34")."""
    cues: list[tuple[int, str]] = []
    start: int | None = None
    lines: list[str] = []
    skipping = False  # inside a WebVTT NOTE, STYLE or REGION block

    def end_cue() -> None:
        nonlocal start
        words = " ".join(" ".join(_CUE_TAG.sub("", line).split()) for line in lines).strip()
        if start is not None and words:
            cues.append((start, words))
        start = None
        lines.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            end_cue()
            skipping = False
            continue
        if skipping:
            continue
        timing = _CUE_TIME.match(line)
        if timing:
            end_cue()
            start = _seconds(timing.group(1))
            continue
        if start is None:
            if stripped.upper().startswith(("NOTE", "STYLE", "REGION")):
                skipping = True
            continue  # a cue number or id, the WEBVTT header
        lines.append(stripped)
    end_cue()
    blocks: list[Block] = []
    group: list[str] = []
    group_start = 0
    for at, words in cues:
        if group and ((at - group_start >= SUBTITLE_BLOCK_SECONDS and group[-1].rstrip().endswith((".", "?", "!")))
                      or at - group_start >= 3 * SUBTITLE_BLOCK_SECONDS):  # fmt: skip
            blocks.append(Block(" ".join(group), (f"at {_clock(group_start)}",)))
            group = []
        if not group:
            group_start = at
        if not group or group[-1] != words:  # a cue repeated by a rolling caption
            group.append(words)
    if group:
        blocks.append(Block(" ".join(group), (f"at {_clock(group_start)}",)))
    return Document(tuple(blocks), title=stem, name=name, stem=stem, kind="subtitles")


def _seconds(clock: str) -> int:
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def _clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# ---------------------------------------------------------------- PDF


def _read_pdf(data: bytes, *, name: str, stem: str) -> Document:
    where = "stdin" if name == "-" else name
    try:
        import logging

        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise SourceError(f"{where} is an encrypted PDF; decrypt it first.") from None
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = _normalise_newlines(page.extract_text() or "")
            for para in re.split(r"\n\s*\n", page_text):
                para = para.strip()
                if para:
                    blocks.append(Block(para, (), number))
        meta_title = ""
        try:
            meta_title = (reader.metadata.title or "") if reader.metadata else ""
        except Exception:
            meta_title = ""
    except SourceError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise SourceError(f"{where} is not a readable PDF ({type(exc).__name__}).") from None
    if not any(b.text.strip() for b in blocks):
        raise SourceError(f"{where} has no text layer (a scanned PDF?); run OCR on it first.")
    return Document(tuple(blocks), title=" ".join(meta_title.split()) or stem, name=name, stem=stem, kind="pdf")
