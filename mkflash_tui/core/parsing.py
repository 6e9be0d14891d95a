"""Turn model output into cards, tolerantly: code fences, prose around the JSON, trailing commas, single quotes,
field-name variants and coercible types are all accepted. Anything else raises ``OutputError`` (and only that).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from .models import CardDraft, CardKind, Summary
from .text import strip_controls

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_CLOZE = re.compile(r"\{\{c(\d+)::(.+?)(?:::[^}]*)?\}\}", re.DOTALL)

_FRONT_KEYS = ("front", "question", "q", "prompt", "text", "cloze")
_BACK_KEYS = ("back", "answer", "a", "response", "extra", "back_extra")
_QUOTE_KEYS = ("quote", "source", "evidence", "excerpt", "citation")
_LIST_KEYS = ("cards", "flashcards", "items", "notes", "data")


RAW_EXCERPT_CHARS = 4000


def excerpt(raw: str, limit: int = RAW_EXCERPT_CHARS) -> str:
    """``raw`` if short; else its start and end with a note of what was left out (raw output kept for people)."""
    if len(raw) <= limit:
        return raw
    head, tail = raw[: limit * 3 // 4], raw[-(limit // 4) :]
    return f"{head}\n[… {len(raw) - len(head) - len(tail):,} characters left out …]\n{tail}"


class OutputError(ValueError):
    """Model output that cannot be read as cards. ``raw`` keeps (a bounded excerpt of) the output for people."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = excerpt(raw)


def extract_json(raw: str) -> Any:
    """Find and decode the JSON value in ``raw``, repairing common damage. Raises OutputError."""
    if not isinstance(raw, str) or not raw.strip():
        raise OutputError("the model returned an empty answer", raw if isinstance(raw, str) else "")
    candidates: list[str] = [m.group(1) for m in _FENCE.finditer(raw)]
    candidates.append(raw)
    for candidate in candidates:
        for text in _json_spans(candidate):
            value = _loads_repaired(text)
            if value is not None:
                return value
    raise OutputError("the model's answer is not valid JSON", raw)


def _json_spans(text: str) -> list[str]:
    """Substrings that start at a '{' or '[' and end at the matching bracket (or the text's end)."""
    spans = []
    stripped = text.strip()
    if stripped:
        spans.append(stripped)
    for opener in ("{", "["):
        start = text.find(opener)
        if start < 0:
            continue
        end = _matching_close(text, start)
        spans.append(text[start : end + 1] if end >= 0 else text[start:])
    return spans


def _matching_close(text: str, start: int) -> int:
    depth = 0
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch == '"':
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _loads_repaired(text: str) -> Any:
    attempts = [text, _TRAILING_COMMA.sub(r"\1", text)]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except (ValueError, RecursionError):
            pass
    # Single quotes, True/False/None: a Python literal is a common near-miss.
    pythonish = _TRAILING_COMMA.sub(r"\1", text)
    pythonish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", pythonish)))
    try:
        if len(pythonish) < 2_000_000:
            return ast.literal_eval(pythonish)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pass
    return None


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    lowered = {str(k).lower(): v for k, v in item.items()}
    for key in keys:
        value = lowered.get(key)
        if value is None:
            continue
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value if v is not None)
        elif isinstance(value, dict):
            continue
        text = strip_controls(str(value)).strip()  # model output: only printable text reaches a card
        if text:
            return text
    return ""


def has_valid_cloze(text: str) -> bool:
    """True if ``text`` has at least one non-empty ``{{cN::…}}`` deletion and balanced braces."""
    if text.count("{{") != text.count("}}"):
        return False
    return any(m.group(2).strip() for m in _CLOZE.finditer(text))


def parse_cards(raw: str) -> list[CardDraft]:
    """Cards from the model's raw output. An empty list is valid; unreadable output raises OutputError."""
    value = extract_json(raw)
    items = _card_items(value)
    if items is None:
        raise OutputError("the model's JSON has no list of cards", raw)
    return _drafts(items)


