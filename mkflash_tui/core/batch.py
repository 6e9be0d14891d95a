"""Batch mode: a provider's own batch engine (OpenAI's and Groq's ``/v1/files`` + ``/v1/batches``) behind the
transport's door, for large jobs at half the price.

A run's summary goes live; each whole chunk's request becomes a line of a JSONL input file instead of a call.
The ``BatchDesk`` (one per job, shared by its documents' runs) gathers the lines sent together, splits them at the
provider's limits, uploads each file, starts a batch on it, polls the batches (backing off) and, as each one ends,
keeps its result files in the store and answers every line by its ``custom_id`` (``session:chunk``; the output's
order is not the input's). An answer then takes exactly the path a live one takes: parsing, repair, the gate, the
store, events. Repairs and split-in-halves calls go live; a line in the error file, or one lost to the batch's
expiry or cancellation, is sent again live.

Never paying twice: the input file's name (which carries the job's id) is written down before the upload, its id
before the batch is created, the batch's id as soon as it exists, and the batch carries the job in its metadata.
A run that starts again (after Ctrl+C, a crash, a closed laptop) takes up the batches it finds written down; one
that died between creating a batch and writing its id finds it by paging ``batches.list`` back to the job's first
submission; input files of the job that no batch took are deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .models import Event, Notice, Usage
from .providers.base import GenerationResult, NoBatchEngine, RunRefused, TransientError
from .store import BatchRecord, cache_key
from .store.batches import FINAL
from .transport import Answer, LiveTransport, Request

__all__ = ["BatchDesk", "BatchLimits", "BatchMiss", "BatchProgress", "BatchTransport", "NoBatchEngine"]

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
FIRST_POLL = 5.0  # seconds before a batch is first asked about; then each wait is longer by half, up to
POLL_CAP = 60.0
ADOPT_SLACK = 300.0  # seconds of clock difference allowed when paging back to the job's first submission


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """What one input file may hold at a provider's batch engine."""

    requests: int = 50_000
    bytes: int = 200 * 2**20
    tokens: int | None = None  # the enqueued-token limit per model (no endpoint reports it: --batch-token-limit)


LIMITS = {"openai": BatchLimits(), "groq": BatchLimits(requests=50_000, bytes=200 * 2**20)}


@dataclass(frozen=True, slots=True)
class BatchProgress(Event):
    """A batch's state as last seen: ``status`` is the server's, or "submitting"; ``since`` its submission."""

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


def split_lines(lines: list[tuple[str, bytes, int]], limits: BatchLimits) -> list[list[int]]:
    """Indices of ``lines`` ((custom_id, encoded line, tokens)) grouped into input files, in order, each within
    ``limits``' requests, bytes and tokens (a line over a limit on its own still gets a file of its own)."""
    files: list[list[int]] = []
    current: list[int] = []
    size = tokens = 0
    for i, (_, data, cost) in enumerate(lines):
        over = (len(current) >= limits.requests or size + len(data) > limits.bytes
                or (limits.tokens is not None and tokens + cost > limits.tokens))  # fmt: skip
        if current and over:
            files.append(current)
            current, size, tokens = [], 0, 0
        current.append(i)
        size += len(data)
        tokens += cost
    if current:
        files.append(current)
    return files


