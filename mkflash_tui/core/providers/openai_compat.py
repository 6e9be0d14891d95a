"""Cards from OpenAI or any OpenAI-compatible server (Ollama, vLLM, LM Studio) through the official SDK.

The SDK is imported lazily (it costs ~0.7 s) and one ``AsyncOpenAI`` client is created inside the running
event loop on first use, shared by every call of the run, and closed by ``aclose``. The SDK's own retries are
off: the engine's retry layer is the only one.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ..models import Usage
from ..parsing import OutputError, excerpt, parse_cards, parse_summary, salvage_cards
from ..prompts import CARD_SCHEMA, SUMMARY_SCHEMA, CardRequest, card_messages, summary_messages
from ..throttle import RateInfo
from .base import (
    FORMAT_MODES,
    Capabilities,
    ContextTooLong,
    GenerationResult,
    ProgressCallback,
    ProviderError,
    RequestRejected,
    RunRefused,
    SummaryResult,
    TransientError,
)
from .server_errors import context_overflow, error_text, first_line, names_output_format, redact

DEFAULT_TIMEOUT = 300.0  # seconds one attempt may take end to end: room for a slow local model streaming
IDLE_FLOOR = 60.0  # a stream silent this long (or timeout / 5, if longer) is dropped
MAX_BODY_BYTES = 2 * 2**20  # a plain answer's body is read up to this size
MAX_STREAM_BYTES = 32 * 2**20  # a streamed answer's events (mostly envelope) are read up to this size
MAX_ANSWER_CHARS = 512 * 1024  # the model's own text in one answer; beyond it the answer is cut
MAX_LINE_BYTES = 2**20  # one streamed event
ANSWER_TOKENS_BASE = 200  # an answer's bound (servers other than OpenAI's): this, plus per card asked for
ANSWER_TOKENS_PER_CARD = 160
LOCAL_TEMPERATURE = 0.2


def answer_tokens(cards: int) -> int:
    """The most tokens an answer for ``cards`` cards may take (room for a quote and JSON on each)."""
    return ANSWER_TOKENS_BASE + ANSWER_TOKENS_PER_CARD * max(1, cards)


class OpenAICompatProvider:
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
        self._client: Any = None
        self._probe: asyncio.Lock | None = None

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
            import openai

            timeout = openai.Timeout(None if self.queue_tolerant else self.timeout + 5, connect=min(10.0, self.timeout))
            try:
                http_client = openai.DefaultAioHttpClient(timeout=timeout, limits=_limits(self.max_connections))
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
            await client.close()

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

    def _runaway(self, answer: _Answer, cap: int, wanted: int) -> GenerationResult:
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

    async def _complete(self, make_kwargs: Any, *, stream: bool, on_tokens: ProgressCallback | None) -> _Answer:
        """One request in the current format mode (``make_kwargs(mode)`` builds it); while that mode is unproven,
        requests wait for each other so that only one meets a refusal."""
        if self.capabilities.confirmed:
            return await self._request(make_kwargs, stream=stream, on_tokens=on_tokens)
        if self._probe is None:
            self._probe = asyncio.Lock()
        async with self._probe:
            answer = await self._request(make_kwargs, stream=stream, on_tokens=on_tokens)
        return answer

    async def _request(self, make_kwargs: Any, *, stream: bool, on_tokens: ProgressCallback | None) -> _Answer:
        """One request; the answer's text, read within the size limits and checked to be a chat completion.

        The body is read raw rather than through the SDK's models: a server's answer is untrusted data (an
        HTML page from a proxy, JSON of another shape, 50 MB), and building the SDK's model object for every
        streamed delta costs ~10x the CPU of json.loads, which with hundreds of streams at once is the event
        loop's latency.
        """
        mode = self.format_mode
        kwargs = self._fit_cap(make_kwargs(mode))
        client = self._ensure_client()
        if stream:
            kwargs = {**kwargs, "stream": True}
            if self.stream_usage:
                kwargs["stream_options"] = {"include_usage": True}
        try:
            async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
                info = rate_info(response.headers)
                content_type = (response.headers.get("content-type") or "").lower()
                if stream and "event-stream" in content_type:
                    answer = await self._read_stream(response, on_tokens)
                else:
                    # A plain answer, or a server that answered a stream request with one JSON body.
                    answer = self._read_completion(await self._read_body(response), content_type)
                    if on_tokens:
                        on_tokens(answer.usage.completion_tokens)
        except (TransientError, RunRefused, RequestRejected):
            raise
        except Exception as exc:
            raise self._translate(exc, mode) from None
        if mode == self.format_mode:
            self.capabilities.confirmed = True
        answer.rate_info = info
        return answer

    async def _read_body(self, response: Any) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for data in response.iter_bytes():
            size += len(data)
            if size > MAX_BODY_BYTES:
                parts.append(data[: len(data) - (size - MAX_BODY_BYTES)])
                break
            parts.append(data)
        return b"".join(parts)

    def _read_completion(self, body: bytes, content_type: str) -> _Answer:
        """The text of a plain chat-completion body; anything else is a transient fault of this attempt."""
        cut = len(body) >= MAX_BODY_BYTES
        head = body[:512].lstrip().lower()
        if "html" in content_type or head.startswith((b"<!doctype", b"<html", b"<head", b"<body")):
            raise self._not_a_completion("an HTML page")
        text = body.decode("utf-8", "replace")
        if cut:
            content = _content_prefix(text)
            if content is None:
                raise self._not_a_completion(f"a body larger than {MAX_BODY_BYTES // 2**20} MB")
            return _Answer(content[:MAX_ANSWER_CHARS], Usage(), "length", cut=True)
        try:
            data = json.loads(text)
        except ValueError:
            raise self._not_a_completion("a body that is not JSON") from None
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            if not isinstance(content, str):
                raise TypeError
            finish_reason = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            if isinstance(data, dict) and data.get("error"):
                raise TransientError(f"the server reported an error: {self._message_of(data)}") from None
            raise self._not_a_completion("JSON that is not a chat completion") from None
        usage = _usage_dict(data.get("usage")) if isinstance(data.get("usage"), dict) else Usage()
        if len(content) > MAX_ANSWER_CHARS:
            return _Answer(content[:MAX_ANSWER_CHARS], usage, "length", cut=True)
        return _Answer(content, usage, finish_reason if isinstance(finish_reason, str) else None)

    async def _read_stream(self, response: Any, on_tokens: ProgressCallback | None) -> _Answer:
        """Server-sent events, read within the size limits; a stream silent for the idle limit is dropped."""
        loop = asyncio.get_running_loop()
        idle = self.idle_timeout
        parts: list[str] = []
        chars = 0
        usage: Usage | None = None
        finish_reason: str | None = None
        streamed = 0
        events = 0
        size = 0
        pending = b""
        done = False
        try:
            async with asyncio.timeout_at(loop.time() + idle) as silence:
                async for data in response.iter_bytes():
                    silence.reschedule(loop.time() + idle)
                    size += len(data)
                    if size > MAX_STREAM_BYTES:
                        raise TransientError(f"the streamed answer was larger than {MAX_STREAM_BYTES // 2**20} MB")
                    pending += data
                    if b"\n" not in data:
                        if len(pending) > MAX_LINE_BYTES:
                            raise TransientError("the server sent a streamed event larger than 1 MB")
                        continue
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            done = True
                            break
                        event = self._sse_json(payload)
                        events += 1
                        if isinstance(event.get("usage"), dict):
                            usage = _usage_dict(event["usage"])
                            self.streams_usage = True
                        for choice in event.get("choices") or ():
                            if not isinstance(choice, dict):
                                continue
                            delta = choice.get("delta")
                            content = delta.get("content") if isinstance(delta, dict) else None
                            if content and isinstance(content, str):
                                parts.append(content)
                                chars += len(content)
                                streamed += 1
                                if on_tokens:
                                    on_tokens(streamed)
                            if choice.get("finish_reason"):
                                finish_reason = str(choice["finish_reason"])
                        if chars > MAX_ANSWER_CHARS:
                            text = "".join(parts)[:MAX_ANSWER_CHARS]
                            return _Answer(text, usage or Usage(0, streamed), "length", cut=True)
                    if done:
                        break
        except TimeoutError:
            raise TransientError(
                f"the server sent nothing for {idle:g} s; dropped the stream", timed_out=True
            ) from None
        if not events:
            raise self._not_a_completion("a stream with no chat-completion events")
        if finish_reason is None and done:
            # The server closed the stream properly but the answer has no end: llama-cpp-python does this to a
            # running answer when another request arrives (its interrupt_requests setting).
            raise TransientError("the server ended the answer before it was complete (no finish_reason)",
                                 cut_stream=True)  # fmt: skip
        if finish_reason is None:
            raise TransientError("the connection closed before the answer was complete")
        if usage is None and self.streams_usage is None:
            self.streams_usage = False
        return _Answer("".join(parts), usage or Usage(0, streamed), finish_reason)

    def _not_a_completion(self, what: str) -> TransientError:
        where = self.base_url or "https://api.openai.com/v1"
        return TransientError(
            f"the server at {where} answered with {what}, not a chat completion; is --base-url right?",
            wrong_server=True,
        )

    def _sse_json(self, payload: bytes) -> dict[str, Any]:
        """One streamed event; an error event or a line that is not JSON is a transient fault of this attempt."""
        try:
            event = json.loads(payload)
        except ValueError:
            raise TransientError("the server sent a streamed event that is not JSON") from None
        if not isinstance(event, dict):
            raise TransientError("the server sent a streamed event that is not a JSON object")
        if event.get("error"):
            raise TransientError(f"the server reported an error mid-answer: {self._message_of(event)}")
        return event

    def _message_of(self, body: Any) -> str:
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

    def _translate(self, exc: Exception, mode: str) -> Exception:
        """Map an SDK exception to the engine's typed errors, with one sentence a user can act on.

        A server's own text is cut to its first meaningful line and never carries the key (servers echo it).
        """
        import openai

        if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
            unreachable = self._unreachable(exc)
            if unreachable:
                return TransientError(unreachable, unreachable=True)
            if isinstance(exc, openai.APITimeoutError):
                return TransientError(f"the request timed out after {self.timeout:g} s", timed_out=True)
            return TransientError(f"the connection to {self.where} failed ({self.redact(first_line(_cause(exc)))})")
        if not isinstance(exc, openai.APIStatusError):
            if isinstance(exc, openai.OpenAIError):
                return TransientError(f"the server's answer was unusable ({self.redact(first_line(str(exc)))})")
            # Errors from the transport while streaming (a connection cut mid-answer).
            return TransientError(f"the connection failed mid-answer ({type(exc).__name__})")
        return self._refusal(exc, mode)

    def _unreachable(self, exc: Exception) -> str:
        """The sentence for a request that never reached a server (nothing listening, no such host, no answer
        to the connection), or "" when it did reach one."""
        import socket

        where = self.where
        host = urllib.parse.urlsplit(where).hostname or where
        chain: list[BaseException] = []
        link: BaseException | None = exc
        while link is not None and len(chain) < 8:
            chain.append(link)
            link = link.__cause__ or link.__context__
        text = " ".join(f"{type(e).__name__} {e}" for e in chain)
        if any(isinstance(e, socket.gaierror) for e in chain) or re.search(
            r"Name or service not known|nodename nor servname|getaddrinfo failed|No address associated|"
            r"Temporary failure in name resolution|Cannot connect to host [^ ]+ ssl:\S+ \[(?:Name|nodename)", text
        ):
            return f"cannot find the host {host} (from {where}); is --base-url right?"
        if any(isinstance(e, ConnectionRefusedError) for e in chain) or re.search(
            r"Connect call failed|Connection refused|ConnectionRefused|actively refused", text
        ):
            return f"nothing answers at {where}: is the server running, and is --base-url right?"
        if any(type(e).__name__ in ("ConnectTimeout", "ServerTimeoutError", "ConnectionTimeoutError") for e in chain):
            return f"{where} did not answer the connection within {min(10.0, self.timeout):g} s; is --base-url right?"
        if any(type(e).__name__ in ("ConnectError", "ClientConnectorError") for e in chain):
            return f"cannot connect to {where} ({self.redact(first_line(_cause(exc)))}); is --base-url right?"
        return ""

    def _refusal(self, exc: Any, mode: str) -> Exception:
        """What an HTTP error status means for the run, in any server's dialect."""
        status = exc.status_code
        code = (exc.code or "").lower()
        body = getattr(exc, "body", None)
        full = _full_message(exc)  # every line: the reason may sit below a summary line (pydantic)
        message = self._message_of(body) or self.redact(first_line(full))
        lowered = full.lower()
        headers = exc.response.headers if exc.response is not None else {}
        if status == 429 and (code == "insufficient_quota" or "insufficient_quota" in lowered):
            return RunRefused("the server says this account has no quota left (insufficient_quota)",
                              fix="add credit or use another key or provider", field="key")  # fmt: skip
        if status == 429:
            return TransientError(
                f"rate limited (429): {message}",
                retry_after=_retry_after(headers),
                rate_limited=True,
                rate_info=rate_info(headers),
            )
        overflow = context_overflow(full, body, code) if status in (400, 413, 422, 500) else None
        if overflow is not None:
            return ContextTooLong(overflow.sentence(where=self.where), prompt_tokens=overflow.prompt_tokens,
                                  window=overflow.window)  # fmt: skip
        if mode != FORMAT_MODES[-1] and (status in (400, 415, 422) or status >= 500) and names_output_format(full):
            return self._next_format(mode, f"{status}: {message}")
        if status == 400 and "stream_options" in lowered and self.stream_usage:
            self.stream_usage = False
            return TransientError("the server does not support stream_options; asking without it", adapted=True)
        if status in (408, 409) or status >= 500:
            return TransientError(f"server error {status}: {message}", retry_after=_retry_after(headers))
        if status == 401:
            source = f" from {self.key_source}" if self.key_source else ""
            return RunRefused(f"the server at {self.where} rejected the API key{source} (401: {message})",
                              fix="check the key or pass --api-key", field="key")  # fmt: skip
        if status == 403:
            return RunRefused(f"the server at {self.where} refused access (403: {message})",
                              fix="check the key's permissions", field="key")  # fmt: skip
        if status == 404:
            return RunRefused(f"the server at {self.where} does not know model {self.model!r}, or the address is "
                              f"wrong (404: {message})", fix="check --model and --base-url", field="model")  # fmt: skip
        return RequestRejected(f"the server rejected the request ({status}: {message})")

    def _next_format(self, mode: str, refusal: str) -> TransientError:
        """The server refused ``mode``: the run moves to the next one (once, however many calls were refused)."""
        following = FORMAT_MODES[FORMAT_MODES.index(mode) + 1]
        if FORMAT_MODES.index(self.format_mode) < FORMAT_MODES.index(following):
            self.capabilities = Capabilities(following, confirmed=False, one_at_a_time=self.capabilities.one_at_a_time)
        return TransientError(f"the server refused response_format {mode} ({refusal}); asking with "
                              f"{self.format_mode} instead", adapted=True)  # fmt: skip