def salvage_cards(raw: str, limit: int) -> list[CardDraft]:
    """The first ``limit`` complete cards of an answer that was cut off part way (its JSON is unfinished)."""
    try:
        return parse_cards(raw)[:limit]
    except OutputError:
        pass
    start = raw.find("[")
    items: list[Any] = []
    while start >= 0 and len(items) < limit:
        opener = raw.find("{", start + 1)
        if opener < 0:
            break
        end = _matching_close(raw, opener)
        if end < 0:
            break
        value = _loads_repaired(raw[opener : end + 1])
        if isinstance(value, dict):
            items.append(value)
        start = end
    return _drafts(items)[:limit]


def _drafts(items: list[Any]) -> list[CardDraft]:
    drafts: list[CardDraft] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        front = _first(item, _FRONT_KEYS)
        back = _first(item, _BACK_KEYS)
        quote = _first(item, _QUOTE_KEYS)
        kind_text = _first(item, ("type", "kind", "card_type")).lower()
        if not front:
            continue
        is_cloze = kind_text == "cloze" or (not kind_text and "{{c" in front)
        if is_cloze and has_valid_cloze(front):
            drafts.append(CardDraft(front, back, quote, CardKind.CLOZE))
        elif back:
            # A basic card, or a broken cloze that still has an answer: keep it as a basic card.
            drafts.append(CardDraft(_strip_cloze(front), back, quote, CardKind.BASIC))
        # A broken cloze with no answer cannot become a useful card; it is dropped.
    return drafts


def _strip_cloze(text: str) -> str:
    return _CLOZE.sub(lambda m: m.group(2), text)


def _card_items(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        for key in _LIST_KEYS:
            if isinstance(lowered.get(key), list):
                return lowered[key]
        lists = [v for v in value.values() if isinstance(v, list)]
        holds_cards = any(isinstance(item, dict) for items in lists for item in items)
        if lowered.keys() & {*_FRONT_KEYS, *_BACK_KEYS} and not holds_cards:
            return [value]  # one card on its own (a small model's answer), even with empty fields
        if len(lists) == 1:
            return lists[0]
    return None


_DELIMITERS = re.compile(r"<<<\s*[A-Z]+|[A-Z]+\s*>>>|‹‹‹\s*[A-Z]*|[A-Z]*\s*›››|<<<|>>>")
_PLACEHOLDER_TITLES = {"title", "document title", "the title", "untitled", "summary", "document", "none", "n/a"}


def model_title(title: str) -> str:
    """A title a model gave, fit to name a deck: never our prompt's delimiters (a model that echoes its prompt
    wrote "<<<DOCUMENT Welcome to …"), no quotes or stray punctuation around it, never a placeholder word ("title",
    or a weak model's ":title"). Empty when nothing usable is left."""
    title = _DELIMITERS.sub(" ", title)
    title = " ".join(title.split()).strip(" \t:;,.-–—\"'“”‘’`*#")
    if title.casefold() in _PLACEHOLDER_TITLES or not re.search(r"[^\W\d_]", title):
        return ""
    return title[:200]


def parse_summary(raw: str, fallback_title: str) -> Summary:
    """Title and summary from the model's output; prose that is not JSON is taken as the summary itself."""
    try:
        value = extract_json(raw)
    except OutputError:
        text = " ".join(strip_controls(raw).split())
        if not text:
            raise
        return Summary(fallback_title, text[:1500])
    if isinstance(value, dict):
        title = model_title(_first(value, ("title", "name"))) or fallback_title
        summary = _first(value, ("summary", "description", "abstract"))
        return Summary(" ".join(title.split())[:200], " ".join(summary.split())[:1500])
    if isinstance(value, str) and value.strip():
        return Summary(fallback_title, strip_controls(value).strip()[:1500])
    raise OutputError("the summary is not a JSON object", raw)
