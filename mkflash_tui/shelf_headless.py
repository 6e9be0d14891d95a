"""``mkflash-tui generate`` over a shelf: every document's Run at once under one limiter, one deck at the end, a
line per document and, with ``--json``, one report with the documents in it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import TextIO

from . import format as fmt
from .config import CONFIRM_ABOVE_USD
from .core import fitting
from .core.ankiconnect import AnkiConnectError
from .core.deck import ExportError, clean_deck_name
from .core.engine import Run
from .core.export import check_output_path, export_groups
from .core.known import KnownError
from .core.models import ChunkState
from .core.providers.discovery import ServerInfo
from .core.sources.gather import Gathered
from .core.store import StoreError, open_store
from .core.throttle import Throttle
from .core.timeline import Timeline
from .headless import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_REFUSED,
    EXIT_USAGE,
    Progress,
    batch_engine_there,
    describe_detached,
    process_seconds,
    write_timeline,
)
from .job import (
    Job,
    known_index,
    known_stamps,
    learn_server,
    make_provider,
    read_known,
    send_to_anki,
    take_up_batches,
)
from .shelf import Shelf, default_deck, gone_documents, shelf_cards, subdeck_titles


def _report_error(shelf: Shelf, reason: str, code: int, stdout: TextIO, stderr: TextIO | None) -> int:
    if stderr is not None:
        stderr.write(f"mkflash-tui: {reason}\n")
    if shelf.settings.json:
        stdout.write(json.dumps({"exit_code": code, "error": reason, "documents": len(shelf.jobs), "cards": 0,
                                 "requests": 0, "output": None, "skipped": _skipped(shelf)}) + "\n")  # fmt: skip
    return code


def _skipped(shelf: Shelf) -> list[dict]:
    return [{"input": name, "reason": reason} for name, reason in shelf.skipped]


def _say_skipped(shelf: Shelf, stderr: TextIO) -> None:
    for _, reason in shelf.skipped:
        stderr.write(f"mkflash-tui: skipped: {reason}\n")


def dry_run(shelf: Shelf, stdout: TextIO) -> None:
    total = shelf.estimate()
    rows = _rows(shelf)
    if shelf.settings.json:
        stdout.write(json.dumps({"dry_run": True, "deck": shelf.deck, "documents": rows, "skipped": _skipped(shelf),
                                 "chunks": total.chunks, "cards_planned": total.cards,
                                 "input_tokens": total.input_tokens, "estimated_cost_usd": total.cost_usd,
                                 "estimated_seconds": _round(shelf.estimated_seconds()),
                                 "output": str(shelf.output)}) + "\n")  # fmt: skip
        return
    _say_documents(shelf, rows, stdout)
    price = (f"estimated cost {_cost(total.cost_usd, bare=True)} with {shelf.settings.model}"
             if shelf.settings.online else "with the offline generator (free)")  # fmt: skip
    seconds = shelf.estimated_seconds()
    took = f", {fitting.describe_seconds(seconds)}" if seconds is not None else ""
    stdout.write(f"{shelf.deck}: {fmt.plural(len(shelf.jobs), 'document')}, {fmt.plural(total.chunks, 'chunk')} "
                 f"to send, ~{total.input_tokens:,} input tokens, ~{fmt.plural(total.cards, 'card')}, {price}{took}. "
                 "Nothing was sent.\n")  # fmt: skip


def _say_documents(shelf: Shelf, rows: list[dict], out: TextIO) -> None:
    for job, row in zip(shelf.jobs, rows, strict=True):
        out.write(f"  {job.settings.input}: {fmt.plural(row['chunks'], 'chunk')}, ~{row['input_tokens']:,} "
                  f"tokens, ~{fmt.plural(row['cards_planned'], 'card')}"
                  f"{_cost(row['estimated_cost_usd']) if shelf.settings.online else ''}"
                  + (f" ({row['changes']})" if row["changes"] else "") + "\n")  # fmt: skip


def _rows(shelf: Shelf) -> list[dict]:
    rows = []
    for job in shelf.jobs:
        est = job.estimate
        changes = f" (continuing: {job.changes.describe()})" if job.changes else ""
        rows.append({"input": job.settings.input, "title": job.document.title, "chunks": est.chunks,
                     "cards_planned": est.cards, "input_tokens": est.input_tokens,
                     "estimated_cost_usd": est.cost_usd, "changes": changes.strip(" ()") or None,
                     "estimated_seconds": _round(job.estimated_seconds())})  # fmt: skip
    return rows


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _cost(cost: float | None, *, bare: bool = False) -> str:
    text = "unknown" if cost is None else f"${cost:.4f}"
    return text if bare else ("" if cost is None else f", {text}")


def confirm(shelf: Shelf, stderr: TextIO) -> int | None:
    """``--max-cost`` on the total, and the question before an expensive run (as for one document)."""
    settings, total = shelf.settings, shelf.estimate()
    if not settings.online:
        return None
    price = shelf.price
    if shelf.over_budget:
        stderr.write(f"mkflash-tui: the estimated cost ${price:.2f} of the {len(shelf.jobs)} documents is "
                     f"above --max-cost ${settings.max_cost:.2f}; nothing was sent.\n")  # fmt: skip
        return EXIT_USAGE
    if settings.yes or settings.max_cost is not None or price is None or price <= CONFIRM_ABOVE_USD:
        return None
    question = (f"This run sends {fmt.plural(total.chunks, 'chunk')} of {fmt.plural(len(shelf.jobs), 'document')} "
                f"(~{total.input_tokens:,} input tokens) to {settings.model}, estimated ${price:.2f}"
                + (f" through the batch engine, answers within 24 h (live: ${total.cost_usd:.2f})."
                   if settings.batch else "."))  # fmt: skip
    if not sys.stdin.isatty():
        stderr.write(f"mkflash-tui: {question} Pass --yes or --max-cost to start it.\n")
        return EXIT_USAGE
    _say_documents(shelf, _rows(shelf), stderr)
    stderr.write(question + " Start? [y/N] ")
    stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        stderr.write("mkflash-tui: not started; nothing was sent.\n")
        return EXIT_USAGE
    return None


async def _drive(runs: list[Run], interrupted: list[bool], shared, arriving=None, desk=None,
                 refused: list[str] | None = None) -> None:  # fmt: skip
    """Every run to its end (a slow or failing document never holds the others back); Ctrl+C cancels them all.
    ``arriving(tasks)``: adds more runs (to ``runs``) and their tasks while these go, for a shelf read as it runs.
    ``desk`` (--batch): asked first whether the server has a batch engine (``refused`` gets why not)."""
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        if interrupted[0]:
            os._exit(EXIT_INTERRUPTED)
        interrupted[0] = True
        for run in runs:
            run.cancel()

    handle_signals = sys.platform != "win32" and threading.current_thread() is threading.main_thread()
    if handle_signals:
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        if not await batch_engine_there(desk, refused):
            return
        tasks = [asyncio.ensure_future(run.run()) for run in runs]
        if arriving is not None:
            await arriving(tasks)
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        interrupted[0] = True
    finally:
        if desk is not None:
            desk.close()
        if handle_signals:
            loop.remove_signal_handler(signal.SIGINT)
        closing = [run.provider for run in runs if run.provider is not shared]
        for provider in [*closing, *([shared] if shared is not None else [])]:
            await provider.aclose()


def run_shelf_headless(shelf: Shelf, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Run every document of ``shelf``, write one deck, report; returns the process exit code."""
    settings = shelf.settings
    _say_skipped(shelf, stderr)
    if not shelf.jobs:
        return _report_error(shelf, "none of the inputs could be read; nothing was sent.", EXIT_USAGE, stdout, None)
    write_file = not settings.to_anki or settings.output is not None
    try:
        store = open_store(settings.data_dir, on_wait=lambda note: stderr.write(f"mkflash-tui: {note}\n"))
        shelf.continue_from(store)
        ours = _written_by_the_job(shelf, store)
    except StoreError as exc:
        return _report_error(shelf, f"{exc}; nothing was sent.", EXIT_USAGE, stdout, stderr)
    if not settings.dry_run and write_file and (refused := _refuse_output(shelf, store, ours, stdout, stderr)):
        return refused
    if settings.dry_run:
        store.close()
        dry_run(shelf, stdout)
        return EXIT_PARTIAL if shelf.skipped else EXIT_OK
    try:
        earlier = None if settings.fresh else store.find_job(shelf.inputs)
    except StoreError:
        earlier = None
    taken_up = take_up_batches(settings, store, earlier.id) if earlier else None  # --batch or not
    stop = confirm(shelf, stderr)
    if stop is not None:
        store.close()
        return _report_error(shelf, "not started; nothing was sent", stop, stdout, None)
    try:
        opened = shelf.open(store)
    except StoreError as exc:
        return _report_error(shelf, f"{exc}; nothing was sent.", EXIT_USAGE, stdout, stderr)
    for note in shelf.jobs[0].fitted:
        stderr.write(f"mkflash-tui: {note}\n")
    total_chunks = sum(len(j.chunks) for j in shelf.jobs)
    stderr.write(f"mkflash-tui: {shelf.deck}: {fmt.plural(len(shelf.jobs), 'document')}, "
                 f"{fmt.plural(total_chunks, 'chunk')} with {settings.describe_provider()}, "
                 f"{settings.concurrency} in flight at most (job {shelf.job_id})\n")  # fmt: skip
    if taken_up:
        stderr.write(f"mkflash-tui: {taken_up}\n")
    runs = shelf.make_runs(store, [s for s, _ in opened], batch_emit=lambda event: _say_batch(event, stderr))
    timelines: dict[Run, Timeline] = {}
    for job, run in zip(shelf.jobs, runs, strict=True):
        _subscribe(job, run, stderr, timelines)
    interrupted = [False]
    shared = runs[0].provider if settings.online else None
    refused: list[str] = []
    asyncio.run(_drive(runs, interrupted, shared, desk=shelf.desk, refused=refused))
    if refused:
        store.close()
        return _report_error(shelf, refused[0] + "; nothing was sent.", EXIT_USAGE, stdout, stderr)
    return _finish(shelf, runs, store, ours=ours, write_file=write_file, interrupted=interrupted[0],
                   timelines=timelines, stdout=stdout, stderr=stderr)  # fmt: skip