def _limits(max_connections: int) -> Any:
    import httpx2

    return httpx2.Limits(max_connections=max_connections, max_keepalive_connections=min(max_connections, 256))


def rate_info(headers: Any) -> RateInfo | None:
    """The ``x-ratelimit-*-requests`` headers, if the server sent them."""
    try:
        limit = headers.get("x-ratelimit-limit-requests")
        remaining = headers.get("x-ratelimit-remaining-requests")
        reset = headers.get("x-ratelimit-reset-requests")
    except AttributeError:
        return None
    if limit is None and remaining is None:
        return None
    try:
        return RateInfo(
            int(limit) if limit is not None else None,
            int(remaining) if remaining is not None else None,
            parse_duration(reset) if reset is not None else None,
        )
    except ValueError:
        return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float:
    """OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s" → seconds. Raises ValueError."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return float(text)  # a bare number of seconds, or ValueError
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _usage_dict(raw: dict[str, Any]) -> Usage:
    try:
        return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return Usage()


@dataclass(slots=True)
class _Answer:
    """The model's text from one response, and what came with it."""

    text: str
    usage: Usage
    finish_reason: str | None
    cut: bool = False  # we stopped reading at MAX_ANSWER_CHARS / MAX_BODY_BYTES
    rate_info: RateInfo | None = None


