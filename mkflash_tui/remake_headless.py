"""``mkflash-tui regenerate SESSION --card ID | --chunk N [--note TEXT] [-o deck.apkg]``: one card, or one chunk's
cards, made again in a stored session (``core.remake``), printing what changed; with ``-o`` the session's deck is
written again, the cards made again updating the notes they replace."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import TextIO

from . import format as fmt
from .core import plan, remake
from .core.chunking import ChunkingError
from .core.deck import ExportError
from .core.engine import Run
from .core.export import check_output_path, export_cards
from .core.review import Review
from .core.sources import SourceError
from .core.store import Store, StoreError, open_store
from .job import Job, discover_server, fit_to_server, known_stamps, prepare, settings_for_session

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", help="the session's id (mkflash-tui sessions lists them)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--card", metavar="ID", help="the card to make again (its id, or the start of it, as "
                       "--json and the .json export show)")  # fmt: skip
    which.add_argument("--chunk", type=int, metavar="N", help="make chunk N's cards again (1 is the first)")
    parser.add_argument("--note", default="", metavar="TEXT", help='a note to the model: "simpler", "more on X", '
                        '"as a cloze", "in German"')  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="then write the session's deck here")
    parser.add_argument("--force", action="store_true", help="overwrite the output file")
    parser.add_argument("--max-cost", type=float, metavar="USD", help="refuse to send a call priced above this")
    parser.add_argument("--api-key", help="API key (env OPENAI_API_KEY); never written anywhere")
    parser.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    parser.add_argument("--data-dir", type=Path, help="where sessions are kept (env MKFLASH_DATA_DIR)")


def regenerate(args: argparse.Namespace, base, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Make the card or the chunk again in session ``args.session`` (``base``: the settings from the flags and the
    environment, for the key); returns the exit code."""

    def fail(message: str, code: int = EXIT_USAGE) -> int:
        stderr.write(f"mkflash-tui: {message}\n")
        if args.json:
            stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
        return code

    try:
        store = open_store(args.data_dir or base.data_dir)
        source = store.session_source(args.session)
    except StoreError as exc:
        return fail(str(exc))
    if source is None:
        store.close()
        return fail(f"there is no session {args.session} (or an older version kept it without its text); "
                    "mkflash-tui sessions lists them.")  # fmt: skip
    spec, document, source_key = source
    settings = settings_for_session(base, spec, source_key)
    settings.output, settings.force = args.output, args.force
    try:
        job = prepare(settings, document)
        # The requests fit the server's window as the session's did (its chunks stay as they were cut).
        job.fit, _ = fit_to_server(dataclasses.replace(settings), discover_server(settings))
        previous = plan.Previous(args.session, store.stored_chunks(args.session), store.session_summary(args.session))
        continued = plan.continue_session(job.asked, store, document, previous)
        decisions = store.decisions(args.session)
    except StoreError as exc:
        store.close()
        return fail(str(exc))
    except (ChunkingError, SourceError) as exc:
        store.close()
        return fail(f"session {args.session} cannot be read again: {exc}")
    if continued is None:
        store.close()
        return fail(f"session {args.session} was made by an older version; run it again once, then make cards again.")
    job.plan = continued
    try:
        chunk_id, card_id = _target(job, args)
    except remake.RemakeError as exc:
        store.close()
        return fail(str(exc))
    if args.output is not None:
        try:
            check_output_path(args.output, force=args.force, ours=store.written_by(args.output) == args.session)
        except (ExportError, StoreError) as exc:
            store.close()
            return fail(str(exc))
    run = job.make_run(stream=False, store=store, session_id=args.session)
    code, report = asyncio.run(_remake(run, job, chunk_id, card_id, args, decisions, stdout, stderr))
    if code == EXIT_OK and args.output is not None:
        code = _export(run, job, store, args.output, args.session, decisions, report, stderr)
    store.close()
    if args.json:
        stdout.write(json.dumps({**report, "session": args.session, "exit_code": code}) + "\n")
    return code


def _target(job: Job, args: argparse.Namespace) -> tuple[str, str | None]:
    """The chunk (and the card) asked for. Raises RemakeError."""
    if args.chunk is not None:
        if not 1 <= args.chunk <= len(job.chunks):
            raise remake.RemakeError(f"the session has chunks 1 to {len(job.chunks)}, not {args.chunk}")
        chunk = job.chunks[args.chunk - 1]
        if chunk.id not in job.plan.known_keys:
            raise remake.RemakeError(f"chunk {args.chunk} has no cards yet in this session: run the session to the "
                                     "end first")  # fmt: skip
        return chunk.id, None
    stored = job.plan.stored_cards
    found = [(chunk_id, card.id) for chunk_id, cards in stored.items() for card in cards
             if card.id == args.card or card.id.startswith(args.card)]  # fmt: skip
    exact = [f for f in found if f[1] == args.card]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if found:
        raise remake.RemakeError(f"{len(found)} cards have ids starting {args.card}: give more of the id")
    raise remake.RemakeError(f"the session has no card {args.card} (--json of generate, or a .json export, shows "
                             "the ids)")  # fmt: skip


