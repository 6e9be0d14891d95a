"""Known OpenAI models: price per million tokens and context window. The one place these facts live."""

from __future__ import annotations

from dataclasses import dataclass

from .providers.presets import is_local_url


@dataclass(frozen=True, slots=True)
class ModelInfo:
    input_per_million: float
    output_per_million: float
    context_tokens: int


# USD per 1M tokens (standard tier) and context window, as published by OpenAI.
KNOWN_MODELS: dict[str, ModelInfo] = {
    "gpt-4o-mini": ModelInfo(0.15, 0.60, 128_000),
    "gpt-4o": ModelInfo(2.50, 10.00, 128_000),
    "gpt-4.1": ModelInfo(2.00, 8.00, 1_047_576),
    "gpt-4.1-mini": ModelInfo(0.40, 1.60, 1_047_576),
    "gpt-4.1-nano": ModelInfo(0.10, 0.40, 1_047_576),
    "gpt-5": ModelInfo(1.25, 10.00, 400_000),
    "gpt-5-mini": ModelInfo(0.25, 2.00, 400_000),
    "gpt-5-nano": ModelInfo(0.05, 0.40, 400_000),
    "o3": ModelInfo(2.00, 8.00, 200_000),
    "o4-mini": ModelInfo(1.10, 4.40, 200_000),
    "gpt-4-turbo": ModelInfo(10.00, 30.00, 128_000),
    "gpt-3.5-turbo": ModelInfo(0.50, 1.50, 16_385),
}

DEFAULT_CONTEXT_TOKENS = 8_192  # a safe guess for local servers that do not say


def model_info(model: str) -> ModelInfo | None:
    """Info for a known model; dated snapshots ("gpt-4o-mini-2024-07-18") map to their family."""
    if model in KNOWN_MODELS:
        return KNOWN_MODELS[model]
    best = max((name for name in KNOWN_MODELS if model.startswith(name + "-")), key=len, default=None)
    return KNOWN_MODELS[best] if best else None


def context_tokens(model: str, override: int | None = None) -> int:
    """The model's context window: the user's ``--context-tokens``, a known model's, or a safe default."""
    if override:
        return override
    info = model_info(model)
    return info.context_tokens if info else DEFAULT_CONTEXT_TOKENS


BATCH_DISCOUNT = 0.5  # what a batch engine's tokens cost (OpenAI's and Groq's), against the same tokens live


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int,
             base_url: str | None = None) -> float | None:  # fmt: skip
    """Price of the given usage by the known-model table; free (0) for another model on a server on this machine
    or a private network; None when the price is unknown (never a made-up one)."""
    info = model_info(model)
    if info is None:
        return 0.0 if is_local_url(base_url) else None
    return (prompt_tokens * info.input_per_million + completion_tokens * info.output_per_million) / 1_000_000


def spent_usd(model: str, usage, batch_usage, base_url: str | None = None) -> float | None:
    """What ``usage`` cost, the part of it a batch engine answered (``batch_usage``) at the batch discount."""
    total = cost_usd(model, usage.prompt_tokens, usage.completion_tokens, base_url)
    if total is None:
        return None
    batched = cost_usd(model, batch_usage.prompt_tokens, batch_usage.completion_tokens, base_url) or 0.0
    return total - batched * (1 - BATCH_DISCOUNT)
