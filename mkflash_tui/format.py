"""Small formatting helpers shared by both faces (headless progress and the TUI)."""

from __future__ import annotations

from .core.text import strip_controls


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def fit(text: str, width: int) -> str:
    """``text`` on one line (white space folded, no control characters), cut to ``width`` characters with an
    ellipsis."""
    if width <= 0:
        return ""
    text = " ".join(strip_controls(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def usd(value: float | None, *, free: bool = False) -> str:
    """A price; ``free``: a zero price is a local server's, shown as "free"."""
    if value is None:
        return "price unknown"
    if value == 0:
        return "free" if free else "$0"
    if value < 0.01:
        return f"${value:.4f}"
    return f"${value:.2f}"


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes}m{rest:02d}s"