async def _remake(run: Run, job: Job, chunk_id: str, card_id: str | None, args: argparse.Namespace,
                  decisions, stdout: TextIO, stderr: TextIO) -> tuple[int, dict]:  # fmt: skip
    try:
        status = await run.process_chunk(chunk_id)  # its cards from the session: no call
        review = Review()
        review.adopt(status.cards, decisions)
        shown = review.keep(status.cards)
        if card_id is not None and card_id in review.deleted:
            return _said(stderr, f"card {card_id} was deleted in Review; undo that first, or make its chunk again "
                         f"(--chunk {status.chunk.index + 1})")  # fmt: skip
        ask, notes = remake.for_provider(run, remake.Ask(chunk_id, card_id, args.note))
        replaced = remake.replaceable(run, ask, shown)
        tokens, cost = remake.price(run, ask, replaced)
        what = "the card" if ask.card_id or ask.first else f"chunk {status.chunk.index + 1}'s cards"
        if args.max_cost is not None and cost is not None and cost > args.max_cost:
            return _said(stderr, f"making {what} again is priced at ${cost:.4f}, above --max-cost "
                         f"${args.max_cost:g}; nothing was sent", EXIT_USAGE)  # fmt: skip
        stderr.write(f"mkflash-tui: making {what} again: {remake.priced(tokens, cost, online=run.provider.online)}\n")
        remade = await remake.remake(run, ask, shown)
        if args.output is not None:  # the deck's other cards, from the session: no call
            for chunk in job.chunks:
                if chunk.id in job.plan.known_keys:
                    await run.process_chunk(chunk.id)
    except remake.RemakeError as exc:
        return _said(stderr, str(exc), EXIT_REFUSED if run.fatal else EXIT_PARTIAL)
    finally:
        await run.aclose()
    for note in dict.fromkeys(notes + remade.notes):
        stderr.write(f"mkflash-tui: {note}\n")
    cached = " (answered before: no call; another note asks again)" if remade.from_cache else ""
    kept = {c.id for c in run.cards()}
    left_out = [card for card in remade.made if card.id not in kept]
    if not args.json:
        stdout.write(f"chunk {remade.index + 1}: {fmt.plural(len(remade.made), 'card')} made again{cached}\n")
        for line in remade.describe():
            stdout.write(f"  {line}\n")
        for card in left_out:
            stdout.write(f"  the quality gate left out (it repeats another card): {card.front}\n")
    report = {
        "chunk": remade.index + 1,
        "replaced": [{"id": c.id, "front": c.front, "back": c.back} for c in remade.replaced],
        "made": [
            {"id": c.id, "front": c.front, "back": c.back, "kind": str(c.kind), "flags": list(c.flags)}
            for c in remade.made
        ],
        "left_out": [c.id for c in left_out],
        "from_cache": remade.from_cache,
        "notes": notes + remade.notes,
        "prompt_tokens": remade.usage.prompt_tokens,
        "completion_tokens": remade.usage.completion_tokens,
    }
    if args.output is None:
        stderr.write("mkflash-tui: the session keeps the new cards; export it again (or give -o) to update the "
                     "deck: each note keeps its GUID, so Anki updates it\n")  # fmt: skip
    return EXIT_OK, report


def _export(run: Run, job: Job, store: Store, output: Path, session_id: str, decisions, report: dict,
            stderr: TextIO) -> int:  # fmt: skip
    """Write the session's deck (every chunk it answered) to ``output``."""
    review = Review()
    cards = run.cards()
    review.adopt(cards, decisions)
    cards = review.keep(cards)
    try:
        result = export_cards(cards, output, job.export_options(title=run.title, force=True),
                              stamps=known_stamps(store, cards))  # fmt: skip
    except (ExportError, OSError) as exc:
        stderr.write(f"mkflash-tui: could not write the deck: {exc}\n")
        return EXIT_USAGE
    try:
        store.save_note_stamps(result.stamps)
        store.mark_exported(session_id, result.path)
        store.set_cards(session_id, len(cards))
    except StoreError:
        pass  # the deck is written; only the sessions list's marks are missing
    report["output"] = str(result.path)
    stderr.write(f"mkflash-tui: wrote {fmt.plural(result.notes, 'note')} to {result.path}\n")
    return EXIT_OK


def _said(stderr: TextIO, message: str, code: int = EXIT_PARTIAL) -> tuple[int, dict]:
    """The one sentence, the exit code, and the report that says it (``--json``)."""
    stderr.write(f"mkflash-tui: {message}\n")
    return code, {"error": message}
