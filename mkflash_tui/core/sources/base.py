"""What every reader shares: the error it raises, reading within the size limit, decoding bytes as text, and
what a heading and a title look like to a person."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from ..models import Block
from ..text import strip_controls

MAX_BYTES = 200 * 1024 * 1024


class SourceError(Exception):
    """The input cannot be read as text. ``str(error)`` is one sentence for the user."""


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
