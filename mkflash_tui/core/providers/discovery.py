"""What a server says about itself, asked once before the first call: what it is, its models, the context window
one request gets and how many requests it serves at once.

Every server tells this its own way (sources in ``tests/dialects.py``):

- llama.cpp's llama-server: ``GET /props`` (``default_generation_settings.n_ctx``: the context of one slot, and
  ``total_slots``); recent builds also put ``meta.n_ctx`` in ``/v1/models``. Never ``n_ctx_train``: that is the
  model's, not the server's.
- Ollama: ``GET /api/ps`` lists the loaded models with their ``context_length`` (``/api/show`` gives only the
  model's trained maximum, so it is not asked); ``GET /api/version`` names it. It serves one request at a time
  unless OLLAMA_NUM_PARALLEL says otherwise, which no endpoint reports.
- vLLM: ``max_model_len`` in ``/v1/models``.
- LM Studio: ``GET /api/v1/models``: a loaded instance's ``config.context_length`` (``max_context_length`` is the
  model's maximum, not what is loaded).
- llama-cpp-python: ``/v1/models`` only (``owned_by: "me"``); its window is learned from its first refusal.

Each probe is bounded by a short timeout and none is fatal: what is not said stays ``None`` ("unknown"). The
endpoints beyond ``/v1/models`` are asked only of servers on this machine or a private network.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .base import ProviderError
from .presets import is_local_url

PROBE_TIMEOUT = 2.0  # seconds for each look; they run at once
MAX_BODY = 2 * 2**20


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a server said about itself; ``None`` where it did not say."""

    kind: str = "unknown"  # llama.cpp, llama-cpp-python, ollama, vllm, lmstudio, openai, or unknown
    version: str = ""
    models: tuple[str, ...] = ()
    window: int | None = None  # tokens one request may hold, prompt and answer
    window_source: str = ""
    slots: int | None = None  # requests it serves at once; more wait in its queue
    slots_source: str = ""
    reachable: bool = True
    key_refused: bool = False  # it answered 401 or 403 to the model list
    notes: tuple[str, ...] = field(default=())

    def facts(self) -> dict[str, Any]:
        """For ``--json`` and the store."""
        return {"kind": self.kind, "version": self.version, "models": list(self.models), "window": self.window,
                "window_source": self.window_source, "slots": self.slots, "slots_source": self.slots_source,
                "reachable": self.reachable}  # fmt: skip

    def describe_window(self) -> str:
        if self.window is None:
            return "unknown"
        return f"{self.window:,} tokens per request ({self.window_source})"

    def describe_slots(self) -> str:
        if self.slots is None:
            return "unknown"
        return f"{self.slots} at once ({self.slots_source})"


def server_root(base_url: str) -> str:
    """The server's own address: the base URL without its trailing ``/v1`` (llama.cpp's /props, Ollama's /api)."""
    root = base_url.rstrip("/")
    for suffix in ("/v1", "/openai/v1"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def _get(url: str, api_key: str | None, timeout: float) -> tuple[int, Any]:
    """(status, JSON body or None); status 0 when nothing answered."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "mkflash-tui"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_BODY + 1)
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None
    if len(data) > MAX_BODY:
        return status, None
    try:
        return status, json.loads(data)
    except ValueError:
        return status, None


def discover(base_url: str | None, api_key: str | None, model: str, *, timeout: float = PROBE_TIMEOUT) -> ServerInfo:
    """Ask the server at ``base_url`` what it is (blocking: run it in a thread; at most about ``timeout``)."""
    if not base_url or "api.openai.com" in base_url:
        return ServerInfo(kind="openai")
    root = server_root(base_url)
    probes = {"models": base_url.rstrip("/") + "/models"}
    if is_local_url(base_url):
        probes.update(props=root + "/props", ps=root + "/api/ps", version=root + "/api/version",
                      lmstudio=root + "/api/v1/models")  # fmt: skip
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = {name: pool.submit(_get, url, api_key, timeout) for name, url in probes.items()}
        answers = {name: future.result() for name, future in futures.items()}
    return read_answers(answers, model)


def read_answers(answers: dict[str, tuple[int, Any]], model: str) -> ServerInfo:
    """ServerInfo from the probes' (status, body) by name: models, props, ps, version, lmstudio."""
    status, listing = answers.get("models", (0, None))
    if all(code == 0 for code, _ in answers.values()):
        return ServerInfo(reachable=False)
    entries = listing.get("data") if isinstance(listing, dict) else None
    entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    names = tuple(sorted({str(e["id"]) for e in entries if isinstance(e.get("id"), str)})[:1000])
    entry = next((e for e in entries if e.get("id") == model), entries[0] if len(entries) == 1 else None)
    kind, version, window, window_source, slots, slots_source = "unknown", "", None, "", None, ""
    owner = str(entry.get("owned_by", "")) if entry else ""
    _, props = answers.get("props", (0, None))
    _, ps = answers.get("ps", (0, None))
    _, ollama_version = answers.get("version", (0, None))
    _, lmstudio = answers.get("lmstudio", (0, None))
    if isinstance(props, dict) and "default_generation_settings" in props:
        kind = "llama.cpp"
        version = str(props.get("build_info", ""))
        window = _positive((props.get("default_generation_settings") or {}).get("n_ctx"))
        window_source = "llama-server /props n_ctx per slot" if window else ""
        slots = _positive(props.get("total_slots"))
        slots_source = "llama-server /props total_slots" if slots else ""
    elif owner == "llamacpp":
        kind = "llama.cpp"
    if window is None and entry and isinstance(entry.get("meta"), dict):
        window = _positive(entry["meta"].get("n_ctx"))  # the slot's, never n_ctx_train
        window_source = "llama-server /v1/models meta.n_ctx" if window else ""
    if isinstance(ollama_version, dict) and "version" in ollama_version and isinstance(ps, dict):
        kind, version = "ollama", str(ollama_version["version"])
        loaded = [m for m in ps.get("models") or () if isinstance(m, dict)]
        mine = next((m for m in loaded if model in (m.get("name"), m.get("model"))
                     or str(m.get("name", "")).split(":")[0] == model), None)  # fmt: skip
        if mine is not None:
            window = _positive(mine.get("context_length"))
            window_source = "Ollama /api/ps context_length" if window else ""
    if owner == "vllm" or (entry is not None and "max_model_len" in entry):
        kind = "vllm"
        window = _positive(entry.get("max_model_len")) if entry else None
        window_source = "vLLM /v1/models max_model_len" if window else ""
    if isinstance(lmstudio, dict) and isinstance(lmstudio.get("models"), list):
        kind = "lmstudio"
        for listed in lmstudio["models"]:
            if not isinstance(listed, dict) or (listed.get("key") != model and len(lmstudio["models"]) > 1):
                continue
            for instance in listed.get("loaded_instances") or ():
                context = _positive(((instance or {}).get("config") or {}).get("context_length"))
                if context:
                    window, window_source = context, "LM Studio /api/v1/models loaded context_length"
    if kind == "unknown" and owner == "me":
        kind = "llama-cpp-python"
    return ServerInfo(kind, version, names, window, window_source, slots, slots_source, True,
                      key_refused=status in (401, 403))  # fmt: skip


def _positive(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


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
