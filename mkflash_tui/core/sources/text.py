"""Plain text, reStructuredText and Markdown: headings from ``#`` lines, setext underlines and reStructuredText
adornments; front matter as metadata; Obsidian's links, embeds and callouts read as a person reads them."""

from __future__ import annotations

import re

from ..models import Block, Document
from .base import _drop_title_heading, clean_heading, heading_title

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


_INLINE = re.compile(r"[*_`]+")


def _strip_inline_markdown(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return _INLINE.sub("", text).strip()


# ---------------------------------------------------------------- HTML
