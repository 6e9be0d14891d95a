"""What an error from the SDK means for the run, in any server's dialect: nothing listening, no such host, a
refused key, an unknown model, a rate limit, a request too long for the window, a response format the server does
not take (the provider then asks the next way). Each becomes one of the engine's typed errors with one sentence;
the server's own text is cut to its first meaningful line and never carries the key."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from .base import FORMAT_MODES, Capabilities, ContextTooLong, RequestRejected, RunRefused, TransientError
from .server_errors import context_overflow, first_line, names_output_format
from .wire import rate_info, retry_after


def translate(provider: Any, exc: Exception, mode: str) -> Exception:
    """Map an SDK exception to the engine's typed errors, with one sentence a user can act on.

    A server's own text is cut to its first meaningful line and never carries the key (servers echo it).
    """
    import openai

    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
        unreachable = _unreachable(provider, exc)
        if unreachable:
            return TransientError(unreachable, unreachable=True)
        if isinstance(exc, openai.APITimeoutError):
            return TransientError(f"the request timed out after {provider.timeout:g} s", timed_out=True)
        return TransientError(f"the connection to {provider.where} failed ({provider.redact(first_line(_cause(exc)))})")
    if not isinstance(exc, openai.APIStatusError):
        if isinstance(exc, openai.OpenAIError):
            return TransientError(f"the server's answer was unusable ({provider.redact(first_line(str(exc)))})")
        # Errors from the transport while streaming (a connection cut mid-answer).
        return TransientError(f"the connection failed mid-answer ({type(exc).__name__})")
    return _refusal(provider, exc, mode)


def _unreachable(provider: Any, exc: Exception) -> str:
    """The sentence for a request that never reached a server (nothing listening, no such host, no answer
    to the connection), or "" when it did reach one."""
    import socket

    where = provider.where
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
        return f"{where} did not answer the connection within {min(10.0, provider.timeout):g} s; is --base-url right?"
    if any(type(e).__name__ in ("ConnectError", "ClientConnectorError") for e in chain):
        return f"cannot connect to {where} ({provider.redact(first_line(_cause(exc)))}); is --base-url right?"
    return ""


def _refusal(provider: Any, exc: Any, mode: str) -> Exception:
    """What an HTTP error status means for the run, in any server's dialect."""
    status = exc.status_code
    code = (exc.code or "").lower()
    body = getattr(exc, "body", None)
    full = _full_message(exc)  # every line: the reason may sit below a summary line (pydantic)
    message = provider.message_of(body) or provider.redact(first_line(full))
    lowered = full.lower()
    headers = exc.response.headers if exc.response is not None else {}
    if status == 429 and (code == "insufficient_quota" or "insufficient_quota" in lowered):
        return RunRefused("the server says this account has no quota left (insufficient_quota)",
                          fix="add credit or use another key or provider", field="key")  # fmt: skip
    if status == 429:
        return TransientError(
            f"rate limited (429): {message}",
            retry_after=retry_after(headers),
            rate_limited=True,
            rate_info=rate_info(headers),
        )
    overflow = context_overflow(full, body, code) if status in (400, 413, 422, 500) else None
    if overflow is not None:
        return ContextTooLong(overflow.sentence(where=provider.where), prompt_tokens=overflow.prompt_tokens,
                              window=overflow.window)  # fmt: skip
    if mode != FORMAT_MODES[-1] and (status in (400, 415, 422) or status >= 500) and names_output_format(full):
        return _next_format(provider, mode, f"{status}: {message}")
    if status == 400 and "stream_options" in lowered and provider.stream_usage:
        provider.stream_usage = False
        return TransientError("the server does not support stream_options; asking without it", adapted=True)
    if status in (408, 409) or status >= 500:
        return TransientError(f"server error {status}: {message}", retry_after=retry_after(headers))
    if status == 401:
        source = f" from {provider.key_source}" if provider.key_source else ""
        return RunRefused(f"the server at {provider.where} rejected the API key{source} (401: {message})",
                          fix="check the key or pass --api-key", field="key")  # fmt: skip
    if status == 403:
        return RunRefused(f"the server at {provider.where} refused access (403: {message})",
                          fix="check the key's permissions", field="key")  # fmt: skip
    if status == 404:
        return RunRefused(f"the server at {provider.where} does not know model {provider.model!r}, or the address is "
                          f"wrong (404: {message})", fix="check --model and --base-url", field="model")  # fmt: skip
    return RequestRejected(f"the server rejected the request ({status}: {message})")


def _next_format(provider: Any, mode: str, refusal: str) -> TransientError:
    """The server refused ``mode``: the run moves to the next one (once, however many calls were refused)."""
    following = FORMAT_MODES[FORMAT_MODES.index(mode) + 1]
    if FORMAT_MODES.index(provider.format_mode) < FORMAT_MODES.index(following):
        one_at_a_time = provider.capabilities.one_at_a_time
        provider.capabilities = Capabilities(following, confirmed=False, one_at_a_time=one_at_a_time)
    return TransientError(f"the server refused response_format {mode} ({refusal}); asking with "
                          f"{provider.format_mode} instead", adapted=True)  # fmt: skip


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
