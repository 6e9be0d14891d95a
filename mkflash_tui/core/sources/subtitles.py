"""Subtitles (.srt, .vtt): cue numbers, timings and styling dropped, cues joined into paragraphs of about a
minute, each located by its start time."""

from __future__ import annotations

import re

from ..models import Block, Document

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
