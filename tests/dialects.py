"""How real OpenAI-compatible servers differ, for ``tests/fake_openai.py``.

Each dialect copies one server's behaviour where it differs from OpenAI's: the status and body of its refusals,
how it ends streams, how many requests it serves at once (the rest wait in its queue without a byte sent), the
context window of one request, and the endpoints that describe it. Sources, for each:

- llama-cpp-python 0.3.36 (``python -m llama_cpp.server``): recorded from the real server with Gemma 3 270M,
  and its source (``llama_cpp/server/app.py``, ``errors.py``, ``settings.py``).
- llama.cpp's ``llama-server`` (the one vendored in that sdist): recorded from the real server, and its source
  (``tools/server/server-common.cpp`` ``format_error_response``, ``server-context.cpp``).
- Ollama (github.com/ollama/ollama at fb30760): ``openai/openai.go`` (``NewError``), ``server/routes.go``
  (``/api/ps``, ``/api/show``, "model %q not found, try pulling it first"), ``llm/llama_server.go`` (the prompt
  cut to the context, or "the prompt is longer than the context length currently available to the model"),
  ``envconfig/config.go`` (OLLAMA_NUM_PARALLEL 1, OLLAMA_CONTEXT_LENGTH 4096 on small GPUs).
- vLLM: ``vllm/entrypoints/openai/engine/protocol.py`` (``ErrorResponse{error: ErrorInfo}``, ``ModelCard``
  with ``max_model_len``) and its renderer ("This model's maximum context length is %d tokens. However, your
  request has %d input tokens. Please reduce the length of the input messages.").
- LM Studio 0.4 (closed source): its REST docs (``/api/v1/models``: ``loaded_instances[].config.context_length``,
  ``max_context_length``) and the errors users report from it (bodies ``{"error": "<text>"}``:
  "'response_format.type' must be 'json_schema' or 'text'", "The number of tokens to keep from the initial
  prompt is greater than the context length (n_keep: %d >= n_ctx: %d) …").
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's token count of a request: about four characters a token (as the fake's usage reports)."""
    return max(1, len(json.dumps(body.get("messages", []))) // 4)


@dataclass
class Dialect:
    """OpenAI's own behaviour; subclasses copy another server's."""

    name: str = "openai"
    slots: int | None = None  # requests served at once; more wait in the server's queue, sending nothing
    window: int | None = None  # tokens one request may hold (prompt and answer)
    stream_usage: bool = True  # honours stream_options.include_usage
    model_id: str = "test-model"
    _queue: asyncio.Semaphore | None = field(default=None, repr=False)
    waiting: int = 0  # requests in the server's queue now
    peak_waiting: int = 0

    def refuse(self, body: dict[str, Any]) -> web.Response | None:
        """A refusal of this request before it is served (its format, its length), or None."""
        return None

    def usage_prompt_tokens(self, body: dict[str, Any]) -> int:
        """The prompt tokens the server reports having read."""
        return prompt_tokens(body)

    def interrupted(self) -> bool:
        """Whether a running stream is ended now (llama-cpp-python's interrupt_requests)."""
        return False

    async def enter(self) -> None:
        """Wait for one of the server's slots (a queued request gets no byte until then)."""
        if self.slots is None:
            return
        if self._queue is None:
            self._queue = asyncio.Semaphore(self.slots)
        if not self._queue.locked():
            await self._queue.acquire()
            return
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            await self._queue.acquire()
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        if self._queue is not None:
            self._queue.release()

    def routes(self) -> list[tuple[str, str, Any]]:
        """The endpoints besides /v1/chat/completions that describe the server: (method, path, handler)."""
        return []

    def models_list(self) -> dict[str, Any]:
        """What GET /v1/models answers."""
        return {"object": "list", "data": [{"id": self.model_id, "object": "model", "created": 0, "owned_by": "x"}]}

    def error(self, status: int, message: str, kind: str = "invalid_request_error", **extra: Any) -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": None,
                                            **extra}}, status=status)  # fmt: skip