def _say_batch(event, stderr: TextIO) -> None:
    describe = getattr(event, "describe", None)
    stderr.write(f"mkflash-tui: {describe() if describe else event.text}\n")


def _written_by_the_job(shelf: Shelf, store) -> bool:
    """Whether the deck's file is as this job (or one of its documents' sessions) last wrote it. Raises
    StoreError."""
    earlier = store.find_job(shelf.inputs)
    return earlier is not None and store.written_by(shelf.output) in {earlier.id, *earlier.sessions}


def _refuse_output(shelf: Shelf, store, ours: bool, stdout: TextIO, stderr: TextIO) -> int | None:
    """The exit code when the deck's file may not be written (it exists and is not the job's), else None."""
    try:
        check_output_path(shelf.output, force=shelf.settings.force, ours=ours)
    except ExportError as exc:
        store.close()
        return _report_error(shelf, str(exc), EXIT_USAGE, stdout, stderr)
    return None


def _subscribe(job: Job, run: Run, stderr: TextIO, timelines: dict[Run, Timeline]) -> None:
    if job.settings.timeline is not None:
        timelines[run] = Timeline(job.settings.concurrency)
        run.subscribe(timelines[run].add)
    progress = Progress(run, stderr, live=False, prefix=f"{job.settings.input}: ")
    if stderr.isatty():  # on a terminal only the lines that matter: a document's failures and its end
        run.subscribe(lambda event: _quiet(progress, event))
    else:
        run.subscribe(progress)


