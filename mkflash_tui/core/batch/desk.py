"""The desk of one job's batches: lines gathered into input files, uploaded and started as batches (each step
written down first), polled with a growing wait, and each ended batch's answers handed to the requests waiting
for them; batches written down by an earlier run are taken up first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..models import Event, Notice
from ..providers.base import TransientError
from ..store import BatchRecord, cache_key
from ..store.batches import FINAL
from .files import ENDPOINT, BatchLimits, batch_line, read_results, split_lines, tokens
from .server import batches_at_server, content, delete_file, delete_orphans

WINDOW = "24h"
FIRST_POLL = 5.0  # seconds before a batch is first asked about; then each wait is longer by half, up to
POLL_CAP = 60.0


@dataclass(frozen=True, slots=True)
class BatchProgress(Event):
    """A batch's state as last seen: ``status`` is the server's; ``since``: seconds since it was submitted."""

    batch: str = ""
    status: str = ""
    completed: int = 0
    failed: int = 0
    total: int = 0
    since: float = 0.0

    def describe(self) -> str:
        minutes = max(0, int(self.since // 60))
        age = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min" if minutes else (
            f"{int(self.since)} s")  # fmt: skip
        return (f"batch {self.batch}: {self.status.replace('_', ' ')}, {self.completed:,} of {self.total:,} done"
                + (f", {self.failed:,} failed" if self.failed else "") + f", submitted {age} ago")  # fmt: skip


class BatchMiss(Exception):
    """A line the batch did not answer (its error file's reason, expiry, cancellation): it goes live."""


@dataclass(slots=True)
class _Line:
    custom_id: str
    key: str
    body: dict[str, Any]
    future: asyncio.Future = field(repr=False)


@dataclass(slots=True)
class _Batch:
    record: BatchRecord
    waiting: dict[str, asyncio.Future] = field(default_factory=dict)  # custom_id -> its request's future
    keys: dict[str, str] = field(default_factory=dict)
    results: dict[str, bytes] | None = None  # custom_id -> the response body, once ended
    lines: list[_Line] = field(default_factory=list)  # this run's lines in it (a batch taken up has none)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    misses: dict[str, str] = field(default_factory=dict)  # custom_id -> why it was not answered


class BatchDesk:
    """The batches of one job (see the module's docstring). ``provider`` does the calls (``batch_api``);
    ``store`` keeps every step; ``job`` names the job in file names and metadata."""

    def __init__(self, provider: Any, store: Any, job: str, *, limits: BatchLimits = BatchLimits(),
                 first_poll: float = FIRST_POLL, poll_cap: float = POLL_CAP, gather: float = 0.2,
                 emit: Callable[[Event], None] | None = None, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:  # fmt: skip
        self.provider = provider
        self.store = store
        self.job = job
        self.limits = limits
        self.first_poll = first_poll
        self.poll_cap = max(first_poll, poll_cap)
        self.gather = gather
        self.emit = emit or (lambda event: None)  # told of every batch's progress (a face may set it later)
        self.now = now  # the run's clock, for the events' times
        self._sleep = sleep
        self.server = f"{provider.where} {provider.model}"
        self._pending: list[_Line] = []
        self._batches: dict[str, _Batch] = {}  # by input file name
        self._by_line: dict[str, _Batch] = {}  # custom_id -> the batch that holds it (this run's or taken up)
        self._flush: asyncio.Task | None = None
        self._polls: set[asyncio.Task] = set()
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._count = 0
        self.submitted = 0  # batches this run created
        self.adopted = 0  # batches found again (written down, or found at the server)

    # ------------------------------------------------------------------ what the runs ask

    async def answer(self, custom_id: str, body: dict[str, Any]) -> bytes:
        """The response body (a chat completion) for the line ``custom_id`` with ``body``: from a batch taken up
        again when it holds this very request, else from a new one. Raises BatchMiss when no batch answers it."""
        await self.start()
        key = cache_key("batch", body)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        batch = self._by_line.get(custom_id)
        held = batch is not None and batch.keys.get(custom_id) == key and batch.record.status != "failed"
        if batch is not None and held and custom_id in batch.misses:
            raise BatchMiss(batch.misses[custom_id])  # a batch ran it and gave no answer: it goes live
        if batch is not None and held:
            if batch.results is not None:
                self._settle_one(batch, custom_id, future)
            else:
                batch.waiting[custom_id] = future
        else:
            self._pending.append(_Line(custom_id, key, body, future))
            if self._flush is None or self._flush.done():
                self._flush = asyncio.create_task(self._submit_soon())
        return await future

    async def check(self) -> None:
        """Raises NoBatchEngine when the server has no batch engine (asked before anything is sent)."""
        await self.provider.batch_api(lambda client: client.batches.list(limit=1))

    async def start(self) -> None:
        """Take up the job's batches written down by earlier runs (once)."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await self._take_up()
            self._started = True

    @property
    def open_batches(self) -> list[BatchRecord]:
        """This job's batches still running at the provider, as last seen."""
        return [b.record for b in self._batches.values() if not b.record.final and b.record.batch_id]

    def close(self) -> None:
        """Stop polling (the batches go on at the provider; a later run takes them up)."""
        for task in [*self._polls, *([self._flush] if self._flush else [])]:
            task.cancel()

    # ------------------------------------------------------------------ taking up earlier runs' batches

    async def _take_up(self) -> None:
        records = [r for r in self.store.batches(self.job) if r.server == self.server]
        unfinished = any(r.batch_id is None for r in records)  # a run died before writing down all of a batch
        found: dict[str, Any] | None = None
        for record in records:
            if record.batch_id is None and record.file_id is not None:
                if found is None:
                    found = await batches_at_server(self.provider, self.job, min(r.created for r in records))
                batch = found.get(record.file_id)
                if batch is None:  # never created: nothing was paid; the run sends its lines anew
                    await delete_file(self.provider, record.file_id)
                    self.store.remove_batch(record.name)
                    continue
                self.store.update_batch(record.name, batch_id=batch.id, status=batch.status)
                record = self._reread(record.name)
            if record.batch_id is None:  # died before the upload was written down
                self.store.remove_batch(record.name)
                continue
            self.adopted += 1
            taken = _Batch(record, keys=dict(record.lines))
            self._batches[record.name] = taken
            for custom_id in record.lines:
                self._by_line[custom_id] = taken
            if record.final and record.output is not None:
                self._read_results(taken)
            else:
                self._poll(taken)
        self._count = len(records)
        if unfinished:
            kept = {r.file_id for r in self.store.batches(self.job) if r.file_id}
            await delete_orphans(self.provider, self.job, kept)

    def _reread(self, name: str) -> BatchRecord:
        return next(r for r in self.store.batches(self.job) if r.name == name)

    # ------------------------------------------------------------------ submitting

    async def _submit_soon(self) -> None:
        """Gather the lines sent together (a run sends all its chunks at once), then submit them."""
        while True:
            count = len(self._pending)
            await asyncio.sleep(self.gather)
            if len(self._pending) == count:
                break
        lines, self._pending = self._pending, []
        try:
            await self._submit(lines)
        except BaseException as exc:
            for line in lines:
                if not line.future.done() and isinstance(exc, Exception):
                    line.future.set_exception(exc)
                elif not line.future.done():
                    line.future.cancel()
            if not isinstance(exc, Exception):
                raise

    async def _submit(self, lines: list[_Line]) -> None:
        encoded = [(line.custom_id, batch_line(line.custom_id, line.body), tokens(line.body)) for line in lines]
        for group in split_lines(encoded, self.limits):
            members = [lines[i] for i in group]
            data = b"".join(encoded[i][1] for i in group)
            await self._submit_file(members, data)

    async def _submit_file(self, lines: list[_Line], data: bytes) -> None:
        self._count += 1
        name = f"mkflash-{self.job}-{self._count}-{int(time.time())}.jsonl"
        self.store.add_batch(name, self.job, self.server, {line.custom_id: line.key for line in lines})
        record = self._reread(name)
        batch = _Batch(record, waiting={line.custom_id: line.future for line in lines},
                       keys={line.custom_id: line.key for line in lines}, lines=lines)  # fmt: skip
        self._batches[name] = batch
        for line in lines:
            self._by_line[line.custom_id] = batch
        uploaded = await self.provider.batch_api(
            lambda client: client.files.create(file=(name, data, "application/jsonl"), purpose="batch"))
        self.store.update_batch(name, file_id=uploaded.id)
        metadata = {"mkflash_job": self.job, "mkflash_file": name[:512]}
        try:
            created = await self.provider.batch_api(lambda client: client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window=WINDOW, metadata=metadata))
        except TransientError:
            # The answer was lost, not necessarily the batch: one made all the same is taken, not made twice.
            created = (await batches_at_server(self.provider, self.job, record.created)).get(uploaded.id)
            if created is None:
                raise
        self.record_batch_id(name, created.id, created.status)
        self.submitted += 1
        batch.record = self._reread(name)
        requests = f"{len(lines):,} request{'' if len(lines) == 1 else 's'}"
        self.emit(Notice(self.now(), f"batch {created.id}: {requests} submitted ({len(data):,} bytes); answers "
                         "within 24 h at half the price"))  # fmt: skip
        self._poll(batch)

    def record_batch_id(self, name: str, batch_id: str, status: str) -> None:
        """Write the batch's id down (the first thing done once it exists)."""
        self.store.update_batch(name, batch_id=batch_id, status=status)

    # ------------------------------------------------------------------ polling

    def _poll(self, batch: _Batch) -> None:
        task = asyncio.create_task(self._polling(batch))
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)

    async def _polling(self, batch: _Batch) -> None:
        wait = self.first_poll
        try:
            while True:
                await self._sleep(wait)
                wait = min(self.poll_cap, wait * 1.5)
                try:
                    seen = await self.provider.batch_api(lambda client: client.batches.retrieve(batch.record.batch_id))
                except TransientError:
                    continue  # the network or the server for a moment: ask again later
                counts = seen.request_counts
                as_dict = {"total": counts.total, "completed": counts.completed, "failed": counts.failed} if counts \
                    else {}  # fmt: skip
                if seen.status != batch.record.status or as_dict != batch.record.counts:
                    self.store.update_batch(batch.record.name, status=seen.status, counts=as_dict)
                    batch.record = self._reread(batch.record.name)
                    self._progress(batch, seen.status)
                if seen.status in FINAL:
                    await self._collect(batch, seen)
                    return
        except Exception as exc:
            # Whatever stops the polling (a revoked key, a store that cannot be written): its requests go live and
            # meet it there, rather than wait for ever.
            self._miss_all(batch, str(exc))
            for line in batch.lines:
                if not line.future.done():
                    line.future.set_exception(BatchMiss(str(exc)))

    async def _collect(self, batch: _Batch, seen: Any) -> None:
        """Keep the ended batch's result files, then answer its lines."""
        output = await content(self.provider, seen.output_file_id)
        errors = await content(self.provider, seen.error_file_id)
        reason = ""
        if seen.status == "failed":
            reason = "; ".join(f"{e.message}" + (f" (line {e.line})" if e.line else "")
                               for e in (seen.errors.data or [] if seen.errors else []))[:500]  # fmt: skip
        self.store.update_batch(batch.record.name, output=output, errors=errors, error=reason)
        batch.record = self._reread(batch.record.name)
        if seen.status == "failed" and len(batch.lines) > 1:
            await self._split(batch, reason)
            return
        if seen.status == "failed":
            self.emit(Notice(self.now(), f"batch {batch.record.batch_id} failed: {reason or 'no reason given'}; "
                              "sending its request live"))  # fmt: skip
        self._read_results(batch)

    async def _split(self, batch: _Batch, reason: str) -> None:
        """A batch the server refused as a whole (over a limit it does not report, a line it could not take):
        its lines again in two halves, once this job's other batches have ended (the enqueued-token limit counts
        them)."""
        batch.ended.set()
        half = len(batch.lines) // 2
        self.emit(Notice(self.now(), f"batch {batch.record.batch_id} failed: {reason or 'no reason given'}; "
                          f"sending its {len(batch.lines):,} requests again in two batches"))  # fmt: skip
        for other in list(self._batches.values()):
            if other is not batch and not other.ended.is_set() and other.record.batch_id:
                await other.ended.wait()
        for part in (batch.lines[:half], batch.lines[half:]):
            await self._submit(part)

    def _read_results(self, batch: _Batch) -> None:
        results, misses = read_results(batch.record)
        batch.misses.update(misses)
        batch.results = results
        for custom_id, future in list(batch.waiting.items()):
            self._settle_one(batch, custom_id, future)
        batch.waiting.clear()
        batch.ended.set()

    def _settle_one(self, batch: _Batch, custom_id: str, future: asyncio.Future) -> None:
        if future.done():
            return
        assert batch.results is not None
        if custom_id in batch.results:
            future.set_result(batch.results[custom_id])
        else:
            future.set_exception(BatchMiss(batch.misses.get(custom_id, "the batch did not answer it")))

    def _miss_all(self, batch: _Batch, reason: str) -> None:
        for future in batch.waiting.values():
            if not future.done():
                future.set_exception(BatchMiss(reason))
        batch.waiting.clear()
        batch.ended.set()

    def _progress(self, batch: _Batch, status: str) -> None:
        counts = batch.record.counts
        self.emit(BatchProgress(self.now(), batch=batch.record.batch_id or batch.record.name, status=status,
                                 completed=counts.get("completed", 0), failed=counts.get("failed", 0),
                                 total=counts.get("total", len(batch.record.lines)),
                                 since=max(0.0, time.time() - batch.record.created)))  # fmt: skip
