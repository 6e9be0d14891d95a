"""The headless face: ``mkflash-tui generate``. Schedules the Run's chunk coroutines in a TaskGroup and prints
progress to stderr (a live bar on a terminal, plain lines otherwise) and, with ``--json``, one report on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from . import format as fmt
from .config import CONFIRM_ABOVE_USD
from .core.ankiconnect import AnkiConnectError
from .core.deck import ExportError
from .core.engine import Run
from .core.export import check_output_path, export_cards
from .core.models import (
    ChunkFailed,
    ChunkFinished,
    ChunkRetrying,
    ChunkStarted,
    ChunkState,
    Event,
    Notice,
    SummaryFailed,
    SummaryFinished,
)
from .core.pricing import spent_usd
from .core.prompts import DEFAULT_STYLE
from .core.review import apply_decisions
from .core.store import StoreError, open_store
from .job import (
    Job,
    forget_unused_session,
    known_index,
    known_stamps,
    read_known,
    send_to_anki,
    take_up_batches,
)

if TYPE_CHECKING:
    from .core.timeline import Timeline

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def process_seconds() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere: since this module was imported)."""
    try:
        with open("/proc/self/stat") as handle:
            start_ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


_IMPORTED_AT = time.monotonic()


class Progress:
    """Draws run events on stderr: a redrawn bar on a terminal, START/END lines otherwise."""

    def __init__(self, run: Run, stream: TextIO, *, live: bool, prefix: str = "") -> None:
        self.run = run
        self.stream = stream
        self.live = live
        self.prefix = prefix  # a shelf's document: "notes/a.md: " before each line
        self.total = len(run.chunks)
        self._last_draw = 0.0
        self._started = time.monotonic()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._line(f"mkflash-tui: {event.text}")
            return
        describe = getattr(event, "describe", None)  # a batch's progress (core.batch.BatchProgress)
        if describe is not None:
            self._line(f"mkflash-tui: {describe()}")
            return
        if self.live:
            if isinstance(event, ChunkFailed) and not event.cancelled and not self.run.fatal:
                self._line(f"chunk {event.index + 1} failed: {event.reason}")
            self._draw()
            return
        n = f"{self.total}"
        if isinstance(event, SummaryFinished):
            self._line(f"SUMMARY {event.summary.title}")
        elif isinstance(event, SummaryFailed) and not self.run.fatal:
            self._line(f"SUMMARY failed ({event.reason}); going on with the document title")
        elif isinstance(event, ChunkStarted):
            label = self.run.chunks[event.index].label
            self._line(f"START chunk {event.index + 1}/{n} (attempt {event.attempt}) {label}")
        elif isinstance(event, ChunkRetrying):
            self._line(f"RETRY chunk {event.index + 1}/{n} in {event.wait:.1f}s: {event.reason}")
        elif isinstance(event, ChunkFinished):
            if event.skipped:
                what = "skipped (no cards allotted)"
            elif not event.cards:
                what = f"no cards ({event.note}) in {event.seconds:.1f}s"
            else:
                kept = self.run.kept_of(event.chunk_id)  # what it adds to the deck: repeats and broken ones apart
                left = len(event.cards) - kept
                what = fmt.plural(kept, "card") + (f" (+{left} left out: repeated or broken)" if left else "")
                what += f" in {event.seconds:.1f}s"
            self._line(f"END chunk {event.index + 1}/{n}: {what}")
        elif isinstance(event, ChunkFailed) and not event.cancelled and not self.run.fatal:
            # A refused run is reported once, at the end, not once per chunk.
            self._line(f"FAIL chunk {event.index + 1}/{n}: {event.reason}")

    def _line(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K")
        if self.prefix:
            lead = "mkflash-tui: " if text.startswith("mkflash-tui: ") else ""
            text = lead + self.prefix + text[len(lead):]
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        counts = self.run.counts()
        done = counts["done"]  # cancelled and failed chunks are not done, and are said apart
        width = 28
        filled = int(width * done / max(1, self.total))
        bar = "█" * filled + "░" * (width - filled)
        failed = f" · {counts['failed']} failed" if counts["failed"] else ""
        cancelled = f" · {counts['cancelled']} cancelled" if counts["cancelled"] else ""
        self.stream.write(
            f"\r\x1b[K{bar} {done}/{self.total} chunks · {fmt.plural(len(self.run.cards()), 'card')}{failed}"
            f"{cancelled} · {now - self._started:.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def confirm_spend(job: Job, stderr: TextIO) -> int | None:
    """Apply ``--max-cost`` and ask before an expensive run; returns an exit code to stop with, or None."""
    settings, estimate = job.settings, job.estimate
    price = job.price
    if not settings.online:
        return None
    if job.over_budget:
        stderr.write(
            f"mkflash-tui: the estimated cost ${price:.2f} is above --max-cost ${settings.max_cost:.2f}; "
            "nothing was sent.\n"
        )
        return EXIT_USAGE
    if settings.yes or settings.max_cost is not None or price is None or price <= CONFIRM_ABOVE_USD:
        return None
    question = (
        f"This run sends {fmt.plural(estimate.chunks, 'chunk')} (~{estimate.input_tokens:,} input tokens) to "
        f"{settings.model}, estimated ${price:.2f}" + (f" through the batch engine, answers within 24 h (live: "
        f"${estimate.cost_usd:.2f}, {job.describe_time() or 'minutes'})." if settings.batch else ".")
    )
    if not sys.stdin.isatty() or settings.input == "-":
        stderr.write(f"mkflash-tui: {question} Pass --yes or --max-cost to start it.\n")
        return EXIT_USAGE
    stderr.write(question + " Start? [y/N] ")
    stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        stderr.write("mkflash-tui: not started; nothing was sent.\n")
        return EXIT_USAGE
    return None


def dry_run_report(job: Job) -> dict:
    est = job.estimate
    changes = job.changes
    return {
        "changes": None
        if changes is None
        else {
            "unchanged": changes.unchanged,
            "changed": changes.changed,
            "removed": changes.removed,
            "pending": changes.pending,
            "summary_kept": changes.summary_kept,
        },
        "dry_run": True,
        "provider": job.settings.provider,
        "preset": job.settings.preset,
        "model": job.settings.model if job.settings.online else "offline",
        "encoding": job.encoding_name,
        "title": job.document.title,
        "chunks": est.chunks,
        "cards_planned": est.cards,
        "input_tokens": est.input_tokens,
        "estimated_output_tokens": est.output_tokens,
        "estimated_cost_usd": est.cost_usd,
        "estimated_batch_cost_usd": est.batch_cost_usd,
        "batch": job.settings.batch,
        "estimated_seconds": None if (t := job.estimated_seconds()) is None else round(t, 1),
        "in_flight": job.slots if job.settings.online else None,
        "chunk_tokens": job.settings.chunk_tokens,
        "server_info": job.server.facts() if job.server else None,
        "fitted": job.fitted,
        "output": str(job.output),
    }


async def _drive(run: Run, interrupted: list[bool], desk=None, refused: list[str] | None = None) -> None:
    """``run`` to its end (Ctrl-C cancels it; a second one stops at once); with ``desk`` (``--batch``), asked
    first whether the server has a batch engine (``refused`` gets the sentence when it has none)."""
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        if interrupted[0]:
            os._exit(EXIT_INTERRUPTED)  # a second Ctrl-C: stop at once
        interrupted[0] = True
        run.cancel()

    # asyncio signal handlers exist on Unix, in the main thread only; elsewhere Ctrl-C cancels the main task.
    handle_signals = sys.platform != "win32" and threading.current_thread() is threading.main_thread()
    if handle_signals:
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        if not await batch_engine_there(desk, refused):
            return
        await run.run()
    except asyncio.CancelledError:
        interrupted[0] = True
    finally:
        if desk is not None:
            desk.close()
        if handle_signals:
            loop.remove_signal_handler(signal.SIGINT)
        await run.aclose()


async def batch_engine_there(desk, refused: list[str] | None) -> bool:
    """With a desk (--batch): whether the server has a batch engine, asked before anything is sent; ``refused``
    gets the sentence when it has none."""
    if desk is None:
        return True
    from .core.batch import NoBatchEngine

    try:
        await desk.check()
    except NoBatchEngine as exc:
        if refused is not None:
            refused.append(str(exc))
        return False
    return True


def describe_detached(desk, session_id: str) -> str | None:
    """What a ``--batch`` run left running at the provider when it stopped early, in one sentence (None: none)."""
    left = desk.open_batches if desk is not None else []
    if not left:
        return None
    requests = sum(len(b.lines) for b in left)
    batches = "1 batch" if len(left) == 1 else f"{len(left)} batches"
    return (f"detached: {batches} ({fmt.plural(requests, 'request')}) still run at {desk.provider.where}; run the "
            f"same command again to collect the answers (mkflash-tui sessions cancel {session_id} cancels "
            "them)")  # fmt: skip


def write_timeline(timeline: Timeline, path: Path, title: str, stderr: TextIO) -> bool:
    """Write ``timeline`` to ``path`` (an .html page, else an SVG) and say so; False (said) when it cannot."""
    picture = timeline.html(title) if path.suffix.lower() == ".html" else timeline.svg(title)
    try:
        path.write_text(picture, encoding="utf-8")
    except OSError as exc:
        stderr.write(f"mkflash-tui: could not write {path}: {exc.strerror or exc}\n")
        return False
    stderr.write(f"mkflash-tui: the run's calls drawn in {path}\n")
    return True


def stop_early(job: Job | None, reason: str, code: int, stdout: TextIO, stderr: TextIO | None, *,
               as_json: bool | None = None) -> int:  # fmt: skip
    """End before anything was sent: one sentence on stderr (unless said already) and, with ``--json``, the
    report all the same."""
    if stderr is not None:
        stderr.write(f"mkflash-tui: {reason}\n")
    if as_json if as_json is not None else (job is not None and job.settings.json):
        stdout.write(json.dumps({"exit_code": code, "error": reason, "chunks": len(job.chunks) if job else None,
                                 "cards": 0, "requests": 0, "output": None}) + "\n")  # fmt: skip
    return code


def run_headless(job: Job, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Run ``job`` to the end, write the deck, report; returns the process exit code."""
    settings = job.settings
    write_file = not settings.to_anki or settings.output is not None  # --to-anki alone writes no file
    try:
        store = open_store(settings.data_dir, on_wait=lambda note: stderr.write(f"mkflash-tui: {note}\n"))
        job.continue_from(store)
        job.learn_speed(store)
        ours = job.previous is not None and store.written_by(job.output) == job.previous.session_id
    except StoreError as exc:
        return stop_early(job, f"{exc}; nothing was sent.", EXIT_USAGE, stdout, stderr)
    if not settings.dry_run and write_file:
        try:
            check_output_path(job.output, force=settings.force, ours=ours)
        except ExportError as exc:
            store.close()
            return stop_early(job, str(exc), EXIT_USAGE, stdout, stderr)
    if settings.dry_run:
        store.close()
        report = dry_run_report(job)
        if settings.json:
            stdout.write(json.dumps(report) + "\n")
        else:
            cost = "unknown" if report["estimated_cost_usd"] is None else f"${report['estimated_cost_usd']:.4f}"
            if settings.batch and report["estimated_batch_cost_usd"] is not None:
                cost = f"${report['estimated_batch_cost_usd']:.4f} through the batch engine (live: {cost})"
            changes = f" (continuing its session: {job.changes.describe()})" if job.changes else ""
            time_note = f", {job.describe_time()}" if job.describe_time() else ""
            for note in job.fitted:
                stdout.write(f"{note}\n")
            stdout.write(
                f"{job.document.title}: {fmt.plural(report['chunks'], 'chunk')} to send{changes}, "
                f"~{report['input_tokens']:,} input tokens, ~{fmt.plural(report['cards_planned'], 'card')}, estimated "
                f"cost {cost} with {report['model']}{time_note}. Nothing was sent.\n"
            )
        return EXIT_OK
    against = None
    if settings.against:  # read before anything is sent: a file that cannot be read stops here
        from .core.known import KnownError

        try:
            against = read_known(settings)
        except KnownError as exc:
            store.close()
            return stop_early(job, f"{exc}; nothing was sent.", EXIT_USAGE, stdout, stderr)
    # The session's batches still running at the provider are taken up, --batch or not (priced as such).
    taken_up = take_up_batches(settings, store, job.previous.session_id) if job.previous and not settings.fresh \
        else None  # fmt: skip
    stop = confirm_spend(job, stderr)
    if stop is not None:
        store.close()
        return stop_early(job, "not started; nothing was sent", stop, stdout, None)
    try:
        session_id, resumed = job.open_session(store)
    except StoreError as exc:
        return stop_early(job, f"{exc}; nothing was sent.", EXIT_USAGE, stdout, stderr)
    for note in job.fitted:
        stderr.write(f"mkflash-tui: {note}\n")
    how = f"continuing session {session_id}: {job.changes.describe()}" if resumed and job.changes else (
        f"new session {session_id}")  # fmt: skip
    stderr.write(f"mkflash-tui: {job.document.title}: {fmt.plural(len(job.chunks), 'chunk')} with "
                 f"{settings.describe_provider()} ({how})\n")  # fmt: skip
    # No per-token display here, so save the per-token parsing.
    desk = None
    if taken_up:
        stderr.write(f"mkflash-tui: {taken_up}\n")
    if settings.batch:
        from .job import batch_desk, batch_run

        def desk_for(provider):
            nonlocal desk
            desk = batch_desk(settings, provider, store, session_id, emit=lambda event: progress(event))
            return desk

        run = batch_run(job, store, session_id, desk_for)
        desk.now = run.now
    else:
        run = job.make_run(stream=False, store=store, session_id=session_id)
    timeline = None
    if settings.timeline is not None:
        from .core.timeline import Timeline

        timeline = Timeline(settings.concurrency)
        run.subscribe(timeline.add)
    progress = Progress(run, stderr, live=stderr.isatty())
    run.subscribe(progress)
    interrupted = [False]
    refused: list[str] = []
    asyncio.run(_drive(run, interrupted, desk, refused))
    progress.close()
    if refused:
        forget_unused_session(store, session_id, run, resumed=resumed)
        store.close()
        return stop_early(job, refused[0] + "; nothing was sent.", EXIT_USAGE, stdout, stderr)
    detached = describe_detached(desk, session_id)

    try:
        decisions = store.decisions(session_id)
    except StoreError:
        decisions = {}
    cards = apply_decisions(run.cards(), decisions)
    in_collection = None
    if cards and (settings.against or settings.to_anki or settings.skip_known):
        read = against or read_known(settings)
        index = known_index(read, store, cards) if read is not None else None
        if index is not None:
            in_collection = index.mark(cards)
            if in_collection:
                what = "left out" if settings.skip_known else "kept, marked (--skip-known leaves them out)"
                stderr.write(f"mkflash-tui: {fmt.plural(in_collection, 'card')} repeat notes already in your "
                             f"collection ({fmt.plural(len(index), 'note')} compared): {what}\n")  # fmt: skip
            if settings.skip_known:
                cards = [c for c in cards if not c.known]
    if run.repeats:
        stderr.write(f"mkflash-tui: {fmt.plural(run.repeats, 'chunk')} repeated the text of another chunk: "
                     "answered once, no calls for the repeats\n")  # fmt: skip
    if run.from_cache:
        stderr.write(f"mkflash-tui: {run.from_cache} of {fmt.plural(len(run.chunks), 'chunk')} answered from earlier "
                     "runs (no calls; --fresh asks again)\n")  # fmt: skip
    flagged = sum(1 for c in cards if c.flags)
    if flagged:
        stderr.write(f"mkflash-tui: quality gate: {fmt.plural(flagged, 'card')} kept with flags"
                     + ("" if settings.drop_flagged else " (--drop-flagged leaves them out)") + "\n")  # fmt: skip
    stale = sum(1 for c in cards if c.stale)
    if stale:
        stderr.write(f"mkflash-tui: {fmt.plural(stale, 'card')} made of text the source no longer has: kept, "
                     "tagged mkflash::stale (delete them in Review, or in Anki by that tag)\n")  # fmt: skip
    result = None
    export_error = None
    failures = run.failures()
    all_known = bool(settings.skip_known and in_collection and not cards)
    nothing_usable = (not cards and not all_known and not run.fatal and not run.halted and not failures
                      and not interrupted[0])  # fmt: skip
    if all_known:
        stderr.write("mkflash-tui: your collection has every card already (--skip-known): no deck was written and "
                     "nothing was sent to Anki.\n")  # fmt: skip
    elif nothing_usable and settings.online and run.stats.requests:
        stderr.write(f"mkflash-tui: {settings.model} made no cards from any of the {len(run.chunks)} chunks of "
                     f"{job.document.name}, so no deck was written.\n")  # fmt: skip
    elif nothing_usable:
        stderr.write(f"mkflash-tui: {job.document.name} has nothing to make cards from, so no deck was written.\n")
    elif not cards and not run.fatal and not all_known:
        stderr.write("mkflash-tui: no cards were made, so no deck was written.\n")
    if cards and write_file:
        try:
            result = export_cards(cards, job.output, job.export_options(title=run.title, force=settings.force or ours),
                                  stamps=known_stamps(store, cards))  # fmt: skip
        except (ExportError, OSError) as exc:
            export_error = str(exc)
    anki: dict | None = None
    if cards and settings.to_anki:
        if result:
            try:  # the file's stamps first: the push then sends the same modification times
                store.save_note_stamps(result.stamps)
            except StoreError:
                pass
        try:
            pushed = send_to_anki(cards, job.export_options(title=run.title), store, url=settings.anki_url,
                                  key=settings.anki_key, prune=settings.prune, readd=settings.readd)  # fmt: skip
        except AnkiConnectError as exc:
            anki = {"error": str(exc)}
            if settings.demo:
                stderr.write(f"mkflash-tui: {exc} The demo makes its cards anew on every run: run it again once "
                             "Anki is up.\n")  # fmt: skip
            else:
                stderr.write(f"mkflash-tui: {exc} The cards are kept in this session: run the same command again "
                             "to send them.\n")  # fmt: skip
        else:
            anki = pushed.as_dict()
            stderr.write(f"mkflash-tui: sent to Anki at {settings.anki_url}: {pushed.describe()}\n")
            for reason in pushed.reasons[:10]:
                stderr.write(f"  {reason}\n")
    code = EXIT_OK
    if run.fatal:
        stderr.write(f"mkflash-tui: stopped: {run.fatal}\n")
        code = EXIT_REFUSED
    elif run.halted:
        stderr.write(f"mkflash-tui: stopped sending: {run.halted}; the deck holds the cards made until then, and "
                     "what was saved before stays: once the store can be written, run the same command again to go "
                     "on.\n")  # fmt: skip
        code = EXIT_PARTIAL
    elif interrupted[0] or run.cancelled:
        code = EXIT_INTERRUPTED
    elif failures:
        code = EXIT_PARTIAL
    elif nothing_usable:
        code = EXIT_USAGE
    if export_error:
        stderr.write(f"mkflash-tui: could not write the deck: {export_error}\n")
        code = code or EXIT_USAGE
    if anki is not None and "error" in anki:
        code = code or EXIT_REFUSED
    if forget_unused_session(store, session_id, run, resumed=resumed):
        session_id = None  # nothing was sent: no session is left behind
    try:
        store.set_cards(session_id, len(cards))
        if result:
            store.save_note_stamps(result.stamps)
            store.mark_exported(session_id, result.path)
    except StoreError:
        pass  # the deck is written; only the sessions list's count and "exported" mark are missing
    tally = run.tally()
    made = f"{fmt.plural(tally['made'], 'card')} made"
    left = [f"{n} {what}" for n, what in ((tally["repeats"], "repeats of earlier cards"),
                                           (tally["broken"], "broken")) if n]  # fmt: skip
    deleted = tally["kept"] - (len(cards) - stale)
    if deleted > 0:
        left.append(f"{deleted} deleted in Review")
    accounting = f"{made}" + (f", left out: {', '.join(left)}" if left else "")
    if stale:
        accounting += f"; {stale} stale"
    counts = run.counts()
    if result and (interrupted[0] or run.cancelled) and not run.fatal:
        stderr.write(f"mkflash-tui: interrupted: {counts['done']} of {len(run.chunks)} chunks done, "
                     f"{fmt.plural(result.notes, 'card')} written to {result.path} ({accounting}); run the same "
                     "command again to continue.\n")  # fmt: skip
    elif detached:
        stderr.write(f"mkflash-tui: {counts['done']} of {len(run.chunks)} chunks done; {detached}.\n")
    elif interrupted[0] or run.cancelled:
        stderr.write(f"mkflash-tui: interrupted: {counts['done']} of {len(run.chunks)} chunks done; run the same "
                     "command again to continue.\n")  # fmt: skip
    elif result:
        stderr.write(f"mkflash-tui: wrote {fmt.plural(result.notes, 'note')} to {result.path} ({accounting})\n")
    store.close()
    if timeline is not None and settings.timeline is not None and not write_timeline(
            timeline, settings.timeline, job.document.title, stderr):  # fmt: skip
        code = code or EXIT_USAGE
    trimmed = [s for s in run.status.values() if s.trimmed]
    for status in trimmed[:20]:
        stderr.write(f"mkflash-tui: chunk {status.chunk.index + 1}: {'; '.join(status.trimmed)}\n")
    if failures and not run.fatal:
        failed = [f for f in failures if f.state is ChunkState.FAILED]
        if failed:
            stderr.write(f"mkflash-tui: {len(failed)} of {len(run.chunks)} chunks failed:\n")
            for status in failed[:20]:
                stderr.write(f"  chunk {status.chunk.index + 1}: {status.reason}\n")
    if settings.json:
        usage = run.stats.usage
        stdout.write(
            json.dumps(
                {
                    "provider": settings.provider,
                    "preset": settings.preset,
                    "model": settings.model if settings.online else "offline",
                    "language": settings.language if settings.online else None,
                    "style": settings.style if settings.online else DEFAULT_STYLE,
                    "title": job.document.title,
                    "deck": job.settings.deck or run.title,
                    "anki": anki,
                    "chunks": len(run.chunks),
                    "chunks_with_cards": sum(1 for s in run.status.values() if s.cards),
                    "cards": len(cards),
                    "cards_made": tally["made"],
                    "left_out": {"repeats": tally["repeats"], "broken": tally["broken"]},
                    "failed_chunks": len(failures),
                    "failures": [
                        {"chunk": f.chunk.index + 1, "reason": f.reason, "raw_output": f.raw_output} for f in failures
                    ],
                    "trimmed": [{"chunk": t.chunk.index + 1, "what": t.trimmed} for t in trimmed],
                    "halted": run.halted,
                    "requests": run.stats.requests,
                    "session": session_id,
                    "resumed": resumed,
                    "from_cache": run.from_cache,
                    "repeats": run.repeats,
                    "changes": dry_run_report(job)["changes"],
                    "quality": run.quality,
                    "stale_cards": stale,
                    "in_collection": in_collection,
                    "retries": run.stats.retries,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "estimated_cost_usd": job.estimate.cost_usd,
                    "cost_usd": spent_usd(settings.model, usage, run.stats.batch_usage, settings.base_url)
                    if settings.online else 0.0,
                    "batches": None if desk is None else {
                        "submitted": desk.submitted, "taken_up": desk.adopted,
                        "still_running": [b.batch_id for b in desk.open_batches],
                        "prompt_tokens": run.stats.batch_usage.prompt_tokens,
                        "completion_tokens": run.stats.batch_usage.completion_tokens,
                    },
                    "server": run.server_report(),
                    "server_info": job.server.facts() if job.server else None,
                    "fitted": job.fitted,
                    "max_concurrency_reached": run.stats.max_concurrency_reached,
                    "final_concurrency": run.limiter.limit,
                    "wall_seconds": round(process_seconds(), 3),
                    "output": str(result.path) if result else None,
                    "exit_code": code,
                    "fatal": run.fatal,
                }
            )
            + "\n"
        )
    return code
