"""A real HTTP server on 127.0.0.1 that speaks ``/v1/chat/completions`` (plain and streamed, SSE).

It runs its own event loop in a background thread, so tests, the real ``AsyncOpenAI`` client and whole CLI
subprocesses can all talk to it. It can add latency, answer with faults (429 with Retry-After, 500, 401,
404, malformed JSON, a connection dropped mid-stream) on a seeded random schedule or for chosen request
numbers, hold chosen requests until the test releases them, and it logs every request body.

    with FakeOpenAI(latency=0.05) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from dialects import Dialect

CHUNK_RE = re.compile(r"<<<CHUNK\n(.*?)\nCHUNK>>>", re.DOTALL)
WANT_RE = re.compile(r"Write (?:up to )?(\d+) flashcards?")


@dataclass
class Fault:
    """What to do instead of a normal answer."""

    status: int = 0  # HTTP status to answer with (0: answer 200)
    code: str | None = None  # error code in the body, e.g. "insufficient_quota"
    message: str = "fault injected by the test server"
    headers: dict[str, str] = field(default_factory=dict)
    malformed: bool = False  # answer 200 with content that is not JSON
    content: str | None = None  # answer 200 with exactly this content
    drop_mid_stream: bool = False  # send part of a streamed answer, then cut the connection
    finish_reason: str = "stop"
    body: bytes | None = None  # answer 200 with exactly these bytes (not a chat completion: a proxy's page, …)
    content_type: str = "application/json"  # of ``body``
    drip: float = 0.0  # send ``body`` (or the answer) one byte per this many seconds
    stall: bool = False  # send the headers, then nothing until the client gives up


@dataclass
class Hold:
    """Requests matching ``predicate`` wait until ``release()``; ``arrived`` counts how many are waiting."""

    predicate: Callable[[dict[str, Any]], bool]
    server: FakeOpenAI
    arrived: int = 0
    disconnected: int = 0  # held requests whose client hung up before the release
    _event: asyncio.Event | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def release(self) -> None:
        self.server._call(lambda: self._get_event().set())

    def _get_event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def wait_arrived(self, count: int, timeout: float = 10.0) -> bool:
        """Block (in the test's thread) until ``count`` requests are being held."""
        with self._cond:
            return self._cond.wait_for(lambda: self.arrived >= count, timeout)

    async def wait_arrived_async(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.arrived >= count:
                return True
            await asyncio.sleep(0.005)
        return self.arrived >= count


def chunk_of(body: dict[str, Any]) -> str | None:
    """The chunk text a card request carries between its delimiters (None for other requests)."""
    for message in body.get("messages", []):
        match = CHUNK_RE.search(str(message.get("content", "")))
        if match:
            return match.group(1)
    return None


def is_summary(body: dict[str, Any]) -> bool:
    return any("<<<DOCUMENT" in str(m.get("content", "")) for m in body.get("messages", []))


def default_cards(body: dict[str, Any]) -> dict[str, Any]:
    """Deterministic cards made from the chunk's sentences: same chunk text, same cards."""
    text = chunk_of(body) or ""
    wanted = 3
    for message in body.get("messages", []):
        match = WANT_RE.search(str(message.get("content", "")))
        if match:
            wanted = int(match.group(1))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if len(s.split()) >= 4]
    cards = []
    for i, sentence in enumerate(sentences[:wanted]):
        words = sentence.split()
        cards.append(
            {
                "type": "basic",
                "front": "What follows: " + " ".join(words[:6]) + " …?",
                "back": " ".join(words[6:]),
                "quote": sentence,
            }
        )
        k = min(7, len(words) - 2)  # the word deleted from the sentence (in test texts, a distinct token)
        if i == 0 and len(words) > 6 and len(cards) < wanted:
            cards.append(
                {
                    "type": "cloze",
                    "front": " ".join([*words[:k], "{{c1::" + words[k] + "}}", *words[k + 1 :]]),
                    "back": "",
                    "quote": sentence,
                }
            )
    return {"cards": cards[:wanted]}


def default_summary(body: dict[str, Any]) -> dict[str, Any]:
    return {"title": "A document about things", "summary": "A test summary of the document."}


class FakeOpenAI:
    """See the module docstring. Thread-safe counters; all request handling runs on the server's own loop."""

    def __init__(
        self,
        *,
        latency: float | Callable[[dict[str, Any]], float] = 0.0,
        seed: int = 0,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_malformed: float = 0.0,
        retry_after: float | None = 1.0,
        faults: dict[int, Fault] | None = None,
        fault_for: Callable[[int, dict[str, Any]], Fault | None] | None = None,
        cards: Callable[[dict[str, Any]], dict[str, Any]] = default_cards,
        summary: Callable[[dict[str, Any]], dict[str, Any]] = default_summary,
        api_key: str | None = None,
        models: set[str] | None = None,
        reject_response_format: set[str] | None = None,
        chars_per_delta: int = 12,
        delta_delay: float = 0.0,
        stream_padding: int | Callable[[dict[str, Any]], int] = 0,
        port: int = 0,
        rate_limit: tuple[int, float] | None = None,
        rate_headers: bool = True,
        max_in_flight: int | None = None,
        model_list: list[str] | None = None,
        dialect: Dialect | None = None,
        batches: Any = None,
    ) -> None:
        self.latency = latency
        self.rng = random.Random(seed)
        self.rate_429, self.rate_500, self.rate_malformed = rate_429, rate_500, rate_malformed
        self.retry_after = retry_after
        self.faults = dict(faults or {})
        self.fault_for = fault_for
        self.cards = cards
        self.summary = summary
        self.api_key = api_key
        self.models = models
        self.reject_response_format = reject_response_format or set()
        self.chars_per_delta = chars_per_delta
        self.delta_delay = delta_delay  # seconds between streamed deltas: a model that writes slowly
        # Streamed answers open with this many spaces (JSON allows them): a model that writes at length, so that
        # streams keep pouring while a benchmark measures; ``events_sent`` counts the deltas written.
        self.stream_padding = stream_padding
        self.events_sent = 0
        self.requests: list[dict[str, Any]] = []  # every body, in arrival order
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.holds: list[Hold] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = port  # 0: any free port
        # A token bucket of ``R`` requests refilled at R per ``window`` seconds (OpenAI's request limit, with the
        # minute scaled down so a test takes seconds); answers carry x-ratelimit-* headers unless told not to.
        self.rate_limit = rate_limit
        self.rate_headers = rate_headers
        self._tokens = float(rate_limit[0]) if rate_limit else 0.0
        self._refilled = time.monotonic()
        self.max_in_flight = max_in_flight  # more calls than this at once get 429 (a server with N slots)
        self.admitted = 0
        self.admitted_at: list[float] = []
        self.rejected_429 = 0
        self.model_list = model_list  # what GET /v1/models lists; None: the server has no such endpoint (404)
        self.model_list_headers: list[dict[str, str]] = []
        # Another server's behaviour (tests/dialects.py): its refusals, queue, stream endings and endpoints.
        self.dialect = dialect
        self.batches = batches  # a fake_batches.BatchEngine: /v1/files and /v1/batches (None: no such endpoints)
        self.refused: list[int] = []  # request numbers the dialect refused
        self.cut_streams = 0  # streams ended early, as the dialect does when another request arrives
        self.discovery: list[str] = []  # the paths of describe-the-server requests, in order

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 2**20)
            app.router.add_post("/v1/chat/completions", self._handle)
            app.router.add_get("/v1/models", self._models)
            if self.batches is not None:
                self.batches.mount(app, self)
            for method, path, handler in self.dialect.routes() if self.dialect else ():
                app.router.add_route(method, path, self._logged(path, handler))
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        for hold in self.holds:
            hold.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], object]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    # ------------------------------------------------------------------ test controls

    def hold(self, predicate: Callable[[dict[str, Any]], bool] | None = None) -> Hold:
        """Hold every request matching ``predicate`` (all requests by default) until released."""
        hold = Hold(predicate or (lambda body: True), self)
        self.holds.append(hold)
        return hold

    def chunk_requests(self) -> list[dict[str, Any]]:
        return [b for b in self.requests if chunk_of(b) is not None]

    def summary_requests(self) -> list[dict[str, Any]]:
        return [b for b in self.requests if is_summary(b)]

    # ------------------------------------------------------------------ handling

    def _logged(self, path: str, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.discovery.append(path)
            return await handler(request)

        return handle

    def _pick_fault(self, number: int, body: dict[str, Any]) -> Fault | None:
        if number in self.faults:
            return self.faults[number]
        if self.fault_for:
            fault = self.fault_for(number, body)
            if fault is not None:
                return fault
        roll = self.rng.random()
        if roll < self.rate_429:
            headers = {"retry-after": f"{self.retry_after:g}"} if self.retry_after is not None else {}
            return Fault(status=429, code="rate_limit_exceeded", message="Rate limit reached", headers=headers)
        if roll < self.rate_429 + self.rate_500:
            return Fault(status=500, message="The server had an error")
        if roll < self.rate_429 + self.rate_500 + self.rate_malformed:
            return Fault(malformed=True)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "invalid JSON body", "invalid_request_error")
        limited = self._admit()
        if limited is not None:
            return limited
        with self._lock:
            number = len(self.requests)
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            fault = self._pick_fault(number, body)
        entered = False
        try:
            if self.dialect is not None:
                refused = self.dialect.refuse(body)
                if refused is not None:
                    self.refused.append(number)
                    return refused
                await self.dialect.enter()  # the server's queue: nothing is sent until a slot is free
                entered = True
            for hold in self.holds:
                if hold.predicate(body):
                    with hold._cond:
                        hold.arrived += 1
                        hold._cond.notify_all()
                    event = hold._get_event()
                    while not event.is_set():
                        if request.transport is None or request.transport.is_closing():
                            hold.disconnected += 1  # the client gave up the call: nothing to answer
                            return web.Response(status=499)
                        try:
                            await asyncio.wait_for(event.wait(), 0.02)
                        except TimeoutError:
                            pass
            delay = self.latency(body) if callable(self.latency) else self.latency
            if delay:
                await asyncio.sleep(delay)
            return await self._answer(request, body, fault)
        finally:
            if entered:
                self.dialect.leave()  # type: ignore[union-attr]
            with self._lock:
                self.in_flight -= 1
                self.admitted -= 1

    async def _models(self, request: web.Request) -> web.Response:
        self.model_list_headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.model_list is None and self.dialect is not None:
            self.discovery.append("/v1/models")
            return web.json_response(self.dialect.models_list())
        if self.model_list is None:
            return _error(404, "Not found", None)
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in self.model_list]
        return web.json_response({"object": "list", "data": data})

    def _admit(self) -> web.Response | None:
        """Apply the rate and concurrency limits; a 429 response if this request is over one of them."""
        with self._lock:
            now = time.monotonic()
            if self.rate_limit:
                capacity, window = self.rate_limit
                self._tokens = min(capacity, self._tokens + (now - self._refilled) * capacity / window)
                self._refilled = now
                if self._tokens < 1:
                    self.rejected_429 += 1
                    wait = (1 - self._tokens) * window / capacity
                    headers = {"retry-after-ms": str(max(1, round(wait * 1000)))}
                    headers.update(self._limit_headers())
                    return _error(429, "Rate limit reached for requests", "rate_limit_exceeded", headers)
            if self.max_in_flight is not None and self.admitted >= self.max_in_flight:
                self.rejected_429 += 1
                return _error(429, "Too many concurrent requests", "rate_limit_exceeded", {"retry-after-ms": "50"})
            if self.rate_limit:
                self._tokens -= 1
            self.admitted += 1
            self.admitted_at.append(now)
            return None

    def _limit_headers(self) -> dict[str, str]:
        if not (self.rate_limit and self.rate_headers):
            return {}
        capacity, window = self.rate_limit
        reset = (capacity - self._tokens) * window / capacity
        return {
            "x-ratelimit-limit-requests": str(capacity),
            "x-ratelimit-remaining-requests": str(max(0, int(self._tokens))),
            "x-ratelimit-reset-requests": f"{reset:.3f}s",
        }

    async def _answer(self, request: web.Request, body: dict[str, Any], fault: Fault | None) -> web.StreamResponse:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if self.models is not None and body.get("model") not in self.models:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "model_not_found")
        fmt = (body.get("response_format") or {}).get("type")
        if fmt in self.reject_response_format:
            return _error(
                400, f"response_format of type '{fmt}' is not supported by this model", "invalid_request_error"
            )
        if fault and fault.status:
            return _error(fault.status, fault.message, fault.code, fault.headers)
        if fault and (fault.body is not None or fault.drip or fault.stall):
            return await self._raw(request, body, fault)
        if fault and fault.malformed:
            content = '{"cards": [ {"front": "broken'  # not JSON, not repairable
        elif fault and fault.content is not None:
            content = fault.content
        elif is_summary(body):
            content = json.dumps(self.summary(body))
        else:
            content = json.dumps(self.cards(body))
        finish = fault.finish_reason if fault else "stop"
        prompt_tokens = (self.dialect.usage_prompt_tokens(body) if self.dialect is not None
                         else max(1, len(json.dumps(body.get("messages", []))) // 4))  # fmt: skip
        completion_tokens = max(1, len(content) // 4)
        model = body.get("model", "fake")
        with self._lock:
            limit_headers = self._limit_headers()
        if not body.get("stream"):
            return web.json_response(_completion(model, content, finish, prompt_tokens, completion_tokens),
                                     headers=limit_headers)  # fmt: skip
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **limit_headers}
        )
        await response.prepare(request)

        def event(delta: dict[str, Any], finish_reason: str | None = None, usage: Any = None) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if usage:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n".encode()

        await response.write(event({"role": "assistant", "content": ""}))
        padding = self.stream_padding(body) if callable(self.stream_padding) else self.stream_padding
        content = " " * padding + content
        pieces = [content[i : i + self.chars_per_delta] for i in range(0, len(content), self.chars_per_delta)]
        for i, piece in enumerate(pieces):
            if self.dialect is not None and self.dialect.interrupted():
                # llama-cpp-python: another request arrived, so this answer ends here, with no finish_reason.
                self.cut_streams += 1
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
                return response
            if fault and fault.drop_mid_stream and i >= len(pieces) // 2:
                # Cut the connection without finishing the chunked body.
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write(event({"content": piece}))
            self.events_sent += 1
            if self.delta_delay:
                await asyncio.sleep(self.delta_delay)
        await response.write(event({}, finish_reason=finish))
        honours_usage = self.dialect is None or self.dialect.stream_usage
        if honours_usage and (body.get("stream_options") or {}).get("include_usage"):
            await response.write(
                event(
                    {},
                    usage={
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                )
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """The plain chat completion this server answers ``body`` with (what a batch's result file holds)."""
        content = json.dumps(self.summary(body) if is_summary(body) else self.cards(body))
        prompt_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
        return _completion(body.get("model", "fake"), content, "stop", prompt_tokens, max(1, len(content) // 4))

    async def _raw(self, request: web.Request, body: dict[str, Any], fault: Fault) -> web.StreamResponse:
        """Answer 200 with ``fault.body`` as is, dripped byte by byte, or with headers and then silence."""
        data = fault.body
        content_type = fault.content_type
        if data is None:
            data = json.dumps(
                {
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": json.dumps(self.cards(body))},
                            "finish_reason": "stop",
                        }
                    ]
                }
            ).encode()
        if body.get("stream") and fault.stall:
            content_type = "text/event-stream"
        if not (fault.drip or fault.stall):
            return web.Response(body=data, headers={"Content-Type": content_type})
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        try:
            if fault.stall:
                while request.transport is not None and not request.transport.is_closing():
                    await asyncio.sleep(0.05)
                return response
            for i in range(len(data)):
                if request.transport is None or request.transport.is_closing():
                    return response
                await response.write(data[i : i + 1])
                await asyncio.sleep(fault.drip)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, as it should
        return response


def _completion(model: str, content: str, finish: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(status: int, message: str, code: str | None, headers: dict[str, str] | None = None) -> web.Response:
    kind = {429: "requests", 401: "invalid_request_error", 404: "invalid_request_error"}.get(status, "server_error")
    if code == "insufficient_quota":
        kind = "insufficient_quota"
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status, headers=headers or {}
    )


if __name__ == "__main__":  # a standalone server for trying the app by hand
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fake chat-completions API on 127.0.0.1.")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--api-key", help="refuse every other key (401), as a real server does")
    parser.add_argument("--models", nargs="*", help="what GET /v1/models lists (default: no such endpoint)")
    parser.add_argument("--batches", type=float, metavar="S", help="serve the Files and Batch APIs too, each batch "
                        "taking S seconds")  # fmt: skip
    args = parser.parse_args()
    engine = None
    if args.batches is not None:
        from fake_batches import BatchEngine

        engine = BatchEngine(processing=args.batches)
    server = FakeOpenAI(latency=args.latency, api_key=args.api_key, model_list=args.models, batches=engine).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