@dataclass
class LlamaCppPython(Dialect):
    """llama-cpp-python's server with its defaults: context 2048, one request at a time, and a running stream
    ended with [DONE] (no finish_reason) whenever another request is waiting (``interrupt_requests=True``)."""

    name: str = "llama-cpp-python"
    slots: int | None = 1
    window: int | None = 2048
    stream_usage: bool = False  # stream_options is accepted and ignored (recorded): no usage event
    interrupt_requests: bool = True
    model_id: str = "models/gemma3-270m-q4_k_m.gguf"

    def refuse(self, body: dict[str, Any]) -> web.Response | None:
        fmt = (body.get("response_format") or {}).get("type")
        if fmt not in (None, "text", "json_object"):
            # Recorded from the real server (HTTP 500, a file path of the server included).
            message = (
                "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                f"'msg': \"Input should be 'text' or 'json_object'\", 'input': '{fmt}', 'ctx': {{'expected': "
                "\"'text' or 'json_object'\"}}\n\n  File \"/srv/venv/lib/python3.11/site-packages/llama_cpp/server/"
                'app.py", line 376, in create_chat_completion\n    POST /v1/chat/completions'
            )
            return web.json_response({"error": {"message": message, "type": "internal_server_error", "param": None,
                                                "code": None}}, status=500)  # fmt: skip
        tokens = prompt_tokens(body)
        if tokens > self.window:
            # Recorded: 400, code context_length_exceeded (llama_cpp/server/errors.py).
            return web.json_response({"error": {
                "message": f"This model's maximum context length is {self.window} tokens. However, you requested "
                f"{tokens} tokens ({tokens} in the messages, None in the completion). Please reduce the length of "
                "the messages or completion.", "type": "invalid_request_error", "param": "messages",
                "code": "context_length_exceeded"}}, status=400)  # fmt: skip
        return None

    def interrupted(self) -> bool:
        return self.interrupt_requests and self.waiting > 0

    def models_list(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_id, "object": "model", "owned_by": "me",
                                            "permissions": []}]}  # fmt: skip


@dataclass
class LlamaServer(Dialect):
    """llama.cpp's llama-server started with ``-c CTX -np N``: N slots of CTX/N tokens; a request that does not fit
    its slot gets 400 ``exceed_context_size_error``; queued requests wait for a slot."""

    name: str = "llama-server"
    ctx: int = 4096
    parallel: int = 4
    model_id: str = "gemma3-270m-q4_k_m.gguf"

    def __post_init__(self) -> None:
        self.slots = self.parallel
        self.window = self.ctx // self.parallel

    def refuse(self, body: dict[str, Any]) -> web.Response | None:
        tokens = prompt_tokens(body)
        if tokens >= self.window:
            # tools/server/server-context.cpp and server-task.cpp (server_task_result_error::to_json)
            return web.json_response({"error": {
                "code": 400, "message": f"request ({tokens} tokens) exceeds the available context size "
                f"({self.window} tokens), try increasing it", "type": "exceed_context_size_error",
                "n_prompt_tokens": tokens, "n_ctx": self.window}}, status=400)  # fmt: skip
        return None

    def routes(self) -> list[tuple[str, str, Any]]:
        async def props(request: web.Request) -> web.Response:
            return web.json_response({
                "default_generation_settings": {"n_ctx": self.window, "params": {}}, "total_slots": self.parallel,
                "model_alias": self.model_id, "model_path": f"/models/{self.model_id}", "build_info": "b0-fake",
                "is_sleeping": False})  # fmt: skip

        async def health(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        return [("GET", "/props", props), ("GET", "/health", health)]

    def models_list(self) -> dict[str, Any]:
        return {"object": "list", "models": [{"name": self.model_id, "model": self.model_id}], "data": [{
            "id": self.model_id, "object": "model", "created": int(time.time()), "owned_by": "llamacpp",
            "meta": {"n_ctx": self.window, "n_ctx_train": 32768, "n_vocab": 262144}}]}  # fmt: skip


@dataclass
class Ollama(Dialect):
    """Ollama with its defaults on a small machine: one request at a time (OLLAMA_NUM_PARALLEL 1), a context of
    4096, and a longer prompt cut to fit, silently (its usage then reports the cut prompt). With
    ``context_shift=False`` it refuses instead."""

    name: str = "ollama"
    slots: int | None = 1
    window: int | None = 4096
    context_shift: bool = True
    model_id: str = "llama3.2:latest"
    loaded: bool = True  # /api/ps lists the model only once it is loaded

    def refuse(self, body: dict[str, Any]) -> web.Response | None:
        if not self.context_shift and prompt_tokens(body) >= self.window:
            return web.json_response({"error": {
                "message": "the prompt is longer than the context length currently available to the model; "
                "shorten the prompt, adjust the context length in settings, or use a model with a longer context "
                "length", "type": "invalid_request_error", "param": None, "code": None}}, status=400)  # fmt: skip
        if body.get("model") not in (self.model_id, self.model_id.removesuffix(":latest")):
            return web.json_response({"error": {"message": f'model "{body.get("model")}" not found, try pulling it '
                                                "first", "type": "not_found_error", "param": None, "code": None}},
                                     status=404)  # fmt: skip
        return None

    def usage_prompt_tokens(self, body: dict[str, Any]) -> int:
        return min(prompt_tokens(body), self.window or 10**9)

    def routes(self) -> list[tuple[str, str, Any]]:
        async def ps(request: web.Request) -> web.Response:
            models = [{"name": self.model_id, "model": self.model_id, "size": 1, "digest": "0",
                       "context_length": self.window, "size_vram": 0}] if self.loaded else []  # fmt: skip
            return web.json_response({"models": models})

        async def version(request: web.Request) -> web.Response:
            return web.json_response({"version": "0.13.0"})

        async def show(request: web.Request) -> web.Response:
            return web.json_response({"model_info": {"llama.context_length": 131072}, "parameters": ""})

        return [("GET", "/api/ps", ps), ("GET", "/api/version", version), ("POST", "/api/show", show)]

    def models_list(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_id, "object": "model", "created": 0,
                                            "owned_by": "library"}]}  # fmt: skip


