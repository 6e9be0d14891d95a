from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI

from mkflash_tui.core.providers.presets import PRESETS

KEY_VARIABLES = tuple(p.key_env for p in PRESETS.values() if p.key_env)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_real_openai_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests never use a key or server from the developer's environment, and each gets its own session store.
    # Nor the developer's config file: each test has its own (absent until a test writes one).
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", *KEY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKFLASH_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("MKFLASH_CONFIG", str(tmp_path_factory.mktemp("config") / "config.toml"))
    # One cache folder for the whole session (tiktoken's files, a failed fetch remembered, the bundled encoding's
    # ranks): it holds nothing a test decides, and each CLI process would otherwise build it again.
    monkeypatch.setenv("MKFLASH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def sections(n: int, sentences: int = 6, prefix: str = "Part") -> str:
    """A Markdown text with ``n`` sections of distinct sentences."""
    parts = ["# Test Document"]
    for i in range(n):
        body = " ".join(
            f"The {prefix.lower()} {i} fact {j} states that element {i}x{j} weighs {i * 10 + j} grams."
            for j in range(sentences)
        )
        parts.append(f"## {prefix} {i}\n\n{body}")
    return "\n\n".join(parts) + "\n"


def run_cli(*args: str, cwd: Path | None = None, input: bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the real ``mkflash-tui`` entry point in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", *KEY_VARIABLES)}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mkflash_tui", *args],
        cwd=cwd,
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
