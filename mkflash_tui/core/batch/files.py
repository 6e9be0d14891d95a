"""Input files and result files: a request as a line, lines grouped into files within the provider's limits,
and what an ended batch's result and error files say of each line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..store import BatchRecord

ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """What one input file may hold at a provider's batch engine."""

    requests: int = 50_000
    bytes: int = 200 * 2**20
    tokens: int | None = None  # the enqueued-token limit per model (no endpoint reports it: --batch-token-limit)


LIMITS = {"openai": BatchLimits(), "groq": BatchLimits(requests=50_000, bytes=200 * 2**20)}


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


def read_results(record: BatchRecord) -> tuple[dict[str, bytes], dict[str, str]]:
    """An ended batch's answers (custom_id -> the response body, a chat completion) and, for each of its lines
    without one, why (its error file's reason, expiry, cancellation, a batch refused whole)."""
    results: dict[str, bytes] = {}
    misses: dict[str, str] = {}
    for line in (record.output or "").splitlines():
        custom_id, body, why = _result(line)
        if custom_id is not None and body is not None:
            results[custom_id] = body
        elif custom_id is not None:
            misses[custom_id] = why
    for line in (record.errors or "").splitlines():
        custom_id, _body, why = _result(line)
        if custom_id is not None and custom_id not in results:
            misses[custom_id] = why
    unanswered = {
        "expired": "the batch expired before answering it",
        "cancelled": "the batch was cancelled before answering it",
        "failed": f"the batch failed validation: {record.error or 'no reason given'}",
    }.get(record.status, "the batch's result file has no line for it")
    for custom_id in record.lines:
        if custom_id not in results and custom_id not in misses:
            misses[custom_id] = unanswered
    return results, misses


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


def tokens(body: dict[str, Any]) -> int:
    """A line's enqueued tokens, as a provider counts them: its prompt (about 4 characters a token) and the
    answer's bound."""
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", ())) // 4
    return prompt + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
