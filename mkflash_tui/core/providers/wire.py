"""Reading a server's answer as untrusted data: a plain body or a stream of server-sent events, within size
limits, checked to be a chat completion; a stream silent too long dropped and one that ended without its end told
apart; and the rate-limit headers that come with the answer.

The body is read raw rather than through the SDK's models: building the SDK's model object for every streamed
delta costs ~10x the CPU of json.loads, which with hundreds of streams at once is the event loop's latency.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..models import Usage
from ..throttle import RateInfo
from .base import ProgressCallback, TransientError

MAX_BODY_BYTES = 2 * 2**20  # a plain answer's body is read up to this size
MAX_STREAM_BYTES = 32 * 2**20  # a streamed answer's events (mostly envelope) are read up to this size
MAX_ANSWER_CHARS = 512 * 1024  # the model's own text in one answer; beyond it the answer is cut
MAX_LINE_BYTES = 2**20  # one streamed event


class Server(Protocol):
    """What reading an answer needs of its provider: where the server is, how long a stream may be silent, what
    it learned of its streams, and how to say a server's message."""

    where: str
    idle_timeout: float
    streams_usage: bool | None

    def message_of(self, body: Any) -> str: ...


@dataclass(slots=True)
class Answer:
    """The model's text from one response, and what came with it."""

    text: str
    usage: Usage
    finish_reason: str | None
    cut: bool = False  # we stopped reading at MAX_ANSWER_CHARS / MAX_BODY_BYTES
    rate_info: RateInfo | None = None


async def read_body(response: Any) -> bytes:
    """A plain answer's body, read up to ``MAX_BODY_BYTES``."""
    parts: list[bytes] = []
    size = 0
    async for data in response.iter_bytes():
        size += len(data)
        if size > MAX_BODY_BYTES:
            parts.append(data[: len(data) - (size - MAX_BODY_BYTES)])
            break
        parts.append(data)
    return b"".join(parts)


def read_completion(body: bytes, content_type: str, server: Server) -> Answer:
    """The text of a plain chat-completion body; anything else is a transient fault of this attempt."""
    cut = len(body) >= MAX_BODY_BYTES
    head = body[:512].lstrip().lower()
    if "html" in content_type or head.startswith((b"<!doctype", b"<html", b"<head", b"<body")):
        raise not_a_completion(server.where, "an HTML page")
    text = body.decode("utf-8", "replace")
    if cut:
        content = _content_prefix(text)
        if content is None:
            raise not_a_completion(server.where, f"a body larger than {MAX_BODY_BYTES // 2**20} MB")
        return Answer(content[:MAX_ANSWER_CHARS], Usage(), "length", cut=True)
    try:
        data = json.loads(text)
    except ValueError:
        raise not_a_completion(server.where, "a body that is not JSON") from None
    try:
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        if not isinstance(content, str):
            raise TypeError
        finish_reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        if isinstance(data, dict) and data.get("error"):
            raise TransientError(f"the server reported an error: {server.message_of(data)}") from None
        raise not_a_completion(server.where, "JSON that is not a chat completion") from None
    usage = usage_dict(data.get("usage")) if isinstance(data.get("usage"), dict) else Usage()
    if len(content) > MAX_ANSWER_CHARS:
        return Answer(content[:MAX_ANSWER_CHARS], usage, "length", cut=True)
    return Answer(content, usage, finish_reason if isinstance(finish_reason, str) else None)


async def read_stream(response: Any, on_tokens: ProgressCallback | None, server: Server, *, pace: float = 0.0,
                      socket: Any = None) -> Answer:  # fmt: skip
    """Server-sent events, read within the size limits; a stream silent for the idle limit is dropped.

    ``pace``: after each read, wait this long, with the connection's ``socket`` (its asyncio transport, when
    known) not read meanwhile, so that the events that arrive are read in one go. Read as they come, one small
    event per token, every event cost the event loop a wake-up, a read and the transport's layers (78 % of a core
    for 266 streams), more than the event itself."""
    loop = asyncio.get_running_loop()
    idle = server.idle_timeout
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
                    event = sse_json(payload, server)
                    events += 1
                    if isinstance(event.get("usage"), dict):
                        usage = usage_dict(event["usage"])
                        server.streams_usage = True
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
                        return Answer(text, usage or Usage(0, streamed), "length", cut=True)
                if done:
                    break
                if pace:
                    await _rest(pace, socket)
    except TimeoutError:
        raise TransientError(
            f"the server sent nothing for {idle:g} s; dropped the stream", timed_out=True
        ) from None
    if not events:
        raise not_a_completion(server.where, "a stream with no chat-completion events")
    if finish_reason is None and done:
        # The server closed the stream properly but the answer has no end: llama-cpp-python does this to a
        # running answer when another request arrives (its interrupt_requests setting).
        raise TransientError("the server ended the answer before it was complete (no finish_reason)",
                             cut_stream=True)  # fmt: skip
    if finish_reason is None:
        raise TransientError("the connection closed before the answer was complete")
    if usage is None and server.streams_usage is None:
        server.streams_usage = False
    return Answer("".join(parts), usage or Usage(0, streamed), finish_reason)


def not_a_completion(where: str, what: str) -> TransientError:
    return TransientError(
        f"the server at {where} answered with {what}, not a chat completion; is --base-url right?",
        wrong_server=True,
    )


async def _rest(seconds: float, socket: Any) -> None:
    """Wait, the connection not read meanwhile (the kernel keeps what arrives), unless something else paused it."""
    paused = socket is not None and socket.is_reading()
    if paused:
        socket.pause_reading()
    try:
        await asyncio.sleep(seconds)
    finally:
        if paused and not socket.is_closing():
            socket.resume_reading()


def sse_json(payload: bytes, server: Server) -> dict[str, Any]:
    """One streamed event; an error event or a line that is not JSON is a transient fault of this attempt."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise TransientError("the server sent a streamed event that is not JSON") from None
    if not isinstance(event, dict):
        raise TransientError("the server sent a streamed event that is not a JSON object")
    if event.get("error"):
        raise TransientError(f"the server reported an error mid-answer: {server.message_of(event)}")
    return event


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


def usage_dict(raw: dict[str, Any]) -> Usage:
    try:
        return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return Usage()


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


def retry_after(headers: Any) -> float | None:
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
