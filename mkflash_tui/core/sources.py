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

MAX_BYTES = 200 * 1024 * 1024


class SourceError(Exception):
    """The input cannot be read as text. ``str(error)`` is one sentence for the user."""


def read_source(name: str, *, stdin: BinaryIO | None = None) -> Document:
    """Read ``name`` (a path, or ``-`` for stdin) into a Document, or raise ``SourceError``.

    At most ``MAX_BYTES`` are read from any stream: a size the file system reports is not trusted.
    """
    if name == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read(MAX_BYTES + 1)
        return parse_bytes(data, name="-", stem="stdin", suffix="")
    path = check_readable(name)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"{name}: cannot read it ({exc.strerror or exc}).") from None
    return parse_bytes(data, name=name, stem=path.stem or "deck", suffix=path.suffix.lower())


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
        raise SourceError(f"{name} is a directory; give a text, Markdown, HTML or PDF file.")
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
    else:
        text = decode_text(data, name=name)
        head = text[:2000].lstrip().lower()
        if suffix in (".html", ".htm", ".xhtml") or head.startswith(("<!doctype html", "<html")):
            doc = _read_html(text, name=name, stem=stem)
        else:
            kind = "markdown" if suffix in (".md", ".markdown", ".mdown") else "text"
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
        raise SourceError(f"{where} looks like a binary file, not text; give a text, Markdown, HTML or PDF file.")
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
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------- Markdown and plain text

_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _read_markdown(text: str, *, name: str, stem: str, kind: str) -> Document:
    headings: list[str] = []  # heading path, index = level - 1
    blocks: list[Block] = []
    title = ""
    para: list[str] = []
    in_fence = False

    def flush() -> None:
        if para:
            body = "\n".join(para).strip()
            if body:
                blocks.append(Block(body, tuple(h for h in headings if h)))
            para.clear()

    def set_heading(level: int, heading: str) -> None:
        nonlocal title
        flush()
        heading = _strip_inline_markdown(heading)
        del headings[level - 1 :]
        headings.extend([""] * (level - 1 - len(headings)))
        headings.append(heading)
        if not title:
            title = heading

    lines = text.split("\n")
    for line in lines:
        if _FENCE.match(line):
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
        if (
            _SETEXT.match(line)
            and len(para) == 1
            and para[0].strip()
            and not para[0].lstrip().startswith(("-", "*", ">"))
        ):
            heading = para.pop()
            set_heading(1 if line.lstrip().startswith("=") else 2, heading)
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return Document(_drop_title_heading(blocks, title), title=title or stem, name=name, stem=stem, kind=kind)


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
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head"}


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.headings: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._heading_level = 0
        self._buffer: list[str] = []

    def _flush(self) -> None:
        text = re.sub(r"[ \t\f\v]+", " ", "".join(self._buffer))
        text = "\n".join(line.strip() for line in text.split("\n") if line.strip())
        self._buffer.clear()
        if not text:
            return
        if self._heading_level:
            level = self._heading_level
            del self.headings[level - 1 :]
            self.headings.extend([""] * (level - 1 - len(self.headings)))
            self.headings.append(text.replace("\n", " "))
        else:
            self.blocks.append(Block(text, tuple(h for h in self.headings if h)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if tag in _HEADING_TAGS:
            self._flush()
            self._heading_level = _HEADING_TAGS[tag]
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
        if tag in _HEADING_TAGS:
            self._flush()
            self._heading_level = 0
        elif tag in _BLOCK_TAGS and tag not in ("br", "li", "tr", "td", "th"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self._buffer.append(data.replace("\n", " ") if not self._heading_level else data)

    def close(self) -> None:
        super().close()
        self._flush()


def _read_html(text: str, *, name: str, stem: str) -> Document:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    title = " ".join(parser.title.split())
    if not title:
        first = next((b for b in parser.blocks if b.headings), None)
        title = first.headings[0] if first else (parser.headings[0] if parser.headings else stem)
    return Document(_drop_title_heading(parser.blocks, title), title=title, name=name, stem=stem, kind="html")


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
