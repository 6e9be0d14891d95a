"""Read text from a file, stdin or a web address into a ``Document``, keeping headings (text, Markdown, HTML) or
pages (PDF): this is the dispatcher; each kind has its reader in this package, and no reader imports it back.

Every problem a user can cause raises ``SourceError`` with one readable sentence.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from ..models import Document
from .base import MAX_BYTES, SourceError, check_readable, decode_text, read_bounded
from .epub import _read_epub
from .html import _read_html, html_blocks
from .pdf import _read_pdf
from .subtitles import _SRT_START, _read_subtitles
from .text import _read_markdown, front_matter
from .web import fetch, is_url

__all__ = [
    "MAX_BYTES",
    "SourceError",
    "check_readable",
    "decode_text",
    "fetch_url",
    "front_matter",
    "html_blocks",
    "is_url",
    "parse_bytes",
    "read_source",
]  # fmt: skip


def fetch_url(url: str, **limits) -> Document:
    """The document at web address ``url`` (a page, or a PDF, EPUB, text or subtitle file). Raises SourceError."""
    body, stem, suffix = fetch(url, **limits)
    return parse_bytes(body, name=url.strip(), stem=stem, suffix=suffix)


def read_source(name: str, *, stdin: BinaryIO | None = None) -> Document:
    """Read ``name`` (a path, or ``-`` for stdin) into a Document, or raise ``SourceError``.

    At most ``MAX_BYTES`` are read from any stream: a size the file system reports is not trusted.
    """
    if is_url(name):
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
