"""Make it again: one card, or one chunk's cards, asked for anew (Review's ``g`` and ``G``, headless
``mkflash-tui regenerate``), with an optional note to the model ("simpler", "as a cloze").

The call goes through the run's own retry layer (its limiter, retries, repairs and spans). Its answer is cached
by its request, the cards it replaces and the note included, so the same ask is never paid twice. The new cards
go through the checks every card does (verbatim quotes, the gate's flags) and take the places and the ids, so
the GUIDs, of the cards they replace: a note an export or a push already made is updated, not doubled. A card
that changes kind (a basic card made a cloze) is another note type, which Anki does not change on import: it
gets an id of its own, and arrives as a new note.

The chunk's row in the session then names the new answer (the chunk's cards as they are now, kept under a key
of their own) and holds the new cards with those ids, so a later run of the session, or a resume, makes the
same cards with the same ids. What was replaced is kept in the ``Remade`` for undo.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .card_call import card_request
from .cards import bound_drafts, make_cards
from .control import RunCancelled, RunHalted
from .models import Card, CardDraft, ChunkState, Summary, Usage, make_card_id
from .parsing import OutputError
from .plan import OUTPUT_TOKENS_PER_CARD
from .pricing import cost_usd
from .prompts import CardRequest, fixed_prompt_tokens
from .providers.base import ContextTooLong, ProviderError
from .store import cache_key
from .transport import Request

if TYPE_CHECKING:
    from .engine import Run

ONE_CENT = 0.01  # a call priced under this is sent without a question


class RemakeError(Exception):
    """Why cards could not be made again, in one sentence; the cards stay as they were."""


@dataclass(frozen=True, slots=True)
class Ask:
    """What to make again: one card of a chunk (``card_id``), or the chunk's cards (``card_id`` None)."""

    chunk_id: str
    card_id: str | None = None
    note: str = ""
    first: str | None = None  # the chunk's cards, this one replaced first (the offline generator's ``g``)


@dataclass(slots=True)
class Remade:
    """Cards made again: the chunk's cards before and after, and which replaced which."""

    chunk_id: str
    index: int
    before: list[Card]  # the chunk's cards before
    after: list[Card]  # its cards now
    before_key: str  # the key of the chunk's answer before (undo points the chunk back at it)
    after_key: str
    replaced: list[Card]  # the cards asked for again
    made: list[Card]  # the cards that took their places
    from_cache: bool = False  # the same ask was answered before: no call
    usage: Usage = field(default_factory=Usage)
    notes: list[str] = field(default_factory=list)  # what the user should know (a card that is a new note)

    def describe(self) -> list[str]:
        """What changed, a line per card, for people."""
        lines = []
        for old, new in zip(self.replaced, self.made, strict=False):
            lines.append(f"- {_one_line(old)}")
            lines.append(f"+ {_one_line(new)}" + (f"  [{', '.join(new.flags)}]" if new.flags else ""))
        for old in self.replaced[len(self.made) :]:
            lines.append(f"- {_one_line(old)}")
        for new in self.made[len(self.replaced) :]:
            lines.append(f"+ {_one_line(new)}" + (f"  [{', '.join(new.flags)}]" if new.flags else ""))
        return lines


def _one_line(card: Card) -> str:
    back = f" → {card.back}" if card.back else ""
    return " ".join(f"{card.front}{back}".split())


def for_provider(run: Run, ask: Ask) -> tuple[Ask, list[str]]:
    """The ask as the run's provider can take it: the offline generator takes no note, and makes a chunk again
    rather than one card."""
    if run.provider.online:
        return ask, []
    notes = ["the offline generator takes no note: it made the chunk again without it"] if ask.note else []
    return Ask(ask.chunk_id, first=ask.card_id or ask.first), notes


def request_for(run: Run, ask: Ask, replaced: list[Card]) -> CardRequest:
    """The chunk's request, asking for one card (or the chunk's cards) again, with the cards replaced and the
    note."""
    status = run.status[ask.chunk_id]
    summary = run.summary or Summary(run.document.title, "")
    base = card_request(status, summary, run.settings, compact=run.window.compact)
    wanted = 1 if ask.card_id or ask.first else max(1, status.cards_wanted, len(replaced))
    again = tuple((card.front, card.back) for card in replaced)
    return dataclasses.replace(base, cards_wanted=wanted, again=again, note=ask.note.strip())