def batch_line(custom_id: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body},
                      ensure_ascii=False).encode() + b"\n"  # fmt: skip


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
        self._emit = emit or (lambda event: None)
        self._now = now
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
        self.usage = Usage()  # the tokens batches answered with (priced at the batch discount)

    # ------------------------------------------------------------------ what the runs ask

    async def answer(self, custom_id: str, body: dict[str, Any]) -> bytes:
        """The response body (a chat completion) for the line ``custom_id`` with ``body``: from a batch taken up
        again when it holds this very request, else from a new one. Raises BatchMiss when no batch answers it."""
        await self.start()
        key = cache_key("batch", body)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        batch = self._by_line.get(custom_id)
        held = batch is not None and batch.keys.get(custom_id) == key and custom_id not in batch.misses
        if batch is not None and held and batch.record.status != "failed":
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

    def usage_in_batches(self, usage: Usage) -> None:
        self.usage += usage

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
                    found = await self._batches_at_server(min(r.created for r in records))
                batch = found.get(record.file_id)
                if batch is None:  # never created: nothing was paid; the run sends its lines anew
                    await self._delete_file(record.file_id)
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
            await self._delete_orphans({r.file_id for r in self.store.batches(self.job) if r.file_id})

    async def _batches_at_server(self, since: float) -> dict[str, Any]:
        """The job's batches at the server by input file id, paging back to the job's first submission
        (``batches.list`` has no metadata filter; it lists the newest first)."""
        found: dict[str, Any] = {}

        async def page_back(client: Any) -> None:
            after = None
            while True:
                page = await client.batches.list(limit=100, **({"after": after} if after else {}))
                items = list(page.data)
                for batch in items:
                    if (batch.metadata or {}).get("mkflash_job") == self.job:
                        found.setdefault(batch.input_file_id, batch)
                if not items or not page.has_more or items[-1].created_at < since - ADOPT_SLACK:
                    return
                after = items[-1].id

        await self.provider.batch_api(page_back)
        return found

    async def _delete_orphans(self, kept: set[str]) -> None:
        """Input files of this job that no batch written down uses (an upload whose id was never written)."""
        prefix = f"mkflash-{self.job}-"

        async def listing(client: Any) -> list[str]:
            ids = []
            async for item in client.files.list(purpose="batch"):
                if (item.filename or "").startswith(prefix) and item.id not in kept:
                    ids.append(item.id)
            return ids

        try:
            orphans = await self.provider.batch_api(listing)
        except (TransientError, RunRefused):
            return  # a server that cannot list files: nothing to tidy
        for file_id in orphans:
            await self._delete_file(file_id)

    async def _delete_file(self, file_id: str) -> None:
        try:
            await self.provider.batch_api(lambda client: client.files.delete(file_id))
        except (TransientError, RunRefused):
            pass  # gone already, or not ours to delete: the provider removes old files itself

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
                if not line.future.done():
                    line.future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise

    async def _submit(self, lines: list[_Line]) -> None:
        encoded = [(line.custom_id, batch_line(line.custom_id, line.body), _tokens(line.body)) for line in lines]
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
            created = (await self._batches_at_server(record.created)).get(uploaded.id)
            if created is None:
                raise
        self.record_batch_id(name, created.id, created.status)
        self.submitted += 1
        batch.record = self._reread(name)
        self._emit(Notice(self._now(), f"batch {created.id}: {len(lines):,} requests submitted ({len(data):,} bytes); "
                          "answers within 24 h at half the price"))  # fmt: skip
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
        output = await self._content(seen.output_file_id)
        errors = await self._content(seen.error_file_id)
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
            self._emit(Notice(self._now(), f"batch {batch.record.batch_id} failed: {reason or 'no reason given'}; "
                              "sending its request live"))  # fmt: skip
        self._read_results(batch)

    async def _split(self, batch: _Batch, reason: str) -> None:
        """A batch the server refused as a whole (over a limit it does not report, a line it could not take):
        its lines again in two halves, once this job's other batches have ended (the enqueued-token limit counts
        them)."""
        batch.ended.set()
        half = len(batch.lines) // 2
        self._emit(Notice(self._now(), f"batch {batch.record.batch_id} failed: {reason or 'no reason given'}; "
                          f"sending its {len(batch.lines):,} requests again in two batches"))  # fmt: skip
        for other in list(self._batches.values()):
            if other is not batch and not other.ended.is_set() and other.record.batch_id:
                await other.ended.wait()
        for part in (batch.lines[:half], batch.lines[half:]):
            await self._submit(part)

    async def _content(self, file_id: str | None) -> str:
        if not file_id:
            return ""

        async def read(client: Any) -> str:
            response = await client.files.content(file_id)
            return response.text

        return await self.provider.batch_api(read)

    def _read_results(self, batch: _Batch) -> None:
        record = batch.record
        results: dict[str, bytes] = {}
        for line in (record.output or "").splitlines():
            custom_id, body, why = _result(line)
            if custom_id is not None and body is not None:
                results[custom_id] = body
            elif custom_id is not None:
                batch.misses[custom_id] = why
        for line in (record.errors or "").splitlines():
            custom_id, _body, why = _result(line)
            if custom_id is not None and custom_id not in results:
                batch.misses[custom_id] = why
        unanswered = {
            "expired": "the batch expired before answering it",
            "cancelled": "the batch was cancelled before answering it",
            "failed": f"the batch failed validation: {record.error or 'no reason given'}",
        }.get(record.status, "the batch's result file has no line for it")
        for custom_id in record.lines:
            if custom_id not in results and custom_id not in batch.misses:
                batch.misses[custom_id] = unanswered
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
        self._emit(BatchProgress(self._now(), batch=batch.record.batch_id or batch.record.name, status=status,
                                 completed=counts.get("completed", 0), failed=counts.get("failed", 0),
                                 total=counts.get("total", len(batch.record.lines)),
                                 since=max(0.0, time.time() - batch.record.created)))  # fmt: skip


