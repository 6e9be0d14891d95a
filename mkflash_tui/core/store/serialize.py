"""Cards and documents as the store keeps them (JSON), and a session's source for people."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..models import Block, Card, CardKind, Document


def cards_to_json(cards: Iterable[Card]) -> str:
    return json.dumps(
        [[c.id, c.ordinal, c.original_front, c.original_back, c.quote, str(c.kind), list(c.headings), c.page,
          list(c.flags), int(c.markdown)] for c in cards],
        ensure_ascii=False,
    )  # fmt: skip


def cards_from_json(text: str, chunk_id: str, index: int, *, markdown: bool = False) -> list[Card]:
    """Cards as ``cards_to_json`` kept them; ``markdown``: who wrote cards kept before that was recorded (a model,
    when the session's provider was online)."""
    out = []
    for row in json.loads(text):
        card_id, ordinal, front, back, quote, kind, headings, page = row[:8]
        card = Card(card_id, chunk_id, index, ordinal, front, back, quote, CardKind(kind), tuple(headings), page)
        card.flags = tuple(row[8]) if len(row) > 8 else ()
        card.markdown = bool(row[9]) if len(row) > 9 else markdown
        out.append(card)
    return out


def document_to_json(document: Document) -> str:
    blocks = [[b.text, list(b.headings), b.page] for b in document.blocks]
    meta = {"title": document.title, "name": document.name, "stem": document.stem, "kind": document.kind}
    return json.dumps({**meta, "blocks": blocks}, ensure_ascii=False)


def document_from_json(text: str) -> Document:
    data = json.loads(text)
    blocks = tuple(Block(t, tuple(h), p) for t, h, p in data["blocks"])
    return Document(blocks, data["title"], data["name"], data["stem"], data["kind"])


def _source_text(source_key: str | None) -> str:
    """A session's source key for people: "path:/a/b.md" → "/a/b.md", "name:lecture" → "--session lecture"."""
    if not source_key:
        return ""
    kind, _, value = source_key.partition(":")
    return {"path": value, "url": value, "name": f"--session {value}", "text": "pasted text or stdin",
            "demo": "the demo"}.get(kind, source_key)  # fmt: skip