def _content_prefix(body: str) -> str | None:
    """The message content at the start of a chat-completion body we stopped reading part way through."""
    match = re.search(r'"content"\s*:\s*"', body)
    if match is None:
        return None
    text = body[match.end() :]
    for trim in range(8):  # the cut may fall inside an escape sequence
        try:
            return json.decoder.scanstring(text[: len(text) - trim] + '"', 0)[0]
        except ValueError:
            continue
    return None


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return str(cause or exc) or type(cause or exc).__name__


def _full_message(exc: Any) -> str:
    """All of an error body's message (classification looks at every line; people see only the first)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"][:4000]
        if isinstance(inner, str):
            return inner[:4000]
        if isinstance(body.get("message"), str):
            return body["message"][:4000]
    if isinstance(body, str):
        return body[:4000]
    return str(getattr(exc, "message", None) or exc)[:4000]


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None


MAX_MODEL_LIST_BYTES = 4 * 2**20
MAX_MODELS = 1000


def list_models(base_url: str | None, api_key: str | None, *, timeout: float = 5.0) -> list[str]:
    """The model names a server lists at ``GET /models`` (blocking; call it from a thread). Raises
    ProviderError with a sentence when the server has no list, refuses, or cannot be reached."""
    import urllib.error
    import urllib.request

    url = (base_url or "https://api.openai.com/v1").rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "mkflash-tui"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_MODEL_LIST_BYTES + 1)
    except urllib.error.HTTPError as exc:
        what = {401: "refused the key", 403: "refused the key", 404: "has no model list"}.get(exc.code)
        raise ProviderError(f"the server {what or f'answered {exc.code}'}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ProviderError(f"the server cannot be reached ({reason})") from None
    if len(data) > MAX_MODEL_LIST_BYTES:
        raise ProviderError("the server's model list is too large to read")
    try:
        entries = json.loads(data).get("data")
    except (ValueError, AttributeError):
        entries = None
    if not isinstance(entries, list):
        raise ProviderError("the server's model list cannot be read")
    names = {e["id"] for e in entries[:MAX_MODELS] if isinstance(e, dict) and isinstance(e.get("id"), str)}
    return sorted(n for n in names if 0 < len(n) <= 200 and n.isprintable())