def run_shelf_streaming(shelf: Shelf, gathered: Gathered, *, server: ServerInfo | None = None,
                        stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:  # fmt: skip
    """Like ``run_shelf_headless``, but each document starts as soon as it is read, while the next are read (the
    first calls go out after one document's reading, not the whole shelf's). For runs that ask nothing first:
    no dry run, no question, no --max-cost on the total. ``shelf`` has no jobs yet; ``gathered`` are read in order.
    """
    settings = shelf.settings
    names = gathered.inputs
    todo = list(names)
    while todo and not shelf.jobs:  # the first readable document: the deck's name, the provider, the fit
        shelf.read(todo.pop(0), server)
    _say_skipped(shelf, stderr)
    if not shelf.jobs:
        return _report_error(shelf, "none of the inputs could be read; nothing was sent.", EXIT_USAGE, stdout, None)
    shelf.deck = clean_deck_name(settings.deck or default_deck(gathered, shelf.jobs))
    write_file = not settings.to_anki or settings.output is not None
    try:
        store = open_store(settings.data_dir, on_wait=lambda note: stderr.write(f"mkflash-tui: {note}\n"))
        earlier = store.find_job(shelf.inputs)
        ours = _written_by_the_job(shelf, store)
        if write_file and (refused := _refuse_output(shelf, store, ours, stdout, stderr)):
            return refused
        # The job keeps its earlier documents until this run ends, so a crash loses none of them.
        shelf.job_id = store.open_job(shelf.inputs, title=shelf.deck, deck=shelf.deck,
                                      sessions=list(earlier.sessions) if earlier else [])  # fmt: skip
    except StoreError as exc:
        return _report_error(shelf, f"{exc}; nothing was sent.", EXIT_USAGE, stdout, stderr)
    for note in shelf.jobs[0].fitted:
        stderr.write(f"mkflash-tui: {note}\n")
    stderr.write(f"mkflash-tui: {shelf.deck}: {fmt.plural(len(names), 'document')}, each sent as it is read, with "
                 f"{settings.describe_provider()}, {settings.concurrency} in flight at most (job {shelf.job_id})\n")
    interrupted = [False]
    timelines: dict[Run, Timeline] = {}
    runs = asyncio.run(_stream(shelf, todo, store, server, interrupted, timelines, stderr))
    try:
        shelf.gone = [] if settings.fresh else gone_documents(shelf, store)
        store.open_job(shelf.inputs, title=shelf.deck, deck=shelf.deck,
                       sessions=[r.session_id for r in runs] + [g.session_id for g in shelf.gone])  # fmt: skip
    except StoreError as exc:
        stderr.write(f"mkflash-tui: {exc}\n")
    return _finish(shelf, runs, store, ours=ours, write_file=write_file, interrupted=interrupted[0],
                   timelines=timelines, stdout=stdout, stderr=stderr)  # fmt: skip


async def _stream(shelf: Shelf, todo: list[str], store, server, interrupted: list[bool],
                  timelines: dict[Run, Timeline], stderr: TextIO) -> list[Run]:  # fmt: skip
    """Start each document's run as it is read (the first is read already); then wait for all of them."""
    settings = shelf.settings
    throttle = Throttle(settings.concurrency)
    shared = None
    if settings.online:
        shared = make_provider(settings, shelf.jobs[0].document, stream=False)
        if not settings.fresh:
            learn_server(shared, store)
    runs: list[Run] = []

    def start(job: Job) -> Run | None:
        try:
            job.continue_from(store)
            job.learn_speed(store)
            session, _ = job.open_session(store)
        except StoreError as exc:
            shelf.jobs.remove(job)
            shelf.skipped.append((job.settings.input, f"{job.settings.input}: {exc}"))
            return None
        run = job.make_run(stream=False, store=store, session_id=session, throttle=throttle, provider=shared)
        _subscribe(job, run, stderr, timelines)
        runs.append(run)
        return run

    async def read_rest(tasks: list) -> None:
        for name in todo:
            await asyncio.sleep(0)  # the calls just started go out before the next document is read
            if interrupted[0]:
                return
            before = len(shelf.skipped)
            job = shelf.read(name, server)
            run = start(job) if job is not None else None
            if run is not None:
                tasks.append(asyncio.ensure_future(run.run()))
            for _, reason in shelf.skipped[before:]:
                stderr.write(f"mkflash-tui: skipped: {reason}\n")

    start(shelf.jobs[0])
    await _drive(runs, interrupted, shared, arriving=read_rest)
    return runs


def _finish(shelf: Shelf, runs: list[Run], store, *, ours: bool, write_file: bool, interrupted: bool,
            timelines: dict[Run, Timeline], stdout: TextIO, stderr: TextIO) -> int:  # fmt: skip
    """After the runs: one deck of every document's cards, Anki if asked, a line per document, the report."""
    settings = shelf.settings
    total_chunks = sum(len(r.chunks) for r in runs)
    per_document, repeats = shelf_cards(shelf, runs, store)
    in_collection = _compare_known(shelf, per_document, store, stderr)
    if settings.skip_known:
        per_document = [[c for c in group if not c.known] for group in per_document]
    titles = subdeck_titles(shelf, runs)
    groups = [(cards, shelf.export_options(job, title))
              for job, title, cards in zip(shelf.jobs, titles, per_document, strict=True)]  # fmt: skip
    gone = [(g.cards, shelf.gone_options(g)) for g in shelf.gone]
    cards = [c for group, _ in groups + gone for c in group]
    result = export_error = None
    if cards and write_file:
        try:
            result = export_groups(groups + gone, shelf.output, deck=shelf.deck, stamps=known_stamps(store, cards),
                                   ours=ours)  # fmt: skip
        except (ExportError, OSError) as exc:
            export_error = str(exc)
    anki = None
    if cards and settings.to_anki:
        anki = _push(shelf, groups + gone, store, result, stderr)
    documents = []
    for job, run, (group, options) in zip(shelf.jobs, runs, groups, strict=True):
        counts = run.counts()
        failed = [s for s in run.failures() if s.state is ChunkState.FAILED]
        line = (f"{job.settings.input}: {counts['done']}/{len(run.chunks)} chunks, {fmt.plural(len(group), 'card')}"
                + (f", {len(failed)} failed" if failed else "") + (f"; stopped: {run.fatal}" if run.fatal else ""))
        stderr.write(f"mkflash-tui: {line}\n")
        for status in failed[:5]:
            stderr.write(f"  chunk {status.chunk.index + 1}: {status.reason}\n")
        documents.append({"input": job.settings.input, "title": job.document.title, "session": run.session_id,
                          "deck": options.deck, "chunks": len(run.chunks),
                          "done": counts["done"], "failed_chunks": len(failed), "cards": len(group),
                          "from_cache": run.from_cache, "requests": run.stats.requests,
                          "fatal": run.fatal})  # fmt: skip
    stale = sum(len(g.cards) for g in shelf.gone)
    if stale:
        stderr.write(f"mkflash-tui: {fmt.plural(stale, 'card')} of {fmt.plural(len(shelf.gone), 'document')} no "
                     "longer given: kept, tagged mkflash::stale (--to-anki --prune deletes them in Anki; "
                     "sessions rm removes them here)\n")  # fmt: skip
    if repeats:
        stderr.write(f"mkflash-tui: {fmt.plural(repeats, 'card')} repeated a card of an earlier document: left out\n")
    fatal = next((r.fatal for r in runs if r.fatal), None)
    cancelled = interrupted or any(r.cancelled for r in runs)
    code = EXIT_OK
    if fatal and all(r.fatal for r in runs):
        code = EXIT_REFUSED
    elif cancelled:
        code = EXIT_INTERRUPTED
    elif any(r.failures() or r.fatal or r.halted for r in runs) or shelf.skipped:
        code = EXIT_PARTIAL
    if not cards:
        stderr.write("mkflash-tui: no cards were made, so no deck was written.\n")
        code = code or EXIT_USAGE
    if export_error:
        stderr.write(f"mkflash-tui: could not write the deck: {export_error}\n")
        code = code or EXIT_USAGE
    if anki is not None and "error" in anki:
        code = code or EXIT_REFUSED
    if timelines and settings.timeline is not None and not _draw(shelf, runs, timelines, stderr):
        code = code or EXIT_USAGE
    try:
        for run, group in zip(runs, per_document, strict=True):
            store.set_cards(run.session_id, len(group))
        if result:
            store.save_note_stamps(result.stamps)
            for run in runs:
                store.mark_exported(run.session_id, result.path)
            store.mark_exported(shelf.job_id, result.path)  # the file is the job's: the next run replaces it
    except StoreError:
        pass
    store.close()
    if result:
        stderr.write(f"mkflash-tui: wrote {fmt.plural(result.notes, 'note')} of "
                     f"{fmt.plural(len(shelf.jobs), 'document')} to {result.path} (deck {shelf.deck}, a subdeck "
                     "per document)\n")  # fmt: skip
    detached = describe_detached(shelf.desk, shelf.job_id or "")
    if detached:
        stderr.write(f"mkflash-tui: {detached}.\n")
    elif cancelled:
        stderr.write("mkflash-tui: interrupted; run the same command again to continue.\n")
    if shelf.skipped:
        stderr.write(f"mkflash-tui: {fmt.plural(len(shelf.skipped), 'input')} skipped:\n")
        for _, reason in shelf.skipped:
            stderr.write(f"  {reason}\n")
    if settings.json:
        stdout.write(json.dumps({
            "job": shelf.job_id, "deck": shelf.deck, "documents": documents, "skipped": _skipped(shelf),
            "chunks": total_chunks, "cards": len(cards), "repeats_across_documents": repeats,
            "gone": [{"session": g.session_id, "title": g.title, "stale_cards": len(g.cards)} for g in shelf.gone],
            "requests": sum(r.stats.requests for r in runs), "anki": anki, "in_collection": in_collection,
            "concurrency": settings.concurrency,
            "batches": None if shelf.desk is None else {
                "submitted": shelf.desk.submitted, "taken_up": shelf.desk.adopted,
                "still_running": [b.batch_id for b in shelf.desk.open_batches]},
            "wall_seconds": round(process_seconds(), 3), "output": str(result.path) if result else None,
            "exit_code": code,
        }) + "\n")  # fmt: skip
    return code


def _draw(shelf: Shelf, runs: list[Run], timelines: dict[Run, Timeline], stderr: TextIO) -> bool:
    """Every document's calls in one picture (--timeline), on the first run's clock; False when not written."""
    first = runs[0].now()
    parts = [(job.settings.input, first - run.now(), timelines[run])
             for job, run in zip(shelf.jobs, runs, strict=True) if run in timelines]  # fmt: skip
    timeline = Timeline.shelf(parts, shelf.settings.concurrency)
    return write_timeline(timeline, shelf.settings.timeline, shelf.deck, stderr)  # type: ignore[arg-type]


def _compare_known(shelf: Shelf, per_document: list[list], store, stderr: TextIO) -> int | None:
    """Mark the job's cards that the user's collection has already (``core.known``); how many (None: not
    compared)."""
    settings = shelf.settings
    cards = [c for group in per_document for c in group]
    if not cards or not (settings.against or settings.to_anki or settings.skip_known):
        return None
    try:
        read = read_known(settings)
    except KnownError as exc:
        stderr.write(f"mkflash-tui: {exc}; the cards were not compared with it\n")
        return None
    if read is None:
        return None
    index = known_index(read, store, cards)
    count = index.mark(cards)
    if count:
        what = "left out" if settings.skip_known else "kept, marked (--skip-known leaves them out)"
        stderr.write(f"mkflash-tui: {fmt.plural(count, 'card')} repeat notes already in your collection "
                     f"({fmt.plural(len(index), 'note')} compared): {what}\n")  # fmt: skip
    return count


def _quiet(progress: Progress, event) -> None:
    from .core.models import ChunkFailed, Notice

    if isinstance(event, Notice) or (isinstance(event, ChunkFailed) and not event.cancelled):
        progress(event)


def _push(shelf: Shelf, groups, store, result, stderr: TextIO) -> dict:
    """Send each document's cards to its subdeck in a running Anki; one report for all."""
    settings = shelf.settings
    if result:
        try:
            store.save_note_stamps(result.stamps)
        except StoreError:
            pass
    totals: dict = {}
    try:
        for cards, options in groups:
            pushed = send_to_anki(cards, options, store, url=settings.anki_url, key=settings.anki_key,
                                  prune=settings.prune, readd=settings.readd)  # fmt: skip
            for key, value in pushed.as_dict().items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
    except AnkiConnectError as exc:
        stderr.write(f"mkflash-tui: {exc} The cards are kept in each document's session: run the same command "
                     "again to send them.\n")  # fmt: skip
        return {"error": str(exc), **totals}
    stderr.write(f"mkflash-tui: sent to Anki at {settings.anki_url}: " + ", ".join(
        f"{v} {k}" for k, v in totals.items() if v) + "\n")  # fmt: skip
    return totals