def _result(line: str) -> tuple[str | None, bytes | None, str]:
    """(custom_id, the response body when it answered, why not) of one line of a result or error file."""
    try:
        data = json.loads(line)
        custom_id = data.get("custom_id")
    except (ValueError, AttributeError):
        return None, None, ""
    if not isinstance(custom_id, str):
        return None, None, ""
    response = data.get("response") if isinstance(data.get("response"), dict) else None
    if response is not None and response.get("status_code") == 200 and isinstance(response.get("body"), dict):
        return custom_id, json.dumps(response["body"]).encode(), ""
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    if error is None and response is not None and isinstance(response.get("body"), dict):
        error = response["body"].get("error") if isinstance(response["body"].get("error"), dict) else None
    message = str((error or {}).get("message") or "no reason given")[:300]
    status = f"{response.get('status_code')}: " if response is not None and response.get("status_code") else ""
    return custom_id, None, f"the batch could not answer it ({status}{message})"


def _tokens(body: dict[str, Any]) -> int:
    """A line's enqueued tokens, as a provider counts them: its prompt (about 4 characters a token) and the
    answer's bound."""
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", ())) // 4
    return prompt + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


class BatchTransport:
    """One run's transport in batch mode: whole chunks through ``desk``, everything else live."""

    def __init__(self, live: LiveTransport, desk: BatchDesk, session_id: str) -> None:
        self.live = live
        self.desk = desk
        self.session_id = session_id
        self.online = True
        self._missed: set[str] = set()  # requests a batch did not answer: they go live

    @property
    def provider(self) -> Any:
        return self.live.provider

    @property
    def capabilities(self):
        return self.live.capabilities

    def fit(self, window: int | None) -> None:
        self.live.fit(window)

    def deferred(self, request: Request) -> bool:
        """Answered by a batch, later (no slot of the limiter is held, no deadline applies)."""
        return (request.cards is not None and not request.part and not request.is_repair
                and request.id not in self._missed)  # fmt: skip

    async def send(self, request: Request, on_tokens: Callable[[int], None] | None = None) -> Answer:
        if not self.deferred(request):
            return await self.live.send(request, on_tokens)
        assert request.cards is not None
        provider = self.live.provider
        try:
            body = await self.desk.answer(f"{self.session_id}:{request.chunk_id}", provider.batch_body(request.cards))
        except BatchMiss as exc:
            self._missed.add(request.id)
            # Not the server failing this request as sent live: the next attempt goes live, at once.
            raise TransientError(f"{exc}; sending it live", adapted=True) from None
        result: GenerationResult = provider.batch_result(body, request.cards)
        self.desk.usage_in_batches(result.usage)
        if on_tokens:
            on_tokens(result.usage.completion_tokens)
        return result


def server_key(where: str, environ: Any) -> str | None:
    """The key for the server at ``where`` from the environment: the preset's variable whose address it is."""
    from .providers.presets import PRESETS

    for preset in PRESETS.values():
        if preset.key_env and (preset.base_url or "https://api.openai.com/v1").rstrip("/") == where.rstrip("/"):
            return environ.get(preset.key_env)
    return environ.get("OPENAI_API_KEY")


async def cancel_open_batches(store: Any, records: list[BatchRecord], api_key: str | None,
                              environ: Any) -> list[str]:  # fmt: skip
    """Cancel ``records``' batches at their servers; a sentence for each. Raises the provider's errors."""
    from .providers.openai_compat import OpenAICompatProvider

    said = []
    for record in records:
        where, _, model = record.server.rpartition(" ")
        default = where.rstrip("/") == "https://api.openai.com/v1"
        provider = OpenAICompatProvider(model=model, api_key=api_key or server_key(where, environ),
                                        base_url=None if default else where, stream=False)  # fmt: skip
        try:
            seen = await provider.batch_api(lambda client, record=record: client.batches.cancel(record.batch_id))
        finally:
            await provider.aclose()
        store.update_batch(record.name, status=seen.status)
        said.append(f"batch {record.batch_id}: {seen.status} (its answers so far are collected, and the rest sent "
                    "live, when the same command runs again)")  # fmt: skip
    return said
