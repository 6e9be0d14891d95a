"""What a server's refusal means, whichever server wrote it.

Every OpenAI-compatible server words the same refusals its own way: a request too long for the context window
(llama.cpp's ``exceed_context_size_error``, Ollama's "longer than the context length", "maximum context length
is N" from OpenAI, vLLM and llama-cpp-python, LM Studio's ``n_keep >= n_ctx``), or a structured-output mode it
does not support (a 400, a 422 or, from llama-cpp-python, a 500 carrying a pydantic message). A server's error
text is also untrusted and often long (a Python traceback, a file path of the server): only its first
meaningful line is ever shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_CHARS = 300

# Lines that are a traceback's frame or header, or a pydantic hint, not the error itself.
_NOISE_LINE = re.compile(
    r"^\s*(Traceback \(most recent call last\)|File \"|\^+$|During handling|For further information visit|"
    r"\[type=)",
)
# A file path of the server's own machine (/usr/lib/python3/…/x.py, C:\…\x.py): none of the user's business.
_PATH = re.compile(r"(?:[A-Za-z]:\\|/)(?:[\w.\-]+[\\/])+[\w.\-]+\.(?:py|go|cpp|cc|h|rs|js|ts)\b(?::\d+)?")
_PYDANTIC_COUNT = re.compile(r"^\d+ validation errors?(?: for \w+)?:?$")
# pydantic 2's error dicts as llama-cpp-python's server prints them:
# {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "Input should be …", …}
_PYDANTIC_DICT = re.compile(r"'loc': \(([^)]*)\), 'msg': (?:\"([^\"]*)\"|'([^']*)')")


def first_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The line of a server's error text that says what went wrong: no traceback, no file paths, one line.

    A pydantic report ("1 validation error for X" / "field" / "  Input should be …") keeps the field and the
    reason, which is what a person needs.
    """
    lines = [line.strip() for line in str(text).replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not _NOISE_LINE.match(line)]
    if not lines:
        return ""
    line = lines[0]
    if _PYDANTIC_COUNT.match(line):
        line = _pydantic_reason(lines[1:]) or line
    line = _PATH.sub("[server file]", line)
    line = re.sub(r"\[type=[^\]]*\]?", "", line).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _pydantic_reason(lines: list[str]) -> str:
    """"field: reason" from the lines after a pydantic "N validation errors" header (dict or text form)."""
    for line in lines:
        match = _PYDANTIC_DICT.search(line)
        if match:
            loc = [part.strip(" '\"") for part in match.group(1).split(",")]
            field = ".".join(part for part in loc if part and part != "body")
            return f"{field}: {match.group(2) or match.group(3)}" if field else match.group(2) or match.group(3)
    if len(lines) >= 2:  # the text form: "field" on one line, "  Input should be …" on the next
        return f"{lines[0]}: {lines[1]}"
    return ""


