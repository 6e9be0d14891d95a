"""Cards from OpenAI or any OpenAI-compatible server (Ollama, vLLM, LM Studio) through the official SDK.

The SDK is imported lazily (it costs ~0.7 s) and one ``AsyncOpenAI`` client is created on first use, shared by
every call of the run, and closed by ``aclose``: inside the running event loop for a plain provider (headless
runs), on the stream thread's loop for a streaming one (the app's: see ``stream_thread``). The SDK's own
retries are off: the engine's retry layer is the only one.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ..models import Usage
from ..parsing import OutputError, excerpt, parse_cards, parse_summary, salvage_cards
from ..prompts import CARD_SCHEMA, SUMMARY_SCHEMA, CardRequest, card_messages, summary_messages
from ..throttle import RateInfo
from .base import (
    Capabilities,
    GenerationResult,
    ProgressCallback,
    RequestRejected,
    RunRefused,
    SummaryResult,
    TransientError,
)
from .batch_calls import BatchCalls
from .refusals import translate
from .server_errors import error_text, redact
from .stream_thread import STREAMS, Relay
from .wire import MAX_ANSWER_CHARS, Answer, rate_info, read_body, read_completion, read_stream

DEFAULT_TIMEOUT = 300.0  # seconds one attempt may take end to end: room for a slow local model streaming
# The app's streams are read at most this often each, so that hundreds of them, one event per token, cost the
# process (one interpreter: the app's repaints wait for the same lock) a read per stream a tenth of a second.
READ_PACE = 0.1
IDLE_FLOOR = 60.0  # a stream silent this long (or timeout / 5, if longer) is dropped
ANSWER_TOKENS_BASE = 200  # an answer's bound (servers other than OpenAI's): this, plus per card asked for
ANSWER_TOKENS_PER_CARD = 160
LOCAL_TEMPERATURE = 0.2


def answer_tokens(cards: int) -> int:
    """The most tokens an answer for ``cards`` cards may take (room for a quote and JSON on each)."""
    return ANSWER_TOKENS_BASE + ANSWER_TOKENS_PER_CARD * max(1, cards)


class OpenAICompatProvider(BatchCalls):
    """One run's connection to a chat-completions server."""

    name = "openai"
    online = True

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        key_source: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 1000,
        stream: bool = True,
        queue_tolerant: bool = False,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.key_source = key_source
        self.timeout = timeout  # the engine bounds each attempt by it; the transport's own limits sit just above
        self.idle_timeout = min(timeout, max(IDLE_FLOOR, timeout / 5))
        self.max_connections = max_connections
        self.stream = stream  # streaming shows tokens arriving (the TUI); a plain answer costs less CPU
        # Made to stream (the app's provider): its requests go out and its answers are read on the stream thread,
        # for its whole life (the doctor turns ``stream`` on for one call and stays on its own loop).
        self.off_loop = stream
        # A local server queues what it cannot serve yet and sends nothing meanwhile: the engine's deadline (which
        # allows for the queue) bounds each attempt, not the transport's read timeout.
        self.queue_tolerant = queue_tolerant
        self.window: int | None = None  # tokens one request may hold, when the server said (the engine sets it)
        self.streams_usage: bool | None = None  # a streamed answer carried its usage (None: none streamed yet)
        # How this server takes our requests: a refused response format moves the whole run to the next mode
        # at once. Until a request in the current mode is answered, requests go one at a time, so a refusal
        # costs one request, not one per call in flight.
        self.capabilities = Capabilities()
        self.stream_usage = True
        self._client: Any = None  # a streaming provider's lives on the stream thread's loop
        self._probe: asyncio.Lock | None = None
        self._relay: Relay | None = None

    @property
    def format_mode(self) -> str:
        return self.capabilities.format_mode

    @property
    def where(self) -> str:
        """The server's address, for sentences."""
        return self.base_url or "https://api.openai.com/v1"

    @property
    def cache_identity(self) -> tuple[str, ...]:
        """What, besides the request, decides the answer: never the key."""
        return ("openai", self.base_url or "https://api.openai.com/v1", self.model)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    def _ensure_client(self) -> Any:
        if self._client is None:
            with _preparing:  # the preloading thread's TLS context, once it has one: not a second one built here
                import openai

                tls = {"verify": _tls_context} if _tls_context is not None else {}
            timeout = openai.Timeout(None if self.queue_tolerant else self.timeout + 5, connect=min(10.0, self.timeout))
            try:
                http_client = openai.DefaultAioHttpClient(timeout=timeout, limits=_limits(self.max_connections), **tls)
            except RuntimeError:  # the aiohttp extra is missing: the default transport still works
                http_client = None
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or "not-needed",
                base_url=self.base_url,
                max_retries=0,
                timeout=timeout,
                http_client=http_client,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await (STREAMS.run(client.close()) if self.off_loop else client.close())

    # ------------------------------------------------------------------ calls

    def _format_kwargs(self, mode: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
        if mode == "json_schema":
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": name, "strict": True, "schema": schema},
                }
            }
        if mode == "json_object_schema":
            return {"response_format": {"type": "json_object", "schema": schema}}
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {}

    def _answer_cap(self, cards: int) -> dict[str, Any]:
        """For servers other than OpenAI's own: a bound on the answer's length (a small local model held to a
        JSON grammar can write whitespace until its context is full, seen with llama-server, which on a CPU takes
        many minutes) and a low temperature (cards are extraction; at the servers' default 0.8 Gemma 3 270M gave
        a card in 1 of 5 chunks, at 0.2 in 5 of 5). OpenAI's reasoning models count their thinking in the bound
        and refuse a temperature, so OpenAI gets neither."""
        if self.base_url is None or "api.openai.com" in self.base_url:
            return {}
        return {"max_tokens": answer_tokens(cards), "temperature": LOCAL_TEMPERATURE}

    def _fit_cap(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The answer's bound within the window (vLLM refuses a request whose prompt and bound exceed it)."""
        if self.window is None or "max_tokens" not in kwargs:
            return kwargs
        prompt = sum(len(str(m.get("content", ""))) for m in kwargs["messages"]) * 10 // 32  # ~3.2 chars a token
        return {**kwargs, "max_tokens": max(64, min(kwargs["max_tokens"], self.window - prompt))}

    async def summarize(self, document_text: str, fallback_title: str) -> SummaryResult:
        def kwargs(mode: str) -> dict[str, Any]:
            return {
                "model": self.model,
                "messages": summary_messages(document_text, json_hint=mode != "json_schema"),
                **self._format_kwargs(mode, SUMMARY_SCHEMA, "document_summary"),
                **self._answer_cap(3),
            }

        answer = await self._complete(kwargs, stream=False, on_tokens=None)
        try:
            return SummaryResult(parse_summary(answer.text, fallback_title), answer.usage, answer.rate_info)
        except OutputError as exc:
            exc.usage = answer.usage  # type: ignore[attr-defined]
            raise

    async def generate(self, request: CardRequest, on_tokens: ProgressCallback) -> GenerationResult:
        def kwargs(mode: str) -> dict[str, Any]:
            return {
                "model": self.model,
                "messages": card_messages(request, json_hint=mode != "json_schema"),
                **self._format_kwargs(mode, CARD_SCHEMA, "flashcards"),
                **self._answer_cap(request.cards_wanted),
            }

        answer = await self._complete(kwargs, stream=self.stream, on_tokens=on_tokens)
        return self._cards_of(answer, request)

    def _cards_of(self, answer: Answer, request: CardRequest) -> GenerationResult:
        """The cards of a card request's answer (a live one, or a line of a batch's result file)."""
        if answer.cut:
            # We stopped reading an answer larger than any real one: keep the complete cards it began with.
            drafts = salvage_cards(answer.text, request.cards_wanted)
            note = f"the answer was longer than {MAX_ANSWER_CHARS // 1024} KB and was cut there"
            return GenerationResult(drafts, answer.usage, excerpt(answer.text), "length", answer.rate_info, (note,))
        cap = self._answer_cap(request.cards_wanted).get("max_tokens")
        written = answer.usage.completion_tokens or len(answer.text) // 4
        if cap and answer.finish_reason == "length" and written >= cap * 0.9:
            return self._runaway(answer, cap, request.cards_wanted)
        return self._parse(answer.text, answer.usage, answer.finish_reason, answer.rate_info)

    def _runaway(self, answer: Answer, cap: int, wanted: int) -> GenerationResult:
        """An answer that reached the bound we set: it has room for every card asked for, so it is a model
        repeating itself (a small model copying a quote over and over), not a long answer. Its complete cards
        are kept; with none, the attempt failed (splitting the chunk would only repeat the loop twice)."""
        drafts = salvage_cards(answer.text, wanted)
        if drafts:
            note = f"the answer ran past the {cap:,} tokens allowed; kept its {len(drafts)} complete cards"
            return GenerationResult(drafts, answer.usage, answer.text, "length", answer.rate_info, (note,))
        error = OutputError(f"the answer ran past the {cap:,} tokens allowed without finishing a card (the model "
                            "repeated itself)", answer.text)  # fmt: skip
        error.usage = answer.usage  # type: ignore[attr-defined]
        error.runaway = True  # type: ignore[attr-defined]
        raise error

    async def _complete(self, make_kwargs: Any, *, stream: bool, on_tokens: ProgressCallback | None) -> Answer:
        """One request in the current format mode (``make_kwargs(mode)`` builds it); while that mode is unproven,
        requests wait for each other so that only one meets a refusal."""
        if self.capabilities.confirmed:
            return await self._request(make_kwargs, stream=stream, on_tokens=on_tokens)
        if self._probe is None:
            self._probe = asyncio.Lock()
        async with self._probe:
            if not self.capabilities.confirmed:
                return await self._request(make_kwargs, stream=stream, on_tokens=on_tokens)
        # Proven while this one waited: every request that queued behind the probe goes at once, not in turn.
        return await self._request(make_kwargs, stream=stream, on_tokens=on_tokens)

    async def _request(self, make_kwargs: Any, *, stream: bool, on_tokens: ProgressCallback | None) -> Answer:
        """One request; the answer's text, read within the size limits and checked to be a chat completion.

        The body is read raw rather than through the SDK's models: a server's answer is untrusted data (an
        HTML page from a proxy, JSON of another shape, 50 MB), and building the SDK's model object for every
        streamed delta costs ~10x the CPU of json.loads, which with hundreds of streams at once is the event
        loop's latency.
        """
        mode = self.format_mode
        kwargs = self._fit_cap(make_kwargs(mode))
        # The messages and the response format go as ``extra_body``: the same JSON on the wire, but not walked by
        # the SDK's typed transform, which tried every message type's TypedDict on every message and recursed
        # through the schema (1.9 ms of CPU a request, a third of the process at 1,000 chunks). The messages are
        # plain strings, so the transform had nothing to change; ``messages=[]`` only satisfies the signature.
        moved = {key: kwargs.pop(key) for key in ("messages", "response_format") if key in kwargs}
        kwargs = {**kwargs, "messages": [], "extra_body": {**kwargs.get("extra_body", {}), **moved}}
        if stream:
            kwargs = {**kwargs, "stream": True}
            if self.stream_usage:
                kwargs["stream_options"] = {"include_usage": True}
        if not self.off_loop:
            answer = await self._send(kwargs, stream, on_tokens, mode)
        else:
            # The app's provider: its requests go out and its answers are read on the stream thread.
            loop = asyncio.get_running_loop()
            if self._relay is None or self._relay.loop is not loop:
                self._relay = Relay(loop)
            report = self._relay.wrap(on_tokens) if on_tokens else None
            try:
                answer = await STREAMS.run(self._send(kwargs, stream, report, mode))
            finally:
                if on_tokens:
                    self._relay.deliver(on_tokens)
        if mode == self.format_mode:
            self.capabilities.confirmed = True
        return answer

    async def _send(self, kwargs: dict[str, Any], stream: bool, on_tokens: ProgressCallback | None,
                    mode: str) -> Answer:  # fmt: skip
        """The request sent and its answer read (on the loop its client lives on)."""
        client = self._ensure_client()
        try:
            async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
                info = rate_info(response.headers)
                content_type = (response.headers.get("content-type") or "").lower()
                if stream and "event-stream" in content_type:
                    pacing = {"pace": READ_PACE, "socket": _socket_of(response)} if self.off_loop else {}
                    answer = await read_stream(response, on_tokens, self, **pacing)
                else:
                    # A plain answer, or a server that answered a stream request with one JSON body.
                    answer = read_completion(await read_body(response), content_type, self)
                    if on_tokens:
                        on_tokens(answer.usage.completion_tokens)
        except (TransientError, RunRefused, RequestRejected):
            raise
        except Exception as exc:
            raise translate(self, exc, mode) from None
        answer.rate_info = info
        return answer

    def message_of(self, body: Any) -> str:
        """A server's error message: its first meaningful line, without the key."""
        return self.redact(error_text(body))

    @staticmethod
    def _parse(raw: str, usage: Usage, finish_reason: str | None, info: RateInfo | None = None) -> GenerationResult:
        if not raw.strip() and finish_reason != "length":
            # A finished, empty answer: the model has no cards for this passage. Asking again is not a repair.
            return GenerationResult([], usage, raw, finish_reason, info, nothing="the model's answer was empty")
        try:
            drafts = parse_cards(raw)
        except OutputError as exc:
            if finish_reason == "length":
                exc.args = ("the answer was cut off at the model's output limit",)
                exc.truncated = True  # type: ignore[attr-defined]
            exc.usage = usage  # type: ignore[attr-defined]
            raise
        return GenerationResult(drafts, usage, raw, finish_reason, info)

    def redact(self, text: str) -> str:
        """``text`` with the API key, any piece of it, and anything shaped like a secret key taken out."""
        return redact(text, self._api_key)

    # ------------------------------------------------------------------ errors


_tls_context: Any = None  # the TLS context the SDK's transport would build, made ahead by prepare_transport()
_preparing = threading.Lock()  # held while prepare_transport() works


def prepare_transport() -> None:
    """Import the SDK and build the TLS context its transport needs (0.7 s and 0.1 s of a run's start), so a
    face can do both on a thread while it reads and chunks the input. The context is the one the transport
    builds itself (the system's roots, or SSL_CERT_FILE or SSL_CERT_DIR); without this, it still does."""
    global _tls_context
    with _preparing:
        import openai  # noqa: F401

        if _tls_context is None:
            import httpcore2

            _tls_context = httpcore2.default_ssl_context(_trust_env=True)


def _socket_of(response: Any) -> Any:
    """The asyncio transport an SDK response is read from (its aiohttp connection's), or None if the SDK's
    layers are not the ones this knows: then a paced stream is still read correctly, only less cheaply."""
    try:
        transport = response.http_response.stream._stream._aiohttp_response.connection.transport
    except AttributeError:
        return None
    needed = ("is_reading", "pause_reading", "resume_reading", "is_closing")
    return transport if all(callable(getattr(transport, name, None)) for name in needed) else None


def _limits(max_connections: int) -> Any:
    import httpx2

    return httpx2.Limits(max_connections=max_connections, max_keepalive_connections=min(max_connections, 256))