def price(run: Run, ask: Ask, replaced: list[Card]) -> tuple[int, float | None]:
    """Tokens and price of the call, before it is sent (price None: the model's price is unknown)."""
    ask, _ = for_provider(run, ask)
    request = request_for(run, ask, replaced)
    tokens_in = (run.status[ask.chunk_id].chunk.tokens + len(request.summary) // 4
                 + fixed_prompt_tokens(request.compact) + sum(len(f) + len(b) for f, b in request.again) // 4
                 + len(request.note) // 4 + 60)  # fmt: skip
    tokens_out = request.cards_wanted * OUTPUT_TOKENS_PER_CARD
    if not run.provider.online:
        return tokens_in + tokens_out, 0.0
    base_url = getattr(run.provider, "base_url", None)
    return tokens_in + tokens_out, cost_usd(run.provider.model, tokens_in, tokens_out, base_url)


def replaceable(run: Run, ask: Ask, shown: list[Card] | None = None) -> list[Card]:
    """The cards the ask replaces: the one card, or the chunk's cards still shown (``shown``: those the user did
    not delete; None: all of them). Raises RemakeError."""
    status = run.status.get(ask.chunk_id)
    if status is None:
        raise RemakeError("that card's chunk is not part of this run")
    if status.state is not ChunkState.DONE:
        raise RemakeError(f"chunk {status.chunk.index + 1} has no cards yet ({status.state}): let it finish first")
    if ask.card_id is None:
        ids = {c.id for c in shown} if shown is not None else None
        cards = [c for c in status.cards if ids is None or c.id in ids]
        return sorted(cards, key=lambda c: c.id != ask.first)  # the card asked for first
    card = next((c for c in status.cards if c.id == ask.card_id), None)
    if card is None:
        raise RemakeError(f"chunk {status.chunk.index + 1} has no card {ask.card_id}")
    return [card]


async def remake(run: Run, ask: Ask, shown: list[Card] | None = None) -> Remade:
    """Make the card (or the chunk's cards) again, put the new cards in place in the run and the session, and
    return what changed. Raises RemakeError; the cards stay as they were then."""
    if run.fatal or run.halted:
        raise RemakeError(run.fatal or f"nothing new is sent: {run.halted}")
    ask, notes = for_provider(run, ask)
    replaced = replaceable(run, ask, shown)
    status = run.status[ask.chunk_id]
    chunk = status.chunk
    if run.summary is None:
        try:
            await run.summarize()
        except RunCancelled as exc:
            raise RemakeError(str(exc)) from None
    request = request_for(run, ask, replaced)
    key = cache_key("chunk", run.provider.cache_identity, request.key_material())
    cached = run.journal.read("cached_chunk", key) if run.journal.use_cache else None
    usage = Usage()
    if cached is not None:
        drafts, raw = cached.drafts, cached.raw
    else:
        drafts, raw, usage = await _call(run, chunk.id, chunk.index, request)
        run.journal.write("save_chunk", None, chunk, key, drafts, raw, usage, [], request.cards_wanted)
    drafts, _ = bound_drafts(drafts, request.cards_wanted)
    made = make_cards(chunk, drafts, markdown=run.provider.online)
    if not made and not run.provider.online:
        raise RemakeError("the offline generator has no other card in this chunk; the cards stay as they were")
    if not made:
        raise RemakeError("the model made no card this time; the cards stay as they were")
    before = list(status.cards)
    if ask.card_id or not run.provider.online:
        # One card, or the offline generator's other cards of the chunk: each in the place of one replaced.
        after, made = _in_place(chunk.card_key, before, list(zip(replaced, made, strict=False)), notes)
        if not run.provider.online and not ask.first and len(made) < len(replaced):
            notes.append(f"the offline generator has {fmt_count(len(made), 'other card')} in this chunk: "
                         f"{fmt_count(len(made), 'card')} replaced, the rest stay")  # fmt: skip
    else:
        after = made = _take_ids(made, replaced, notes)
    after_key = cache_key("again", status.key, key)
    kept = [CardDraft(c.original_front, c.original_back, c.quote, c.kind) for c in after]
    run.journal.write("save_chunk", run.session_id, chunk, after_key, kept, raw, Usage(), after,
                      status.cards_wanted)  # fmt: skip
    run.journal.write("reset_decisions", run.session_id, [c for c in after if c.id in {b.id for b in before}])
    status.usage += usage
    run.stats.usage += usage
    remade = Remade(chunk.id, chunk.index, before, after, status.key, after_key, replaced, made,
                    from_cache=cached is not None, usage=usage, notes=notes)  # fmt: skip
    run.chunk_states.replace(chunk.id, after, after_key)
    return remade


def undo(run: Run, remade: Remade) -> None:
    """Put the cards a remake replaced back, in the run and in the session (their edits too)."""
    status = run.status[remade.chunk_id]
    run.journal.write("chunk_done", run.session_id, status.chunk, remade.before_key, remade.before,
                      status.cards_wanted)  # fmt: skip
    run.journal.write("reset_decisions", run.session_id, remade.replaced)
    run.chunk_states.replace(remade.chunk_id, remade.before, remade.before_key)


async def _call(run: Run, chunk_id: str, index: int, request: CardRequest) -> tuple[list[CardDraft], str, Usage]:
    """The call, through the run's retry layer; its drafts, raw answer and usage. Raises RemakeError."""

    def repair(current: Request, error: OutputError) -> Request:
        if getattr(error, "runaway", False):
            return current
        return dataclasses.replace(current, cards=dataclasses.replace(request, repair_of=error.raw or "(empty)"))

    try:
        try:
            result = await run.caller.call(Request(chunk_id, index, request, part="again"), repair=repair,
                                           cut_off_retries=run.settings.cut_off_retries)  # fmt: skip
        except ContextTooLong:
            if not request.again:
                raise
            # The cards shown back do not fit the server's window beside the chunk: ask without them.
            request = dataclasses.replace(request, again=())
            result = await run.caller.call(Request(chunk_id, index, request, part="again"), repair=repair,
                                           cut_off_retries=run.settings.cut_off_retries)  # fmt: skip
    except OutputError as exc:
        raise RemakeError(f"the model's answer could not be read ({exc}); the cards stay as they were") from None
    except (ProviderError, RunHalted) as exc:
        raise RemakeError(f"{exc}; the cards stay as they were") from None
    return list(result.drafts), result.raw, result.usage  # type: ignore[union-attr]


def _in_place(card_key: str, before: list[Card], pairs: list[tuple[Card, Card]],
              notes: list[str]) -> tuple[list[Card], list[Card]]:  # fmt: skip
    """The chunk's cards with each old card of ``pairs`` replaced by its new one, in its place and with its id
    when they are of one kind. Raises RemakeError when a new card is one the chunk has already."""
    old_ids = {old.id for old, _ in pairs}
    keys = {c.dedup_key() for c in before if c.id not in old_ids}
    for _, new in pairs:
        if new.dedup_key() in keys:
            raise RemakeError("the model answered with a card this chunk has already; the card stays as it was")
        keys.add(new.dedup_key())
    by_old = {}
    for old, new in pairs:
        new.ordinal = old.ordinal
        new.id = old.id if new.kind == old.kind else make_card_id(card_key, old.ordinal, new.front, new.back)
        if new.kind != old.kind:
            notes.append(_new_note(new))
        by_old[old.id] = new
    return [by_old.get(c.id, c) for c in before], [new for _, new in pairs]


def fmt_count(count: int, what: str) -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


def _take_ids(made: list[Card], replaced: list[Card], notes: list[str]) -> list[Card]:
    """The chunk's new cards, each taking the id of the first card it replaces of its kind (in document order):
    its note in Anki is updated. A new card left without one (none of its kind is left) is a new note."""
    free = list(replaced)
    taken = {c.id for c in made}
    new_notes = 0
    for new in made:
        old = next((c for c in free if c.kind == new.kind and c.id not in taken), None)
        if old is None:
            new_notes += 1
            continue
        free.remove(old)
        taken.discard(new.id)
        new.id = old.id
        taken.add(new.id)
    if new_notes and free:
        one = new_notes == 1
        notes.append(f"{new_notes} new {'card is' if one else 'cards are'} of another kind than the cards replaced: "
                     f"Anki gets {'it' if one else 'them'} as new notes (it keeps the old ones until you delete "
                     "them)")  # fmt: skip
    return made


def _new_note(card: Card) -> str:
    kind = "a cloze" if str(card.kind) == "cloze" else "a basic card"
    return (f"the new card is {kind}, another note type: Anki gets it as a new note (it keeps the old one until you "
            "delete it)")  # fmt: skip


def priced(tokens: int, cost: float | None, *, online: bool = True) -> str:
    """The one line a call is priced with: "about 1,240 tokens, under a cent"."""
    if not online:
        return "the offline generator, no cost"
    if cost is None:
        return f"about {tokens:,} tokens (price unknown for this model)"
    if cost == 0:
        return f"about {tokens:,} tokens, free"
    return f"about {tokens:,} tokens, " + ("under a cent" if cost < ONE_CENT else f"about ${cost:.2f}")
