"""Cards from OpenAI or any OpenAI-compatible server (Ollama, vLLM, LM Studio) through the official SDK.

The SDK is imported lazily (it costs ~0.7 s) and one ``AsyncOpenAI`` client is created inside the running
event loop on first use, shared by every call of the run, and closed by ``aclose``. The SDK's own retries are
off: the engine's retry layer is the only one.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any

from ..models import Usage
from ..parsing import OutputError, parse_cards, parse_summary
from ..prompts import CARD_SCHEMA, SUMMARY_SCHEMA, CardRequest, card_messages, summary_messages
from ..throttle import RateInfo
from .base import (
    GenerationResult,
    ProgressCallback,
    RequestRejected,
    RunRefused,
    SummaryResult,
    TransientError,
)

DEFAULT_TIMEOUT = 120.0
# How we ask for JSON, best first; a server that refuses one mode moves the whole run to the next.
FORMAT_MODES = ("json_schema", "json_object", "prompt")


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
    ) -> None:
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.key_source = key_source
        self.timeout = timeout
        self.max_connections = max_connections
        self.stream = stream  # streaming shows tokens arriving (the TUI); a plain answer costs less CPU
        self.format_mode = FORMAT_MODES[0]
        self.stream_usage = True
        self._client: Any = None

    @property
    def cache_identity(self) -> tuple[str, ...]:
        """What, besides the request, decides the answer: never the key."""
        return ("openai", self.base_url or "https://api.openai.com/v1", self.model)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    def _ensure_client(self) -> Any:
        if self._client is None:
            import openai

            try:
                http_client = openai.DefaultAioHttpClient(
                    timeout=openai.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                    limits=_limits(self.max_connections),
                )
            except RuntimeError:  # the aiohttp extra is missing: the default transport still works
                http_client = None
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or "not-needed",
                base_url=self.base_url,
                max_retries=0,
                timeout=self.timeout,
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
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {}

    async def summarize(self, document_text: str, fallback_title: str) -> SummaryResult:
        mode = self.format_mode
        client = self._ensure_client()
        try:
            raw_response = await client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=summary_messages(document_text, json_hint=mode != "json_schema"),
                **self._format_kwargs(mode, SUMMARY_SCHEMA, "document_summary"),
            )
            response = raw_response.parse()
        except Exception as exc:
            raise self._translate(exc, mode) from None
        info = rate_info(raw_response.headers)
        usage = _usage(getattr(response, "usage", None))
        raw = (response.choices[0].message.content or "") if response.choices else ""
        try:
            return SummaryResult(parse_summary(raw, fallback_title), usage, info)
        except OutputError as exc:
            exc.usage = usage  # type: ignore[attr-defined]
            raise

    async def generate(self, request: CardRequest, on_tokens: ProgressCallback) -> GenerationResult:
        mode = self.format_mode
        client = self._ensure_client()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": card_messages(request, json_hint=mode != "json_schema"),
            **self._format_kwargs(mode, CARD_SCHEMA, "flashcards"),
        }
        if not self.stream:
            try:
                raw_response = await client.chat.completions.with_raw_response.create(**kwargs)
                response = raw_response.parse()
            except Exception as exc:
                raise self._translate(exc, mode) from None
            usage = _usage(getattr(response, "usage", None))
            choice = response.choices[0] if response.choices else None
            raw = (choice.message.content or "") if choice else ""
            on_tokens(usage.completion_tokens)
            return self._parse(raw, usage, choice.finish_reason if choice else None, rate_info(raw_response.headers))
        kwargs["stream"] = True
        if self.stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        usage: Usage | None = None
        finish_reason: str | None = None
        streamed = 0
        try:
            # The SDK sends the request and raises its typed errors; the SSE lines are read raw, because
            # building the SDK's model object for every delta costs ~10x the CPU of json.loads, and with
            # hundreds of streams at once that CPU is the event loop's latency.
            async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
                info = rate_info(response.headers)
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    event = _sse_json(payload)
                    if event.get("usage"):
                        usage = _usage_dict(event["usage"])
                    for choice in event.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            parts.append(content)
                            streamed += 1
                            on_tokens(streamed)
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
        except TransientError:
            raise
        except Exception as exc:
            raise self._translate(exc, mode) from None
        raw = "".join(parts)
        if usage is None:
            usage = Usage(0, streamed)
        if finish_reason is None:
            raise TransientError("the connection closed before the answer was complete")
        return self._parse(raw, usage, finish_reason, info)

    @staticmethod
    def _parse(raw: str, usage: Usage, finish_reason: str | None, info: RateInfo | None = None) -> GenerationResult:
        try:
            drafts = parse_cards(raw)
        except OutputError as exc:
            if finish_reason == "length":
                exc.args = ("the answer was cut off at the model's output limit",)
                exc.truncated = True  # type: ignore[attr-defined]
            exc.usage = usage  # type: ignore[attr-defined]
            raise
        return GenerationResult(drafts, usage, raw, finish_reason, info)

    # ------------------------------------------------------------------ errors

    def _translate(self, exc: Exception, mode: str) -> Exception:
        """Map an SDK exception to the engine's typed errors, with one sentence a user can act on."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            cause = exc.__cause__ or exc.__context__
            if type(cause).__name__ in ("ConnectTimeout", "ConnectError"):
                # The aiohttp transport reports a refused connection as a connect timeout.
                where = self.base_url or "api.openai.com"
                return TransientError(f"could not reach {where} ({_cause(exc)})", unreachable=True)
            return TransientError(f"the request timed out after {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            where = self.base_url or "api.openai.com"
            return TransientError(f"could not reach {where} ({_cause(exc)})", unreachable=True)
        if not isinstance(exc, openai.APIStatusError):
            if isinstance(exc, openai.OpenAIError):
                return TransientError(f"the server's answer was unusable ({exc})")
            # Errors from the transport while streaming (a connection cut mid-answer).
            return TransientError(f"the connection failed mid-answer ({type(exc).__name__})")
        status = exc.status_code
        code = (exc.code or "").lower()
        message = _error_message(exc)
        lowered = message.lower()
        headers = exc.response.headers if exc.response is not None else {}
        if status == 429 and (code == "insufficient_quota" or "insufficient_quota" in lowered):
            return RunRefused(
                "the server says this account has no quota left (insufficient_quota); "
                "add credit or use another key or provider."
            )
        if status == 429:
            return TransientError(
                f"rate limited (429): {message}",
                retry_after=_retry_after(headers),
                rate_limited=True,
                rate_info=rate_info(headers),
            )
        if status in (408, 409) or status >= 500:
            return TransientError(f"server error {status}: {message}", retry_after=_retry_after(headers))
        if status == 401:
            source = f" from {self.key_source}" if self.key_source else ""
            return RunRefused(
                f"the server rejected the API key{source} (401: {message}); check the key or pass --api-key."
            )
        if status == 403:
            return RunRefused(f"the server refused access (403: {message}); check the key's permissions.")
        if status == 404:
            return RunRefused(
                f"the server does not know model {self.model!r} or the URL is wrong (404: {message}); "
                "check --model and --base-url."
            )
        if status == 400 and (code == "context_length_exceeded" or "maximum context length" in lowered):
            return RunRefused(
                f"the request is longer than {self.model}'s context window ({message}); "
                "lower --chunk-tokens or set --context-tokens."
            )
        if status == 400 and "stream_options" in lowered and self.stream_usage:
            self.stream_usage = False
            return TransientError("the server does not support stream_options; retrying without it", retry_after=0)
        if status == 400 and any(k in lowered for k in ("response_format", "json_schema", "json_object")):
            next_mode = FORMAT_MODES[min(FORMAT_MODES.index(mode) + 1, len(FORMAT_MODES) - 1)]
            if mode != next_mode:
                if FORMAT_MODES.index(self.format_mode) < FORMAT_MODES.index(next_mode):
                    self.format_mode = next_mode
                return TransientError(f"the server does not support {mode}; falling back to {next_mode}", retry_after=0)
        return RequestRejected(f"the server rejected the request ({status}: {message})")


def _limits(max_connections: int) -> Any:
    import httpx2

    return httpx2.Limits(max_connections=max_connections, max_keepalive_connections=min(max_connections, 256))


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(int(getattr(raw, "prompt_tokens", 0) or 0), int(getattr(raw, "completion_tokens", 0) or 0))


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
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def _sse_json(payload: str) -> dict[str, Any]:
    """One streamed event; an error event or a line that is not JSON is a transient fault of this attempt."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise TransientError("the server sent a streamed event that is not JSON") from None
    if not isinstance(event, dict):
        raise TransientError("the server sent a streamed event that is not a JSON object")
    if event.get("error"):
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise TransientError(f"the server reported an error mid-answer: {message}")
    return event


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return str(cause or exc) or type(cause or exc).__name__


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(body.get("message"), str):
            return body["message"][:300]
    text = getattr(exc, "message", None) or str(exc)
    try:
        return json.loads(text)["error"]["message"][:300]
    except Exception:
        return str(text)[:300]


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