@dataclass
class Vllm(Dialect):
    """vLLM: ``max_model_len`` in /v1/models, errors as ``{"error": {…, "code": 400}}``, continuous batching
    (no slot limit a client sees)."""

    name: str = "vllm"
    window: int | None = 4096
    model_id: str = "Qwen/Qwen2.5-7B-Instruct"

    def refuse(self, body: dict[str, Any]) -> web.Response | None:
        tokens = prompt_tokens(body)
        if tokens > self.window:
            return web.json_response({"error": {
                "message": f"This model's maximum context length is {self.window} tokens. However, your request has "
                f"{tokens} input tokens. Please reduce the length of the input messages.", "type": "BadRequestError",
                "param": None, "code": 400}}, status=400)  # fmt: skip
        return None

    def models_list(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_id, "object": "model", "created": 0, "owned_by": "vllm",
                                            "root": self.model_id, "parent": None, "max_model_len": self.window,
                                            "permission": []}]}  # fmt: skip


@dataclass
class LmStudio(Dialect):
    """LM Studio 0.4: json_schema and text only, errors as a bare string, the loaded instance's context in
    ``/api/v1/models``."""

    name: str = "lmstudio"
    window: int | None = 4096
    slots: int | None = 1
    model_id: str = "qwen2.5-7b-instruct"

    def refuse(self, body: dict[str, Any]) -> web.Response | None:
        fmt = (body.get("response_format") or {}).get("type")
        if fmt not in (None, "text", "json_schema"):
            return web.json_response({"error": "'response_format.type' must be 'json_schema' or 'text'"}, status=400)
        tokens = prompt_tokens(body)
        if tokens >= self.window:
            return web.json_response({"error": "The number of tokens to keep from the initial prompt is greater than "
                                      f"the context length (n_keep: {tokens} >= n_ctx: {self.window}). Try to load "
                                      "the model with a larger context length, or provide a shorter prompt."},
                                     status=400)  # fmt: skip
        return None

    def routes(self) -> list[tuple[str, str, Any]]:
        async def models(request: web.Request) -> web.Response:
            return web.json_response({"models": [{
                "type": "llm", "publisher": "lmstudio-community", "key": self.model_id, "display_name": "Qwen",
                "loaded_instances": [{"id": self.model_id, "config": {"context_length": self.window}}],
                "max_context_length": 32768, "format": "gguf"}]})  # fmt: skip

        return [("GET", "/api/v1/models", models)]

    def models_list(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_id, "object": "model", "owned_by": "organization_owner"}]}
