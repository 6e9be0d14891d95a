"""The text formats: Anki's CSV (its own Basic and Cloze note types), Markdown (MkFlashcards/Mochi form) and JSON,
each as the bytes to write."""

from __future__ import annotations

import csv
import io
import json

from .deck import (
    ANKI_BASIC_NOTETYPE,
    ANKI_CLOZE_NOTETYPE,
    ExportOptions,
    _basic_front_back,
    _context,
    card_tags,
    clean_deck_name,
    effective_kind,
    note_guid,
    note_tags,
    subdeck_for,
)
from .fields import render_field
from .models import Card, CardKind


def csv_rows(cards: list[Card], options: ExportOptions) -> tuple[list[str], list[list[str]]]:
    deck_name = clean_deck_name(options.deck)
    tags = card_tags(options)
    header = [
        "#separator:Comma",
        "#html:true",
        "#guid column:1",
        "#notetype column:2",
        "#deck column:3",
        "#tags column:6",
    ]
    rows = []
    for card in cards:
        deck = subdeck_for(card, deck_name, options.subdecks)
        if effective_kind(card) == CardKind.CLOZE:
            notetype, first, second = ANKI_CLOZE_NOTETYPE, card.front, card.back
            extra = _source_html(card, options)
            second_html = render_field(second, markdown=card.markdown) + extra
        else:
            front, back = _basic_front_back(card)
            notetype = "Basic (and reversed card)" if options.reverse else ANKI_BASIC_NOTETYPE
            first = front
            second_html = render_field(back, markdown=card.markdown) + _source_html(card, options)
        rows.append([note_guid(card.id), notetype, deck, render_field(first, markdown=card.markdown), second_html,
                     " ".join(note_tags(card, tags))])  # fmt: skip
    return header, rows


def _source_html(card: Card, options: ExportOptions) -> str:
    # Anki's built-in Basic and Cloze have no Source/Context fields: append them, small, to the answer side.
    parts = []
    if card.quote:
        parts.append(
            f'<div class="mk-source" style="font-size:small;font-style:italic">{render_field(card.quote)}</div>'
        )
    context = _context(card, options.title)
    if context:
        parts.append(f'<div class="mk-context" style="font-size:x-small">{render_field(context)}</div>')
    return "".join(parts)


def csv_text(cards: list[Card], options: ExportOptions) -> tuple[str, list[str]]:
    """The CSV file Anki's importer reads (its header of ``#`` lines, then the rows), and the decks it fills."""
    header, rows = csv_rows(cards, options)
    out = io.StringIO()
    for line in header:
        out.write(line + "\n")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue(), sorted({r[2] for r in rows}) or [clean_deck_name(options.deck)]


def markdown_text(cards: list[Card], options: ExportOptions) -> str:
    """MkFlashcards/Mochi Markdown: front, ``---``, back, the quote as a blockquote; cards split by ``===``."""
    blocks = []
    for card in cards:
        lines = [card.front.strip(), "", "---", "", (card.back or "").strip()]
        if card.quote:
            lines += ["", *("> " + line for line in card.quote.strip().splitlines())]
        blocks.append("\n".join(lines).strip())
    title = f"# {options.deck}\n\n" if options.deck else ""
    return title + "\n\n===\n\n".join(blocks) + "\n"


def cards_json(cards: list[Card], options: ExportOptions) -> dict:
    return {
        "deck": clean_deck_name(options.deck),
        "title": options.title,
        "tags": card_tags(options),
        "cards": [
            {
                "id": c.id,
                "guid": note_guid(c.id),
                "type": effective_kind(c).value,
                "front": c.front,
                "back": c.back,
                "quote": c.quote,
                "chunk_id": c.chunk_id,
                "chunk_index": c.chunk_index,
                "headings": list(c.headings),
                "page": c.page,
                "location": c.location,
                "deck": subdeck_for(c, clean_deck_name(options.deck), options.subdecks),
                "edited": c.edited,
                "stale": c.stale,
            }
            for c in cards
        ],
    }


def json_text(cards: list[Card], options: ExportOptions) -> str:
    return json.dumps(cards_json(cards, options), ensure_ascii=False, indent=2) + "\n"
