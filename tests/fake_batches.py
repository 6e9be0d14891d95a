"""OpenAI's Files and Batch APIs for ``FakeOpenAI`` (``FakeOpenAI(batches=BatchEngine(...))``).

The shapes follow the API's own definitions as the official SDK carries them (openai-python 3.x,
``types/batch.py``, ``types/file_object.py``, ``types/batch_error.py``, ``types/batch_request_counts.py``) and
OpenAI's batch guide: ``POST /v1/files`` (multipart, ``purpose=batch``) gives a ``file`` object;
``POST /v1/batches`` gives a ``batch`` that is ``validating``, then ``in_progress`` (or ``failed`` with
``errors.data`` naming the line), then ``finalizing`` and ``completed``, or ``expired`` or ``cancelled`` (through
``cancelling``) with what it answered by then; ``GET /v1/batches`` lists the newest first, by cursor
(``after``, ``limit``, ``has_more``). The result file holds one line per answered request, **not in input order**:
``{"id": "batch_req_…", "custom_id": …, "response": {"status_code": 200, "request_id": …, "body": <completion>},
"error": null}``; the error file holds requests answered with an error status (``response.status_code`` 4xx with
the usual error body) and requests never run (``"response": null, "error": {"code": "batch_expired", …}``).
A missing object is a 404 with ``{"error": {"message": "No such …", "type": "invalid_request_error", …}}``.

Time is the server's: a batch moves on when it is asked about after its processing time.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

EXPIRED = {"code": "batch_expired",
           "message": "This request could not be executed before the completion window expired."}
CANCELLED = {"code": "batch_cancelled", "message": "This request was not executed because the batch was cancelled."}


@dataclass
class FakeBatch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: float
    lines: list[dict[str, Any]]
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancel_asked: float | None = None
    times: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0


class BatchEngine:
    """A batch engine. ``processing``: seconds from creation to the end; ``fail(body)``: an (HTTP status,
    message) for a request answered with an error; ``expire``: the batch expires after answering this share of its
    requests; ``max_requests``: more lines than this fail validation; ``token_limit``: the enqueued-token limit
    (prompt at ~4 characters a token, plus ``max_tokens``) over the batches in progress; ``seed``: the output's
    order."""

    def __init__(self, *, processing: float = 0.2, fail: Callable[[dict[str, Any]], tuple[int, str] | None] | None
                 = None, expire: float | None = None, max_requests: int = 50_000,
                 token_limit: int | None = None, seed: int = 0) -> None:  # fmt: skip
        self.processing = processing
        self.fail = fail
        self.expire = expire
        self.max_requests = max_requests
        self.token_limit = token_limit
        self.rng = random.Random(seed)
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.log: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        self._server: Any = None

    def mount(self, app: web.Application, server: Any) -> None:
        self._server = server
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files", self._list_files)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_delete("/v1/files/{id}", self._delete_file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)

    # ------------------------------------------------------------------ for tests

    def created(self) -> list[FakeBatch]:
        return list(self.batches.values())

    def lines_sent(self) -> list[dict[str, Any]]:
        return [line for batch in self.batches.values() for line in batch.lines]

    # ------------------------------------------------------------------ files

    def _authorized(self, request: web.Request) -> web.Response | None:
        key = self._server.api_key if self._server is not None else None
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        self.log.append((request.method, request.path))
        return None

    def _new_file(self, name: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = "file-" + uuid.uuid4().hex[:24]
        info = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()), "filename": name,
                "purpose": purpose, "status": "processed", "expires_at": None, "status_details": None}  # fmt: skip
        self.files[file_id] = info
        self.contents[file_id] = data
        return info

    async def _upload(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        reader = await request.multipart()
        purpose, name, data = "", "upload", b""
        async for part in reader:
            if part.name == "purpose":
                purpose = (await part.read()).decode()
            elif part.name == "file":
                name = part.filename or name
                data = await part.read()
        if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data"):
            return _error(400, f"'{purpose}' is not one of ['fine-tune', 'assistants', 'batch', 'user_data', "
                          "'vision'] - 'purpose'", None, param="purpose")  # fmt: skip
        with self._lock:
            return web.json_response(self._new_file(name, purpose, data))

    async def _list_files(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        purpose = request.query.get("purpose")
        items = [f for f in reversed(self.files.values()) if purpose is None or f["purpose"] == purpose]
        return web.json_response(_page(items, request))

    async def _file(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        info = self.files.get(request.match_info["id"])
        return web.json_response(info) if info else _missing("File", request.match_info["id"])

    async def _delete_file(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        file_id = request.match_info["id"]
        if self.files.pop(file_id, None) is None:
            return _missing("File", file_id)
        self.contents.pop(file_id, None)
        self.deleted.append(file_id)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    async def _content(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        file_id = request.match_info["id"]
        if file_id not in self.contents:
            return _missing("File", file_id)
        return web.Response(body=self.contents[file_id], content_type="application/octet-stream")

    # ------------------------------------------------------------------ batches

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = await request.json()
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return _missing("File", str(file_id))
        if body.get("endpoint") not in ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses"):
            return _error(400, f"Invalid endpoint: {body.get('endpoint')}", "invalid_value", param="endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "Invalid completion_window: only '24h' is supported.", "invalid_value",
                          param="completion_window")  # fmt: skip
        metadata = body.get("metadata")
        if metadata is not None and (len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512
                                                                for k, v in metadata.items())):  # fmt: skip
            return _error(400, "Invalid metadata: at most 16 keys of 64 characters, values of 512.", "invalid_value",
                          param="metadata")  # fmt: skip
        with self._lock:
            batch = FakeBatch("batch_" + uuid.uuid4().hex[:24], file_id, body["endpoint"], body["completion_window"],
                              metadata, time.time(), [])  # fmt: skip
            batch.times["created_at"] = int(batch.created_at)
            self._validate(batch, self.contents[file_id])
            self.batches[batch.id] = batch
            return web.json_response(self._object(batch))

    def _validate(self, batch: FakeBatch, data: bytes) -> None:
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for number, raw in enumerate(data.splitlines(), 1):
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append({"code": "invalid_json_line", "line": number, "param": None,
                               "message": "This line is not parseable as valid JSON."})  # fmt: skip
                continue
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str):
                errors.append({"code": "missing_required_parameter", "line": number, "param": "custom_id",
                               "message": "Missing required parameter: 'custom_id'."})  # fmt: skip
            elif custom_id in seen:
                errors.append({"code": "duplicate_custom_id", "line": number, "param": "custom_id",
                               "message": "The custom_id for this request is a duplicate of another request."})
            seen.add(str(custom_id))
            if line.get("url") != batch.endpoint or line.get("method") != "POST":
                errors.append({"code": "invalid_url", "line": number, "param": "url",
                               "message": "The URL provided for this request does not match the batch endpoint."})
            models.add(str((line.get("body") or {}).get("model")))
            batch.lines.append(line)
        if len(models) > 1:
            errors.append({"code": "mismatched_model", "line": None, "param": "body.model",
                           "message": "The provided model does not match the model of other requests in the batch."})
        if len(batch.lines) > self.max_requests:
            errors.append({"code": "too_many_requests", "line": None, "param": None, "message":
                           f"The batch input file is larger than the {self.max_requests} maximum number of requests."})
        if self.token_limit is not None and not errors:
            running = sum(_tokens(b.lines) for b in self.batches.values() if b.status in ("validating", "in_progress",
                                                                                         "finalizing"))  # fmt: skip
            if running + _tokens(batch.lines) > self.token_limit:
                errors.append({"code": "token_limit_exceeded", "line": None, "param": None, "message":
                               f"Enqueued token limit reached for {next(iter(models))} in organization org-fake. "
                               f"Limit: {self.token_limit:,} enqueued tokens. Please try again once some in_progress "
                               "batches have been completed."})  # fmt: skip
        batch.errors = errors

    def _batch_of(self, request: web.Request) -> FakeBatch | web.Response:
        """The batch a request names, or the answer to give instead (401, 404)."""
        if (refused := self._authorized(request)) is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        return batch if batch is not None else _missing("Batch", request.match_info["id"])

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self._batch_of(request)
        if isinstance(batch, web.Response):
            return batch
        with self._lock:
            self._advance(batch)
            return web.json_response(self._object(batch))

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        with self._lock:
            for batch in self.batches.values():
                self._advance(batch)
            items = [self._object(b) for b in sorted(self.batches.values(), key=lambda b: -b.created_at)]
        return web.json_response(_page(items, request))

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self._batch_of(request)
        if isinstance(batch, web.Response):
            return batch
        with self._lock:
            self._advance(batch)
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                return _error(409, f"Cannot cancel a batch with status '{batch.status}'.", None)
            batch.status = "cancelling"
            batch.cancel_asked = time.time()
            batch.times["cancelling_at"] = int(time.time())
            return web.json_response(self._object(batch))

    def _advance(self, batch: FakeBatch) -> None:
        """Move ``batch`` on to where its time says it is."""
        now = time.time()
        if batch.status == "validating":
            if batch.errors:
                batch.status = "failed"
                batch.times["failed_at"] = int(now)
                return
            batch.status = "in_progress"
            batch.times["in_progress_at"] = int(now)
        if batch.status == "cancelling":
            self._finish(batch, "cancelled", done=0.0)
            return
        if batch.status == "in_progress" and now - batch.created_at >= self.processing:
            if self.expire is not None:
                self._finish(batch, "expired", done=self.expire)
            else:
                self._finish(batch, "completed", done=1.0)
        elif batch.status == "in_progress":
            share = (now - batch.created_at) / max(self.processing, 1e-9)
            batch.completed = int(len(batch.lines) * share * 0.5)

    def _finish(self, batch: FakeBatch, status: str, *, done: float) -> None:
        answered = batch.lines[: int(len(batch.lines) * done)]
        missed = batch.lines[len(answered):]
        out, err = [], []
        for line in answered:
            failure = self.fail(line["body"]) if self.fail else None
            entry_id = "batch_req_" + uuid.uuid4().hex[:24]
            if failure is not None:
                status_code, message = failure
                err.append({"id": entry_id, "custom_id": line["custom_id"], "response": {
                    "status_code": status_code, "request_id": uuid.uuid4().hex, "body": {"error": {
                        "message": message, "type": "invalid_request_error", "param": None, "code": None}}},
                    "error": None})  # fmt: skip
                continue
            completion = self._server.completion(line["body"])
            out.append({"id": entry_id, "custom_id": line["custom_id"], "response": {
                "status_code": 200, "request_id": uuid.uuid4().hex, "body": completion}, "error": None})  # fmt: skip
        for line in missed:
            err.append({"id": "batch_req_" + uuid.uuid4().hex[:24], "custom_id": line["custom_id"], "response": None,
                        "error": EXPIRED if status == "expired" else CANCELLED})  # fmt: skip
        self.rng.shuffle(out)  # the output's order is not the input's
        if out:
            batch.output_file_id = self._new_file(f"{batch.id}_output.jsonl", "batch_output",
                                                  b"".join(json.dumps(e).encode() + b"\n" for e in out))["id"]
        if err:
            batch.error_file_id = self._new_file(f"{batch.id}_error.jsonl", "batch_output",
                                                 b"".join(json.dumps(e).encode() + b"\n" for e in err))["id"]
        batch.completed, batch.failed = len(out), len(err)
        batch.status = status
        batch.times["finalizing_at"] = batch.times.get("finalizing_at", int(time.time()))
        batch.times[f"{status}_at"] = int(time.time())

    def _object(self, batch: FakeBatch) -> dict[str, Any]:
        return {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint,
            "errors": {"object": "list", "data": batch.errors} if batch.status == "failed" else None,
            "input_file_id": batch.input_file_id, "completion_window": batch.completion_window,
            "status": batch.status, "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at), "expires_at": int(batch.created_at) + 86_400,
            **{k: batch.times.get(k) for k in ("in_progress_at", "finalizing_at", "completed_at", "failed_at",
                                               "expired_at", "cancelling_at", "cancelled_at")},
            "request_counts": {"total": len(batch.lines), "completed": batch.completed, "failed": batch.failed},
            "metadata": batch.metadata,
        }  # fmt: skip


def _tokens(lines: list[dict[str, Any]]) -> int:
    total = 0
    for line in lines:
        body = line.get("body") or {}
        total += sum(len(str(m.get("content", ""))) for m in body.get("messages", ())) // 4
        total += int(body.get("max_tokens") or 0)
    return total


def _page(items: list[dict[str, Any]], request: web.Request) -> dict[str, Any]:
    """One page of a cursor-paged list: after ``after``'s id, at most ``limit`` (default 20)."""
    limit = max(1, min(100, int(request.query.get("limit", "20"))))
    after = request.query.get("after")
    start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0) if after else 0
    data = items[start: start + limit]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": start + limit < len(items)}  # fmt: skip


def _missing(kind: str, object_id: str) -> web.Response:
    return _error(404, f"No such {kind}: {object_id}", None, param="id")


def _error(status: int, message: str, code: str | None, *, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}}, status=status)  # fmt: skip