def error_text(body: Any, fallback: str = "") -> str:
    """The message of an error body as the SDK hands it over (``exc.body``: the ``error`` object, a bare
    string, or the whole body), else ``fallback``; cut to its first meaningful line."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]:
            return first_line(inner["message"])
        if isinstance(inner, str) and inner:
            return first_line(inner)
        for key in ("message", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                return first_line(body[key])
    if isinstance(body, str) and body.strip():
        return first_line(body)
    return first_line(fallback)


@dataclass(frozen=True, slots=True)
class Overflow:
    """A request refused for its length: how long it was and the window it had to fit, where the server said."""

    prompt_tokens: int | None
    window: int | None

    def sentence(self, *, where: str) -> str:
        """One sentence with the numbers the server gave."""
        asked = f" ({self.prompt_tokens:,} tokens)" if self.prompt_tokens else ""
        window = f" of {self.window:,} tokens per request" if self.window else ""
        return f"the request{asked} is longer than the context window{window} of the server at {where}"


_NUMBER = r"(\d[\d,]*)"
# (pattern, group of the prompt's tokens or 0, group of the window or 0), best first. Sources:
# llama.cpp tools/server/server-context.cpp ("request (%d tokens) exceeds the available context size (%d tokens)",
# "input (%d tokens) is larger than the max context size (%d tokens)"); llama-cpp-python llama_cpp/server/errors.py
# and OpenAI ("This model's maximum context length is %d tokens. However, you requested %d tokens"); vLLM
# ("maximum context length is %d tokens. However, your request has %d input tokens"); LM Studio ("n_keep: %d >=
# n_ctx: %d", "Trying to keep the first %d tokens … context length of only %d tokens"); Ollama llm/llama_server.go
# ("the prompt is longer than the context length currently available to the model", no numbers) and
# server/routes.go ("the input length exceeds the context length").
_OVERFLOWS: tuple[tuple[re.Pattern[str], int, int], ...] = (
    (re.compile(rf"request \({_NUMBER} tokens\) exceeds the available context size \({_NUMBER} tokens\)"), 1, 2),
    (re.compile(rf"input \({_NUMBER} tokens\) is larger than the max context size \({_NUMBER} tokens\)"), 1, 2),
    (re.compile(rf"maximum context length is {_NUMBER} tokens.*?(?:requested|resulted in|has) {_NUMBER}", re.S), 2, 1),
    (re.compile(rf"maximum context length is {_NUMBER}"), 0, 1),
    (re.compile(rf"n_keep:? \(?{_NUMBER}\)? >= n_ctx:? \(?{_NUMBER}"), 1, 2),
    (re.compile(rf"keep the first {_NUMBER} tokens.*?context length of only {_NUMBER} tokens", re.S), 1, 2),
    (re.compile(r"longer than the context length|input length exceeds the context length|context length exceeded|"
                r"context_length_exceeded|greater than the context length|exceeds the available context"), 0, 0),
)  # fmt: skip


def context_overflow(message: str, body: Any = None, code: str | None = None) -> Overflow | None:
    """The refusal of a request for its length, recognised in any server's words (None: it is not one)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("type") == "exceed_context_size_error":
            return Overflow(_int(inner.get("n_prompt_tokens")), _int(inner.get("n_ctx")))
    text = str(message)
    for pattern, asked, window in _OVERFLOWS:
        match = pattern.search(text)
        if match:
            return Overflow(_int(match.group(asked)) if asked else None, _int(match.group(window)) if window else None)
    if (code or "").lower() == "context_length_exceeded":
        return Overflow(None, None)
    return None


_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|\bschema\b|grammar", re.IGNORECASE)


def names_output_format(message: str) -> bool:
    """Whether a refusal is about how we asked for JSON (the response format, a schema or a grammar)."""
    return bool(_FORMAT_WORDS.search(str(message)))


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).replace(",", ""))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


REDACTED = "[redacted key]"
# Secrets of the shapes providers issue (OpenAI sk-/sk-proj-, Groq gsk_, xAI xai-, Google AIza…) and bearer tokens.
_KEY_LIKE = re.compile(
    r"\b(?:sk|rk|pk|gsk|xai)[-_][A-Za-z0-9_\-]{16,}|\bAIza[0-9A-Za-z_\-]{30,}|(?<=Bearer )[A-Za-z0-9._\-]{8,}"
)
KEY_PIECE = 6  # a piece of the key this long is enough to help rebuild it


def redact(text: str, key: str | None) -> str:
    """``text`` without the API key, without any piece of it of ``KEY_PIECE`` characters or more (a server that
    echoes "key ending …" and "prefix …" hands out the key in parts), and without anything shaped like a key."""
    if key and len(key) >= 4:
        text = text.replace(key, REDACTED)
        if len(key) >= KEY_PIECE:
            pieces = {key[i : i + KEY_PIECE] for i in range(len(key) - KEY_PIECE + 1)}
            marked = [False] * len(text)
            for i in range(len(text) - KEY_PIECE + 1):
                if text[i : i + KEY_PIECE] in pieces:
                    marked[i : i + KEY_PIECE] = [True] * KEY_PIECE
            if any(marked):
                out: list[str] = []
                for i, ch in enumerate(text):
                    if not marked[i]:
                        out.append(ch)
                    elif i == 0 or not marked[i - 1]:
                        out.append(REDACTED)
                text = "".join(out)
    return _KEY_LIKE.sub(REDACTED, text)
