"""Servers by name: each preset is a base URL, the environment variable of its key and a sensible concurrency.

``openai`` with a ``--base-url`` is any OpenAI-compatible server (what every earlier version meant by it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    label: str
    base_url: str | None  # None: api.openai.com (the SDK's default)
    key_env: str | None  # the environment variable holding its key; None: no key needed
    concurrency: int
    model: str | None  # a model the server is likely to have; None: the user must name one
    needs_key: bool = True

    @property
    def local(self) -> bool:
        return not self.needs_key


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("openai", "OpenAI (or any OpenAI-compatible server with a base URL)", None, "OPENAI_API_KEY", 64,
               "gpt-4o-mini"),
        Preset("ollama", "Ollama on this machine", "http://localhost:11434/v1", None, 4, "llama3.2", needs_key=False),
        Preset("lmstudio", "LM Studio on this machine", "http://localhost:1234/v1", None, 4, None, needs_key=False),
        Preset("vllm", "vLLM on this machine", "http://localhost:8000/v1", "VLLM_API_KEY", 32, None,
               needs_key=False),
        Preset("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", 32,
               "openai/gpt-4o-mini"),
        Preset("groq", "Groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", 8, "llama-3.3-70b-versatile"),
        Preset("together", "Together AI", "https://api.together.xyz/v1", "TOGETHER_API_KEY", 32,
               "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        Preset("gemini", "Google Gemini (its OpenAI-compatible endpoint)",
               "https://generativelanguage.googleapis.com/v1beta/openai/", "GEMINI_API_KEY", 16, "gemini-2.5-flash"),
        Preset("offline", "the offline generator (no key, no network)", None, None, 64, None, needs_key=False),
    )
}


def is_local_url(url: str | None) -> bool:
    """A server on this machine or a private network (loopback, 10/8, 172.16/12, 192.168/16, link-local,
    ``localhost``, ``*.local``): what it runs costs nothing per token."""
    if not url:
        return False
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host in ("localhost", "host.docker.internal") or host.endswith((".localhost", ".local", ".lan", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local
